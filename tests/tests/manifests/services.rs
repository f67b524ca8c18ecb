//! Services, Ingresses and the hops between binaries: every Service selects pods and sends each
//! port to one their binary listens on (gRPC ports saying so in `appProtocol`), Ingresses expose
//! only the gateway, and every URL setting names a Service that reaches the right binary.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::core::v1::{Service, ServicePort},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{
    binaries::{Binary, Protocol},
    env::Workload,
    netpol::selects,
    objects::{Objects, name_of, namespace_of},
    probes::resolve_port,
};

/// The settings that point one binary at another (the README's settings table), with the scheme
/// each must use: the gRPC hops name a headless Service (`dns:///`), whose DNS name lists every
/// ready pod, so that calls, not connections, are spread over the pods.
pub const URL_SETTINGS: &[(&str, Binary, &str)] = &[
    ("DOUMI_BOT_URL", Binary::Bot, "dns"),
    ("DOUMI_CATALOG_URL", Binary::Catalog, "dns"),
    ("DOUMI_REDIS_URL", Binary::Redis, "redis"),
];

/// The `appProtocol` of every Service port that speaks gRPC: HTTP/2 in plaintext (h2c) inside the
/// cluster, which meshes and Gateway API implementations read instead of guessing.
const GRPC_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// A connection one binary opens because a setting tells it to.
pub struct Hop {
    pub from: usize,
    pub to: usize,
    pub port: u16,
    pub setting: &'static str,
}

/// The workloads a Service's selector picks.
pub fn selected<'w, 'a>(service: &Service, workloads: &'w [Workload<'a>]) -> Vec<&'w Workload<'a>> {
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if selector.is_empty() {
        return Vec::new();
    }
    let selector = LabelSelector {
        match_labels: Some(selector),
        ..Default::default()
    };
    workloads
        .iter()
        .filter(|w| w.pod.namespace == namespace_of(service) && selects(&selector, &w.pod.labels))
        .collect()
}

/// The container port a Service port sends to on `target`, when it resolves to one.
pub fn target_port(port: &ServicePort, target: &Workload<'_>) -> Option<u16> {
    let target_port = port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(port.port));
    resolve_port(&target_port, &target.pod)
}

pub fn check_service(service: &Service, workloads: &[Workload<'_>], problems: &mut Vec<String>) {
    let name = name_of(service);
    let targets = selected(service, workloads);
    if targets.is_empty() {
        problems.push(format!("Service {name} selects no pod"));
        return;
    }
    for port in service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
    {
        let grpc = targets.iter().any(|t| {
            let port = target_port(port, t);
            t.listeners
                .iter()
                .any(|l| Some(l.addr.port()) == port && l.protocol == Protocol::Grpc)
        });
        if grpc && port.app_protocol.as_deref() != Some(GRPC_APP_PROTOCOL) {
            problems.push(format!(
                "Service {name} port {} speaks gRPC, but its appProtocol is {:?}, not {GRPC_APP_PROTOCOL}",
                port.port, port.app_protocol
            ));
        }
        // A binary that would not start has been reported already; it listens nowhere.
        for target in targets.iter().filter(|t| !t.listeners.is_empty()) {
            let listening: Vec<u16> = target.listeners.iter().map(|l| l.addr.port()).collect();
            match target_port(port, target) {
                Some(p) if listening.contains(&p) => {}
                Some(p) => problems.push(format!(
                    "Service {name} port {} goes to {p}, but {} listens on {listening:?}",
                    port.port,
                    target.binary.name()
                )),
                None => problems.push(format!(
                    "Service {name} port {}: targetPort {:?} is no container port of {}",
                    port.port, port.target_port, target.deployment
                )),
            }
        }
    }
}

pub fn check_ingresses(objects: &Objects, workloads: &[Workload<'_>], problems: &mut Vec<String>) {
    for ingress in &objects.ingresses {
        let name = name_of(ingress);
        let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
        let paths = rules
            .into_iter()
            .flatten()
            .flat_map(|r| r.http.iter().flat_map(|h| &h.paths));
        for path in paths {
            let Some(backend) = &path.backend.service else {
                problems.push(format!("Ingress {name}: a path without a Service backend"));
                continue;
            };
            let service = objects
                .services
                .iter()
                .find(|s| name_of(*s) == backend.name && namespace_of(*s) == namespace_of(ingress));
            let Some(service) = service else {
                problems.push(format!("Ingress {name}: no Service {}", backend.name));
                continue;
            };
            let wanted = backend.port.as_ref();
            let has_port = service
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
                .any(|p| {
                    wanted.is_some_and(|w| {
                        w.number == Some(p.port) || (w.name.is_some() && w.name == p.name)
                    })
                });
            if !has_port {
                problems.push(format!(
                    "Ingress {name}: Service {} has no port {wanted:?}",
                    backend.name
                ));
            }
            only_the_gateway(&format!("Ingress {name}"), service, workloads, problems);
        }
    }
}

/// What the edge (an Ingress, an HTTPRoute) sends to the public must reach the gateway alone.
fn only_the_gateway(
    here: &str,
    service: &Service,
    workloads: &[Workload<'_>],
    problems: &mut Vec<String>,
) {
    if selected(service, workloads)
        .iter()
        .any(|w| w.binary != Binary::Gateway)
    {
        problems.push(format!(
            "{here}: only the gateway may be exposed, not {}",
            name_of(service)
        ));
    }
}

/// Each HTTPRoute (components/gateway-api) routes WeChat's paths, and only those, to a Service
/// that selects the gateway alone, on a port it has.
pub fn check_http_routes(
    objects: &Objects,
    workloads: &[Workload<'_>],
    problems: &mut Vec<String>,
) {
    use super::crds::{HttpRoute, PathMatchType};
    use k8s_openapi::Resource;
    for route in &objects.http_routes {
        let here = format!("HTTPRoute {}", name_of(route));
        if route.api_version != HttpRoute::API_VERSION || route.kind != HttpRoute::KIND {
            problems.push(format!(
                "{here}: apiVersion {} is not {}",
                route.api_version,
                HttpRoute::API_VERSION
            ));
        }
        if route.spec.parent_refs.is_empty() {
            problems.push(format!("{here}: attaches to no Gateway (parentRefs)"));
        }
        for rule in &route.spec.rules {
            for matched in &rule.matches {
                let wechat = matched.path.as_ref().is_some_and(|p| {
                    p.value == "/wechat"
                        && matches!(
                            p.match_type,
                            PathMatchType::Exact | PathMatchType::PathPrefix
                        )
                });
                if !wechat {
                    problems.push(format!(
                        "{here}: routes {:?}; only /wechat (and /wechat/NAME) is public",
                        matched.path
                    ));
                }
            }
            for backend in &rule.backend_refs {
                let is_service = backend.group.as_deref().unwrap_or("").is_empty()
                    && backend.kind.as_deref().unwrap_or("Service") == "Service";
                let namespace = backend.namespace.as_deref().unwrap_or(namespace_of(route));
                let service = objects
                    .services
                    .iter()
                    .find(|s| name_of(*s) == backend.name && namespace_of(*s) == namespace);
                let Some(service) = service.filter(|_| is_service) else {
                    problems.push(format!("{here}: no Service {namespace}/{}", backend.name));
                    continue;
                };
                let has_port = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.ports.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|p| Some(p.port) == backend.port);
                if !has_port {
                    problems.push(format!(
                        "{here}: Service {} has no port {:?}",
                        backend.name, backend.port
                    ));
                }
                only_the_gateway(&here, service, workloads, problems);
            }
        }
    }
}

/// The connections the settings make, each checked against the Service it goes through.
pub fn hops(objects: &Objects, workloads: &[Workload<'_>], problems: &mut Vec<String>) -> Vec<Hop> {
    let mut hops = Vec::new();
    for (from, w) in workloads.iter().enumerate() {
        for &(setting, binary, scheme) in URL_SETTINGS {
            let Some(value) = w.env.get(setting).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let here = format!("Deployment {}: {setting}={value}", w.deployment);
            let Some((host, port)) = host_and_port(value, scheme, &here, problems) else {
                continue;
            };
            let host = host.as_str();
            let labels: Vec<&str> = host.split('.').collect();
            let (service_name, namespace) = match labels.as_slice() {
                [service] => (*service, w.pod.namespace.as_str()),
                [service, ns] | [service, ns, "svc"] | [service, ns, "svc", "cluster", "local"] => {
                    (*service, *ns)
                }
                _ => {
                    problems.push(format!(
                        "{here}: {host} is not the DNS name of a Service in the cluster"
                    ));
                    continue;
                }
            };
            let service = objects
                .services
                .iter()
                .find(|s| name_of(*s) == service_name && namespace_of(*s) == namespace);
            let Some(service) = service else {
                problems.push(format!(
                    "{here}: there is no Service {service_name} in namespace {namespace}"
                ));
                continue;
            };
            let headless =
                service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
            if scheme == "dns" && !headless {
                problems.push(format!(
                    "{here}: Service {service_name} is not headless (clusterIP: None): it balances \
                     connections, not calls, so each caller would stay on one pod"
                ));
            }
            let ports: Vec<_> = service
                .spec
                .as_ref()
                .and_then(|s| s.ports.clone())
                .unwrap_or_default();
            let Some(service_port) = ports.iter().find(|p| p.port == i32::from(port)) else {
                let have: Vec<i32> = ports.iter().map(|p| p.port).collect();
                problems.push(format!(
                    "{here}: Service {service_name} has no port {port} (it has {have:?})"
                ));
                continue;
            };
            let targets = selected(service, workloads);
            let wrong: BTreeSet<&str> = targets
                .iter()
                .filter(|t| t.binary != binary)
                .map(|t| t.binary.name())
                .collect();
            if targets.is_empty() || !wrong.is_empty() {
                problems.push(format!(
                    "{here}: Service {service_name} selects {}, not {}",
                    if wrong.is_empty() {
                        "no pod".to_owned()
                    } else {
                        wrong.into_iter().collect::<Vec<_>>().join(", ")
                    },
                    binary.name()
                ));
                continue;
            }
            for target in targets {
                let to = workloads
                    .iter()
                    .position(|x| std::ptr::eq(x, target))
                    .expect("target is a workload");
                match (target_port(service_port, target), target.main_port()) {
                    (Some(p), Some(main)) if p == main => hops.push(Hop { from, to, port: p, setting }),
                    (_, None) => {} // the target would not start: reported already
                    (p, main) => problems.push(format!(
                        "{here}: Service {service_name}:{port} goes to port {p:?} of {}, which serves on {main:?}",
                        target.binary.name()
                    )),
                }
            }
        }
    }
    hops
}

/// The host and port a setting dials: a gRPC target naming a Service (`dns`), or a URL with
/// `scheme`; `None` (with the problem recorded) when it names neither.
fn host_and_port(
    value: &str,
    scheme: &str,
    here: &str,
    problems: &mut Vec<String>,
) -> Option<(String, u16)> {
    if scheme == "dns" {
        return match value.parse::<doumi_runtime::grpc::Target>() {
            Ok(doumi_runtime::grpc::Target::Dns { host, port }) => Some((host, port)),
            Ok(fixed) => {
                problems.push(format!(
                    "{here}: names fixed addresses ({fixed}), not a Service whose DNS name lists \
                     every ready pod (dns:///service:port)"
                ));
                None
            }
            Err(e) => {
                problems.push(format!("{here}: {e}"));
                None
            }
        };
    }
    let url = match url::Url::parse(value) {
        Ok(url) => url,
        Err(e) => {
            problems.push(format!("{here}: not a URL: {e}"));
            return None;
        }
    };
    if url.scheme() != scheme {
        problems.push(format!("{here}: must be a {scheme}:// URL"));
    }
    let port = url
        .port_or_known_default()
        .or((scheme == "redis").then_some(6379));
    match (url.host_str(), port) {
        (Some(host), Some(port)) => Some((host.to_owned(), port)),
        _ => {
            problems.push(format!("{here}: no host and port"));
            None
        }
    }
}
