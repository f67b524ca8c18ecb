//! Breaks of the kind overlay that only doumi's own rules (rules.rs) catch, one or more per rule,
//! so each rule is seen to fail.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::EnvFromSource, apimachinery::pkg::apis::meta::v1::LabelSelector};

use super::{
    breaking::{Break, container_mut, deployment_mut, label, pod_mut, service_mut},
    objects::name_of,
};

pub const RULES: &[Break] = &[
    (
        "Redis without a liveness probe",
        |o| container_mut(o, "doumi-redis").liveness_probe = None,
        &["Deployment doumi-redis: redis-server has no livenessProbe"],
    ),
    (
        "an image tagged :latest",
        |o| container_mut(o, "doumi-gateway").image = Some("doumi-gateway:latest".into()),
        &[
            "Deployment doumi-gateway container gateway: image \"doumi-gateway:latest\" needs a fixed tag",
        ],
    ),
    (
        "an image without a tag",
        |o| container_mut(o, "doumi-bot").image = Some("registry.example/doumi-bot".into()),
        &["container bot: image \"registry.example/doumi-bot\" needs a fixed tag"],
    ),
    (
        "an image pulled on every start",
        |o| container_mut(o, "doumi-catalog").image_pull_policy = Some("Always".into()),
        &["container catalog: imagePullPolicy must be IfNotPresent or Never"],
    ),
    (
        "no memory limit",
        |o| {
            let resources = container_mut(o, "doumi-catalog")
                .resources
                .get_or_insert_default();
            resources.limits.get_or_insert_default().remove("memory");
        },
        &["container catalog: resources.limits.memory missing"],
    ),
    (
        "no CPU request",
        |o| {
            let resources = container_mut(o, "doumi-redis")
                .resources
                .get_or_insert_default();
            resources.requests.get_or_insert_default().remove("cpu");
        },
        &["container redis: resources.requests.cpu missing"],
    ),
    (
        "pods that may run as root",
        |o| {
            let context = pod_mut(o, "doumi-redis")
                .security_context
                .get_or_insert_default();
            context.run_as_non_root = Some(false);
        },
        &["Deployment doumi-redis: pod securityContext needs runAsNonRoot: true"],
    ),
    (
        "no seccomp profile",
        |o| {
            pod_mut(o, "doumi-bot")
                .security_context
                .get_or_insert_default()
                .seccomp_profile = None
        },
        &[
            "Deployment doumi-bot: pod securityContext",
            "seccompProfile RuntimeDefault",
        ],
    ),
    (
        "a service account token in the pods",
        |o| pod_mut(o, "doumi-bot").automount_service_account_token = Some(true),
        &["Deployment doumi-bot: automountServiceAccountToken must be false"],
    ),
    (
        "service links left on",
        |o| pod_mut(o, "doumi-gateway").enable_service_links = None,
        &["Deployment doumi-gateway: enableServiceLinks must be false"],
    ),
    (
        "a writable root filesystem",
        |o| {
            let context = container_mut(o, "doumi-gateway")
                .security_context
                .get_or_insert_default();
            context.read_only_root_filesystem = Some(false);
        },
        &[
            "container gateway: securityContext needs",
            "readOnlyRootFilesystem: true",
        ],
    ),
    (
        "capabilities kept",
        |o| {
            let context = container_mut(o, "doumi-catalog")
                .security_context
                .get_or_insert_default();
            context.capabilities = None;
        },
        &[
            "container catalog: securityContext needs",
            "capabilities.drop: [ALL]",
        ],
    ),
    (
        "envFrom",
        |o| container_mut(o, "doumi-bot").env_from = Some(vec![EnvFromSource::default()]),
        &["Deployment doumi-bot: envFrom"],
    ),
    (
        "no Redis password from the Secret",
        |o| {
            let catalog = container_mut(o, "doumi-catalog");
            if let Some(env) = catalog.env.as_mut() {
                env.retain(|v| v.name != "DOUMI_REDIS_PASSWORD");
            }
        },
        &["Deployment doumi-catalog: DOUMI_REDIS_URL without DOUMI_REDIS_PASSWORD"],
    ),
    (
        "the gateway's probes swapped",
        |o| {
            let gateway = container_mut(o, "doumi-gateway");
            std::mem::swap(&mut gateway.readiness_probe, &mut gateway.liveness_probe);
        },
        &["container gateway: probes must be httpGet /readyz (readiness) and /healthz (liveness)"],
    ),
    (
        "a preStop sleep longer than the grace period",
        |o| {
            let lifecycle = container_mut(o, "doumi-bot")
                .lifecycle
                .get_or_insert_default();
            let pre_stop = lifecycle.pre_stop.get_or_insert_default();
            pre_stop.sleep.get_or_insert_default().seconds = 20;
        },
        &["container bot: the preStop sleep is 20 s and terminationGracePeriodSeconds 20"],
    ),
    (
        "no preStop sleep",
        |o| container_mut(o, "doumi-catalog").lifecycle = None,
        &["container catalog: needs a preStop sleep"],
    ),
    (
        "pods without the part-of label",
        |o| {
            let template = &mut deployment_mut(o, "doumi-bot")
                .spec
                .as_mut()
                .unwrap()
                .template;
            let labels = template
                .metadata
                .get_or_insert_default()
                .labels
                .get_or_insert_default();
            labels.remove("app.kubernetes.io/part-of");
        },
        &[
            "Deployment doumi-bot: pods need app.kubernetes.io/name=doumi-bot and app.kubernetes.io/part-of=doumi",
        ],
    ),
    (
        "no default-deny policy",
        |o| {
            o.network_policies
                .retain(|p| name_of(p) != "doumi-default-deny")
        },
        &["no default-deny NetworkPolicy in namespace doumi"],
    ),
    (
        "Redis without a policy of its own",
        |o| o.network_policies.retain(|p| name_of(p) != "doumi-redis"),
        &["Deployment doumi-redis: no NetworkPolicy selects its pods"],
    ),
    (
        "a NodePort on doumi-bot's Service",
        |o| {
            service_mut(o, "doumi-bot")
                .spec
                .get_or_insert_default()
                .type_ = Some("NodePort".into())
        },
        &["Service doumi-bot: type NodePort, but only doumi-gateway may be reachable from outside"],
    ),
    (
        "a Service for every Deployment",
        |o| {
            let spec = service_mut(o, "doumi-bot").spec.get_or_insert_default();
            spec.selector = Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "doumi".to_owned(),
            )]));
        },
        &["Service doumi-bot: selects 4 Deployments", "expected 1"],
    ),
    (
        "an autoscaler for a Deployment that does not exist",
        |o| {
            let autoscaler = o
                .autoscalers
                .iter_mut()
                .find(|a| name_of(*a) == "doumi-bot");
            let spec = autoscaler
                .expect("kind has an autoscaler for the bot")
                .spec
                .as_mut();
            spec.expect("an autoscaler has a spec")
                .scale_target_ref
                .name = "doumi-bott".into();
        },
        &[
            "HorizontalPodAutoscaler doumi-bot: scales Deployment doumi-bott, but there is no such Deployment",
            "Deployment doumi-bot: no HorizontalPodAutoscaler scales it",
        ],
    ),
    (
        "the gateway's autoscaler removed",
        |o| o.autoscalers.retain(|a| name_of(a) != "doumi-gateway"),
        &["Deployment doumi-gateway: no HorizontalPodAutoscaler scales it"],
    ),
    (
        "the catalog's PodDisruptionBudget removed",
        |o| {
            o.disruption_budgets
                .retain(|b| name_of(b) != "doumi-catalog")
        },
        &["Deployment doumi-catalog: no PodDisruptionBudget selects its pods"],
    ),
    (
        "a PodDisruptionBudget for pods that do not exist",
        |o| {
            let budget = o
                .disruption_budgets
                .iter_mut()
                .find(|b| name_of(*b) == "doumi-gateway");
            let spec = budget
                .expect("kind has a budget for the gateway")
                .spec
                .get_or_insert_default();
            spec.selector = Some(LabelSelector {
                match_labels: Some(label("doumi-gatway")),
                ..Default::default()
            });
        },
        &[
            "PodDisruptionBudget doumi-gateway: selects no Deployment's pods",
            "Deployment doumi-gateway: no PodDisruptionBudget selects its pods",
        ],
    ),
];
