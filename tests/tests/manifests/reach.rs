//! Who reaches whom under the rendered NetworkPolicies: exactly the hops the settings need, DNS,
//! the gateway from outside, and (components/catalog-clients) other teams' pods to the catalog's
//! API, and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    binaries::{Binary, Protocol},
    env::Workload,
    netpol::{Labels, Pod, allows, applies_to, governs, selects},
    objects::{Objects, name_of, namespace_labels, namespace_of},
    services::{Hop, URL_SETTINGS, selected, target_port},
};

/// components/ingress-nginx lets only the ingress controller's namespace reach the gateway; base
/// and kind let anyone. A pod there stands for "outside" in the reachability checks, unless the
/// overlay routes through the Gateway API (see [`edge_pods`]).
const INGRESS_CONTROLLER_NAMESPACE: &str = "ingress-nginx";

/// A pod outside doumi, described for messages.
type Someone = (String, Pod);

/// The label Gateway API implementations put on a Gateway's proxy pods.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The pods that carry WeChat's requests to the gateway: the proxies of each Gateway an
/// HTTPRoute attaches to (in the Gateway's namespace, with its name label), or the ingress
/// controller without routes. With routes, also the pods that must *not* reach the gateway: an
/// unlabelled pod in the Gateway's namespace (admission is by label, not by namespace).
fn edge_pods(objects: &Objects) -> (Vec<Someone>, Vec<Someone>) {
    let mut edge = Vec::new();
    let mut not_edge = Vec::new();
    for route in &objects.http_routes {
        for parent in &route.spec.parent_refs {
            let namespace = parent
                .namespace
                .clone()
                .unwrap_or_else(|| namespace_of(route).to_owned());
            edge.push((
                format!("Gateway {namespace}/{}'s proxy", parent.name),
                outside_pod(&namespace, [(GATEWAY_NAME_LABEL, parent.name.as_str())]),
            ));
            not_edge.push((
                format!("an unlabelled pod in {namespace}"),
                outside_pod(&namespace, []),
            ));
        }
    }
    if edge.is_empty() {
        edge.push((
            "the ingress controller".to_owned(),
            outside_pod(INGRESS_CONTROLLER_NAMESPACE, []),
        ));
    }
    (edge, not_edge)
}

/// The namespace label that admits another team's pods to the catalog's gRPC API
/// (components/catalog-clients).
const CATALOG_CLIENT_LABEL: (&str, &str) = ("doumi.io/catalog-client", "true");

/// Overlays that include components/catalog-clients: there a labelled namespace reaches the
/// catalog's gRPC port and a headless Service lists the catalog's pods; elsewhere the label
/// grants nothing.
const CATALOG_CLIENT_OVERLAYS: &[&str] = &["production"];

/// A client team's namespace in the reachability checks.
const CATALOG_CLIENT_NAMESPACE: &str = "library";

pub fn check_network_policies(
    objects: &Objects,
    workloads: &[Workload<'_>],
    hops: &[Hop],
    problems: &mut Vec<String>,
) {
    let policies = &objects.network_policies;

    // Every policy, and every in-namespace peer it names, selects pods that exist: a selector
    // that matches nothing is a policy that silently does nothing (or blocks a hop).
    for policy in policies {
        let name = name_of(policy);
        let namespace = namespace_of(policy);
        if !workloads.iter().any(|w| applies_to(policy, &w.pod)) {
            problems.push(format!("NetworkPolicy {name} selects no pod"));
        }
        let spec = policy.spec.as_ref();
        let peers = spec
            .and_then(|s| s.ingress.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|r| r.from.iter().flatten())
            .chain(
                spec.and_then(|s| s.egress.as_ref())
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r.to.iter().flatten()),
            );
        for peer in peers {
            // A peer in doumi's namespace only: no namespace selector, or one that picks it
            // out. `{}` (every namespace) names pods elsewhere, such as a Gateway's proxies.
            let local = peer.namespace_selector.as_ref().is_none_or(|ns| {
                let everywhere = ns.match_labels.as_ref().is_none_or(|m| m.is_empty())
                    && ns.match_expressions.as_ref().is_none_or(|e| e.is_empty());
                !everywhere && selects(ns, &namespace_labels(objects, namespace))
            });
            if let (Some(selector), true) = (&peer.pod_selector, local)
                && !workloads
                    .iter()
                    .any(|w| w.pod.namespace == namespace && selects(selector, &w.pod.labels))
            {
                problems.push(format!(
                    "NetworkPolicy {name}: peer selects no pod ({:?})",
                    selector.match_labels
                ));
            }
        }
    }

    for w in workloads {
        if !policies
            .iter()
            .any(|p| applies_to(p, &w.pod) && governs(p, "Ingress"))
        {
            problems.push(format!(
                "no NetworkPolicy governs the ingress of {}: it is open to every pod",
                w.deployment
            ));
        }
    }

    // Exactly the hops the settings need, between doumi's pods.
    for hop in hops {
        let (from, to) = (&workloads[hop.from], &workloads[hop.to]);
        if !allows(policies, &from.pod, &to.pod, hop.port, "TCP") {
            problems.push(format!(
                "NetworkPolicies block {} -> {}:{}, which {} needs",
                from.deployment, to.deployment, hop.port, hop.setting
            ));
        }
    }
    for from in workloads {
        for (t, to) in workloads.iter().enumerate() {
            if from.deployment == to.deployment {
                continue;
            }
            for listener in &to.listeners {
                let port = listener.addr.port();
                let needed = hops.iter().any(|h| {
                    workloads[h.from].deployment == from.deployment && h.to == t && h.port == port
                });
                if !needed && allows(policies, &from.pod, &to.pod, port, "TCP") {
                    problems.push(format!(
                        "NetworkPolicies let {} reach {}:{port}, which no setting needs",
                        from.deployment, to.deployment
                    ));
                }
            }
        }
    }

    // DNS for every binary that resolves a Service name.
    let kube_dns = outside_pod("kube-system", [("k8s-app", "kube-dns")]);
    for w in workloads {
        let resolves = URL_SETTINGS.iter().any(|(setting, ..)| {
            w.env
                .get(*setting)
                .and_then(|v| url::Url::parse(v).ok())
                .is_some_and(|u| matches!(u.host(), Some(url::Host::Domain(_))))
        });
        if resolves
            && !["UDP", "TCP"]
                .iter()
                .all(|proto| allows(policies, &w.pod, &kube_dns, 53, proto))
        {
            problems.push(format!(
                "{} cannot resolve names: no egress to kube-dns on port 53 (UDP and TCP)",
                w.deployment
            ));
        }
    }

    // From outside: the edge (a Gateway's proxies, or the ingress controller) reaches the
    // gateway; nobody outside reaches the rest, not even a pod that copies doumi's labels.
    let (edge, not_edge) = edge_pods(objects);
    for to in workloads {
        for listener in &to.listeners {
            let port = listener.addr.port();
            // Only the gateway's WeChat port is public (the README's "Deploying"); the catalog's /metrics is not.
            let public = to.binary == Binary::Gateway && listener.protocol == Protocol::Http;
            for (who, pod) in &edge {
                if public && !allows(policies, pod, &to.pod, port, "TCP") {
                    problems.push(format!("{who} cannot reach {}:{port}", to.deployment));
                }
            }
            for (who, pod) in &not_edge {
                if allows(policies, pod, &to.pod, port, "TCP") {
                    problems.push(format!(
                        "{who} reaches {}:{port}: the edge is admitted by its namespace's name, not by its pods' label",
                        to.deployment
                    ));
                }
            }
            let impostors = workloads.iter().map(|w| {
                let mut pod = w.pod.clone();
                pod.namespace = "doumi-elsewhere".into();
                pod.namespace_labels =
                    BTreeMap::from([("kubernetes.io/metadata.name".into(), pod.namespace.clone())]);
                (format!("{}'s labels", w.deployment), pod)
            });
            let unlabelled = ("no labels".to_owned(), outside_pod("doumi-elsewhere", []));
            for (disguise, impostor) in impostors.chain([unlabelled]) {
                if !public && allows(policies, &impostor, &to.pod, port, "TCP") {
                    problems.push(format!(
                        "a pod in another namespace reaches {}:{port} (with {disguise})",
                        to.deployment
                    ));
                }
            }
        }
    }
}

/// Other teams' services (components/catalog-clients): where the overlay includes the component,
/// any pod of a namespace labelled [`CATALOG_CLIENT_LABEL`] reaches the catalog's gRPC port, and a
/// headless Service lists the catalog's pods for client-side balancing. Everywhere, the label
/// grants nothing else (not the catalog's metrics, the bot, Redis, nor the gateway beyond what
/// any pod may reach), even to a pod wearing doumi's labels, and the same namespace without the
/// label reaches nothing that is not public.
pub fn check_catalog_clients(
    overlay: &str,
    objects: &Objects,
    workloads: &[Workload<'_>],
    problems: &mut Vec<String>,
) {
    let admits = CATALOG_CLIENT_OVERLAYS.contains(&overlay);
    let (key, value) = CATALOG_CLIENT_LABEL;
    let client_namespace = |labelled: bool| {
        let mut labels = Labels::from([(
            "kubernetes.io/metadata.name".to_owned(),
            CATALOG_CLIENT_NAMESPACE.to_owned(),
        )]);
        if labelled {
            labels.insert(key.to_owned(), value.to_owned());
        }
        labels
    };
    let clients = |labelled: bool| {
        let disguises = workloads.iter().map(|w| w.pod.labels.clone());
        std::iter::once(Labels::new())
            .chain(disguises)
            .map(move |labels| Pod {
                namespace: CATALOG_CLIENT_NAMESPACE.into(),
                namespace_labels: client_namespace(labelled),
                labels,
                named_ports: BTreeMap::new(),
            })
    };
    let anyone = outside_pod("doumi-elsewhere", []);
    let policies = &objects.network_policies;
    for to in workloads {
        for listener in &to.listeners {
            let port = listener.addr.port();
            let api = admits && to.binary == Binary::Catalog && listener.protocol == Protocol::Grpc;
            // Only the gateway's WeChat port may be open to every namespace (base and kind).
            let public = to.binary == Binary::Gateway
                && listener.protocol == Protocol::Http
                && allows(policies, &anyone, &to.pod, port, "TCP");
            let target = format!("{}:{port}", to.deployment);
            let reaches = |c: &Pod| allows(policies, c, &to.pod, port, "TCP");
            if api && let Some(pod) = clients(true).find(|c| !reaches(c)) {
                problems.push(format!(
                    "a pod in a namespace labelled {key}={value} cannot reach {target}, the catalog's API (pod labels {:?})",
                    pod.labels
                ));
            }
            if !api
                && !public
                && let Some(pod) = clients(true).find(|c| reaches(c))
            {
                problems.push(format!(
                    "a pod in a namespace labelled {key}={value} reaches {target} (pod labels {:?})",
                    pod.labels
                ));
            }
            if !public && let Some(pod) = clients(false).find(|c| reaches(c)) {
                problems.push(format!(
                    "a pod in a namespace without the label {key}={value} reaches {target} (pod labels {:?})",
                    pod.labels
                ));
            }
        }
    }

    if !admits {
        return;
    }
    let catalog = workloads.iter().filter(|w| w.binary == Binary::Catalog);
    let api_ports: BTreeSet<u16> = catalog
        .flat_map(|w| &w.listeners)
        .filter(|l| l.protocol == Protocol::Grpc)
        .map(|l| l.addr.port())
        .collect();
    let headless = objects.services.iter().any(|service| {
        let spec = service.spec.as_ref();
        let targets = selected(service, workloads);
        spec.and_then(|s| s.cluster_ip.as_deref()) == Some("None")
            && !targets.is_empty()
            && targets.iter().all(|t| t.binary == Binary::Catalog)
            && spec
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
                .any(|p| {
                    targets
                        .iter()
                        .any(|t| target_port(p, t).is_some_and(|n| api_ports.contains(&n)))
                })
    });
    if !headless {
        problems.push(
            "no headless Service (clusterIP: None) lists the catalog's pods on its gRPC port, for clients that balance across pods"
                .to_owned(),
        );
    }
}

/// A pod of someone else's: no NetworkPolicy of doumi's selects it, so only doumi's side counts.
fn outside_pod<const N: usize>(namespace: &str, labels: [(&str, &str); N]) -> Pod {
    Pod {
        namespace: namespace.into(),
        namespace_labels: BTreeMap::from([(
            "kubernetes.io/metadata.name".into(),
            namespace.into(),
        )]),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        named_ports: BTreeMap::new(),
    }
}
