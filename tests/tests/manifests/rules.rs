//! doumi's own rules for its objects, which neither the schema nor the binaries imply: labels,
//! hardening, pinned images, resources, graceful termination, a default-deny policy, only the
//! gateway exposed, and an autoscaler and a disruption budget for every replicated service.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{Container, PodSpec, Probe},
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};

use super::{
    binaries::Binary,
    netpol::{Labels, selects},
    objects::{Objects, name_of, namespace_of, pod_labels},
};

/// The only Service that may be other than ClusterIP, i.e. reachable from outside the cluster.
const PUBLIC_SERVICE: &str = "doumi-gateway";

/// What the grace period must leave after the preStop sleep: SIGTERM comes only after the sleep,
/// and the binary may take that long to finish the requests in flight before the SIGKILL.
const DRAIN_SECONDS: i64 = doumi_runtime::DRAIN_TIMEOUT.as_secs() as i64;

/// The API's `terminationGracePeriodSeconds` when a pod leaves it out.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The binaries that run in several replicas. Redis is one in-memory instance: neither scaling
/// it nor budgeting its disruptions means anything.
const REPLICATED: [Binary; 3] = [Binary::Gateway, Binary::Bot, Binary::Catalog];

pub fn check_rules(objects: &Objects, problems: &mut Vec<String>) {
    for deployment in &objects.deployments {
        check_deployment(objects, deployment, problems);
    }
    check_default_deny(objects, problems);
    check_services(objects, problems);
    check_scaling(objects, problems);
    check_recommended_labels(objects, problems);
    check_pod_monitors(objects, problems);
}

/// Kubernetes' recommended labels every object carries, so that tools (and people) can tell
/// what it belongs to and which release made it.
fn check_recommended_labels(objects: &Objects, problems: &mut Vec<String>) {
    for (kind, metadata) in objects.all_metadata() {
        let name = metadata.name.as_deref().unwrap_or("<unnamed>");
        let labels = metadata.labels.clone().unwrap_or_default();
        for (label, wanted) in [
            ("app.kubernetes.io/part-of", Some("doumi")),
            ("app.kubernetes.io/managed-by", Some("kustomize")),
            ("app.kubernetes.io/version", None),
        ] {
            let value = labels.get(label).map(String::as_str);
            if value.is_none() || wanted.is_some_and(|w| value != Some(w)) {
                problems.push(format!(
                    "{kind} {name}: label {label} missing or not {}",
                    wanted.unwrap_or("set")
                ));
            }
        }
    }
}

/// Each PodMonitor (components/podmonitor) selects doumi's pods, on a port they name, at
/// /metrics: a monitor that selects nothing or names a port the pods lack scrapes nothing, and
/// nobody notices until an alert that should have fired did not.
fn check_pod_monitors(objects: &Objects, problems: &mut Vec<String>) {
    use super::crds::PodMonitor;
    use k8s_openapi::Resource;
    for monitor in &objects.pod_monitors {
        let here = format!("PodMonitor {}", name_of(monitor));
        if monitor.api_version != PodMonitor::API_VERSION || monitor.kind != PodMonitor::KIND {
            problems.push(format!(
                "{here}: apiVersion {} is not {}",
                monitor.api_version,
                PodMonitor::API_VERSION
            ));
        }
        let pods: Vec<&Deployment> = objects
            .deployments
            .iter()
            .filter(|d| {
                namespace_of(*d) == namespace_of(monitor)
                    && selects(&monitor.spec.selector, &pod_labels(d))
            })
            .collect();
        if pods.is_empty() {
            problems.push(format!("{here}: selects no pod"));
        }
        if monitor.spec.pod_metrics_endpoints.is_empty() {
            problems.push(format!("{here}: no podMetricsEndpoints"));
        }
        for endpoint in &monitor.spec.pod_metrics_endpoints {
            if endpoint.path.as_deref().unwrap_or("/metrics") != "/metrics" {
                problems.push(format!("{here}: path {:?} is not /metrics", endpoint.path));
            }
            for deployment in &pods {
                let named = deployment
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .into_iter()
                    .flat_map(|p| &p.containers)
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|p| p.name.is_some() && p.name == endpoint.port);
                if !named {
                    problems.push(format!(
                        "{here}: {} has no container port named {:?}",
                        name_of(*deployment),
                        endpoint.port
                    ));
                }
            }
        }
    }
}

fn check_deployment(objects: &Objects, deployment: &Deployment, problems: &mut Vec<String>) {
    let name = name_of(deployment);
    let here = format!("Deployment {name}");
    let labels = pod_labels(deployment);
    // The NetworkPolicies and the PodMonitor deploy/observability suggests find doumi's
    // pods by these labels.
    if labels.get("app.kubernetes.io/name").map(String::as_str) != Some(name)
        || labels.get("app.kubernetes.io/part-of").map(String::as_str) != Some("doumi")
    {
        problems.push(format!(
            "{here}: pods need app.kubernetes.io/name={name} and app.kubernetes.io/part-of=doumi"
        ));
    }
    let own_policy = objects.network_policies.iter().any(|p| {
        let selector = p.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
        namespace_of(p) == namespace_of(deployment)
            && selector.is_some_and(|s| !selects_everything(s) && selects(s, &labels))
    });
    if !own_policy {
        problems.push(format!(
            "{here}: no NetworkPolicy selects its pods (other than ones for every pod)"
        ));
    }
    let Some(pod) = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
    else {
        problems.push(format!("{here}: its pod template has no spec"));
        return;
    };
    check_pod(&here, pod, problems);
    for container in &pod.containers {
        let here = format!("{here} container {}", container.name);
        check_container(&here, container, problems);
        let binary = Binary::from_image(container.image.as_deref().unwrap_or_default());
        if binary == Some(Binary::Gateway) {
            check_gateway_probes(&here, container, problems);
        }
        if binary != Some(Binary::Redis) {
            check_termination(&here, pod, container, problems);
        }
    }
}

fn check_pod(here: &str, pod: &PodSpec, problems: &mut Vec<String>) {
    let context = pod.security_context.as_ref();
    let non_root = context.and_then(|c| c.run_as_non_root) == Some(true);
    let seccomp = context
        .and_then(|c| c.seccomp_profile.as_ref())
        .is_some_and(|p| p.type_ == "RuntimeDefault");
    if !non_root || !seccomp {
        problems.push(format!(
            "{here}: pod securityContext needs runAsNonRoot: true and seccompProfile RuntimeDefault"
        ));
    }
    // No binary talks to the API server: a token in the pod would only be something to steal.
    if pod.automount_service_account_token != Some(false) {
        problems.push(format!(
            "{here}: automountServiceAccountToken must be false"
        ));
    }
    if pod.enable_service_links != Some(false) {
        problems.push(format!(
            "{here}: enableServiceLinks must be false (link variables would enter DOUMI_*)"
        ));
    }
}

fn check_container(here: &str, container: &Container, problems: &mut Vec<String>) {
    let image = container.image.as_deref().unwrap_or_default();
    if !pinned(image) {
        problems.push(format!(
            "{here}: image {image:?} needs a fixed tag (never :latest)"
        ));
    }
    let pull = container.image_pull_policy.as_deref();
    if !matches!(pull, Some("IfNotPresent" | "Never")) {
        problems.push(format!(
            "{here}: imagePullPolicy must be IfNotPresent or Never, not {pull:?}"
        ));
    }
    let resources = container.resources.as_ref();
    for (part, amounts) in [
        ("requests", resources.and_then(|r| r.requests.as_ref())),
        ("limits", resources.and_then(|r| r.limits.as_ref())),
    ] {
        for resource in ["cpu", "memory"] {
            if !amounts.is_some_and(|a| a.contains_key(resource)) {
                problems.push(format!("{here}: resources.{part}.{resource} missing"));
            }
        }
    }
    let context = container.security_context.as_ref();
    let drops_all = context
        .and_then(|c| c.capabilities.as_ref())
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    if context.and_then(|c| c.allow_privilege_escalation) != Some(false)
        || context.and_then(|c| c.read_only_root_filesystem) != Some(true)
        || !drops_all
    {
        problems.push(format!(
            "{here}: securityContext needs allowPrivilegeEscalation: false, \
             readOnlyRootFilesystem: true, capabilities.drop: [ALL]"
        ));
    }
}

/// Whether an image names one build: a digest, or a tag other than `latest`.
fn pinned(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':')
        .is_some_and(|(_, tag)| !tag.is_empty() && tag != "latest")
}

/// /readyz turns false on SIGTERM, so a draining pod leaves the Service; /healthz says only that
/// the process is alive, so a draining pod is not restarted. Swapped, both would go wrong.
fn check_gateway_probes(here: &str, container: &Container, problems: &mut Vec<String>) {
    let path = |probe: &Option<Probe>| {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref());
        get.and_then(|g| g.path.clone())
    };
    if path(&container.readiness_probe).as_deref() != Some("/readyz")
        || path(&container.liveness_probe).as_deref() != Some("/healthz")
    {
        problems.push(format!(
            "{here}: probes must be httpGet /readyz (readiness) and /healthz (liveness)"
        ));
    }
}

/// The preStop sleep keeps a terminating pod serving until the endpoints controller has taken it
/// out of the Services; the grace period must also cover the drain after it.
fn check_termination(here: &str, pod: &PodSpec, container: &Container, problems: &mut Vec<String>) {
    let sleep = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .map(|s| s.seconds)
        .filter(|s| *s > 0);
    let grace = pod
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    match sleep {
        None => problems.push(format!(
            "{here}: needs a preStop sleep (and a grace period {DRAIN_SECONDS} s longer than it)"
        )),
        Some(sleep) if grace < sleep + DRAIN_SECONDS => problems.push(format!(
            "{here}: the preStop sleep is {sleep} s and terminationGracePeriodSeconds {grace}; \
             the grace period must be at least {DRAIN_SECONDS} s longer than the sleep"
        )),
        Some(_) => {}
    }
}

/// Without a policy that selects every pod and allows nothing, a pod no other policy selects
/// would be open in both directions.
fn check_default_deny(objects: &Objects, problems: &mut Vec<String>) {
    let namespaces: BTreeSet<&str> = objects.deployments.iter().map(namespace_of).collect();
    for namespace in namespaces {
        let denies = objects.network_policies.iter().any(|p| {
            let Some(spec) = p.spec.as_ref() else {
                return false;
            };
            let types: BTreeSet<&str> = spec
                .policy_types
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            namespace_of(p) == namespace
                && spec.pod_selector.as_ref().is_none_or(selects_everything)
                && types == BTreeSet::from(["Ingress", "Egress"])
                && spec.ingress.as_ref().is_none_or(Vec::is_empty)
                && spec.egress.as_ref().is_none_or(Vec::is_empty)
        });
        if !denies {
            problems.push(format!(
                "no default-deny NetworkPolicy in namespace {namespace} \
                 (podSelector: {{}}, policyTypes Ingress and Egress, no rules)"
            ));
        }
    }
}

fn selects_everything(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

/// The Deployments whose pods `selector` selects.
fn selected_deployments<'a>(
    objects: &'a Objects,
    namespace: &str,
    selector: &LabelSelector,
) -> Vec<&'a str> {
    let deployments = objects.deployments.iter();
    deployments
        .filter(|d| namespace_of(*d) == namespace && selects(selector, &pod_labels(d)))
        .map(name_of)
        .collect()
}

fn check_services(objects: &Objects, problems: &mut Vec<String>) {
    for service in &objects.services {
        let name = name_of(service);
        let spec = service.spec.as_ref();
        let kind = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
        if kind != "ClusterIP" && name != PUBLIC_SERVICE {
            problems.push(format!(
                "Service {name}: type {kind}, but only {PUBLIC_SERVICE} may be reachable from outside the cluster"
            ));
        }
        // One that selects no pod, an empty selector included, is reported by services.rs.
        let labels: Labels = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
        if labels.is_empty() {
            continue;
        }
        let selector = LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        };
        let targets = selected_deployments(objects, namespace_of(service), &selector);
        if targets.len() > 1 {
            problems.push(format!(
                "Service {name}: selects {} Deployments ({}), expected 1",
                targets.len(),
                targets.join(", ")
            ));
        }
    }
}

fn check_scaling(objects: &Objects, problems: &mut Vec<String>) {
    let scales = |autoscaler: &HorizontalPodAutoscaler, deployment: &Deployment| {
        let target = autoscaler.spec.as_ref().map(|s| &s.scale_target_ref);
        namespace_of(autoscaler) == namespace_of(deployment)
            && target.is_some_and(|t| t.kind == "Deployment" && t.name == name_of(deployment))
    };
    for autoscaler in &objects.autoscalers {
        if !objects.deployments.iter().any(|d| scales(autoscaler, d)) {
            let target = autoscaler.spec.as_ref().map(|s| &s.scale_target_ref);
            let target = target.map_or("nothing".to_owned(), |t| format!("{} {}", t.kind, t.name));
            problems.push(format!(
                "HorizontalPodAutoscaler {}: scales {target}, but there is no such Deployment",
                name_of(autoscaler)
            ));
        }
    }
    for budget in &objects.disruption_budgets {
        let selector = budget.spec.as_ref().and_then(|s| s.selector.as_ref());
        let selected = selector.map(|s| selected_deployments(objects, namespace_of(budget), s));
        if selected.is_none_or(|s| s.is_empty()) {
            problems.push(format!(
                "PodDisruptionBudget {}: selects no Deployment's pods",
                name_of(budget)
            ));
        }
    }
    for deployment in &objects.deployments {
        let containers = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        let replicated = containers.into_iter().flat_map(|p| &p.containers).any(|c| {
            Binary::from_image(c.image.as_deref().unwrap_or_default())
                .is_some_and(|b| REPLICATED.contains(&b))
        });
        if !replicated {
            continue;
        }
        let name = name_of(deployment);
        if !objects.autoscalers.iter().any(|a| scales(a, deployment)) {
            problems.push(format!(
                "Deployment {name}: no HorizontalPodAutoscaler scales it"
            ));
        }
        let labels = pod_labels(deployment);
        let budgeted = objects.disruption_budgets.iter().any(|b| {
            let selector = b.spec.as_ref().and_then(|s| s.selector.as_ref());
            namespace_of(b) == namespace_of(deployment)
                && selector.is_some_and(|s| selects(s, &labels))
        });
        if !budgeted {
            problems.push(format!(
                "Deployment {name}: no PodDisruptionBudget selects its pods"
            ));
        }
    }
}
