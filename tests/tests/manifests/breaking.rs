//! Ways to break a rendered overlay on purpose, for the self-tests: helpers that reach into the
//! objects, and the breaks the checks must each report.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Container, EnvVar, PodSpec, Service, ServicePort},
        networking::v1::{NetworkPolicy, NetworkPolicyIngressRule},
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};

use super::objects::{Objects, name_of};

pub fn deployment_mut<'a>(objects: &'a mut Objects, name: &str) -> &'a mut Deployment {
    objects
        .deployments
        .iter_mut()
        .find(|d| name_of(*d) == name)
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

pub fn pod_mut<'a>(objects: &'a mut Objects, deployment: &str) -> &'a mut PodSpec {
    let spec = deployment_mut(objects, deployment).spec.as_mut();
    let template = &mut spec.expect("a rendered Deployment has a spec").template;
    template
        .spec
        .as_mut()
        .expect("a rendered pod template has a spec")
}

pub fn container_mut<'a>(objects: &'a mut Objects, deployment: &str) -> &'a mut Container {
    &mut pod_mut(objects, deployment).containers[0]
}

pub fn env_mut<'a>(objects: &'a mut Objects, deployment: &str) -> &'a mut Vec<EnvVar> {
    container_mut(objects, deployment)
        .env
        .get_or_insert_with(Vec::new)
}

pub fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub fn set_config(objects: &mut Objects, key: &str, value: &str) {
    let data = objects.config_maps[0]
        .data
        .get_or_insert_with(BTreeMap::new);
    assert!(data.contains_key(key), "the ConfigMap has no {key}");
    data.insert(key.into(), value.into());
}

pub fn set_secret(objects: &mut Objects, key: &str, value: &str) {
    let secret = &mut objects.secrets[0];
    secret.data = None;
    secret.string_data = Some(BTreeMap::from([(key.into(), value.into())]));
}

pub fn policy<'a>(objects: &'a mut Objects, name: &str) -> &'a mut NetworkPolicy {
    objects
        .network_policies
        .iter_mut()
        .find(|p| name_of(*p) == name)
        .unwrap_or_else(|| panic!("no NetworkPolicy {name}"))
}

pub fn policy_selector<'a>(objects: &'a mut Objects, name: &str) -> &'a mut LabelSelector {
    policy(objects, name)
        .spec
        .as_mut()
        .unwrap()
        .pod_selector
        .get_or_insert_with(Default::default)
}

pub fn service_mut<'a>(objects: &'a mut Objects, name: &str) -> &'a mut Service {
    objects
        .services
        .iter_mut()
        .find(|s| name_of(*s) == name)
        .unwrap_or_else(|| panic!("no Service {name}"))
}

/// The first port of a Service.
pub fn service_port<'a>(objects: &'a mut Objects, name: &str) -> &'a mut ServicePort {
    let service = service_mut(objects, name);
    &mut service.spec.as_mut().unwrap().ports.as_mut().unwrap()[0]
}

/// The one ingress rule of components/catalog-clients' policy.
pub fn client_rule(objects: &mut Objects) -> &mut NetworkPolicyIngressRule {
    let spec = policy(objects, "doumi-allow-catalog-clients")
        .spec
        .as_mut()
        .unwrap();
    &mut spec.ingress.as_mut().unwrap()[0]
}

pub fn label(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), name.to_owned())])
}

/// One way to break a rendered overlay, and what the report must then say.
pub type Break = (&'static str, fn(&mut Objects), &'static [&'static str]);

/// Breaks of the kind overlay that the checks against the code must catch.
pub const KIND: &[Break] = &[
    (
        "an env var the gateway does not read",
        |o| env_mut(o, "doumi-gateway").push(literal("DOUMI_GATEWAY_PORT", "8080")),
        &["DOUMI_GATEWAY_PORT", "doumi-gateway does not read"],
    ),
    (
        "no bot URL",
        |o| env_mut(o, "doumi-gateway").retain(|e| e.name != "DOUMI_BOT_URL"),
        &["DOUMI_BOT_URL is unset", "http://127.0.0.1:50051"],
    ),
    (
        "no WeChat token",
        |o| env_mut(o, "doumi-gateway").retain(|e| e.name != "DOUMI_WECHAT_TOKEN"),
        &["DOUMI_WECHAT_TOKEN: is required"],
    ),
    (
        "the token from a ConfigMap",
        |o| {
            let env = env_mut(o, "doumi-gateway");
            let token = env
                .iter_mut()
                .find(|e| e.name == "DOUMI_WECHAT_TOKEN")
                .unwrap();
            *token = literal("DOUMI_WECHAT_TOKEN", "abc123");
        },
        &["DOUMI_WECHAT_TOKEN", "from a Secret"],
    ),
    (
        "a token the gateway refuses",
        |o| set_secret(o, "DOUMI_WECHAT_TOKEN", "not-a-token!"),
        &["doumi-gateway would not start", "DOUMI_WECHAT_TOKEN"],
    ),
    (
        "the bot URL on the catalog's port",
        |o| set_config(o, "DOUMI_BOT_URL", "dns:///doumi-bot-headless:50052"),
        &[
            "DOUMI_BOT_URL",
            "Service doumi-bot-headless has no port 50052",
        ],
    ),
    (
        "the catalog URL naming no Service",
        |o| set_config(o, "DOUMI_CATALOG_URL", "dns:///doumi-catalogue:50052"),
        &["DOUMI_CATALOG_URL", "no Service doumi-catalogue"],
    ),
    (
        "the bot through its ClusterIP Service",
        |o| set_config(o, "DOUMI_BOT_URL", "http://doumi-bot:50051"),
        &["DOUMI_BOT_URL", "Service doumi-bot is not headless"],
    ),
    (
        "the catalog by a fixed address",
        |o| set_config(o, "DOUMI_CATALOG_URL", "ipv4:10.0.0.7:50052"),
        &["DOUMI_CATALOG_URL", "names fixed addresses"],
    ),
    (
        "the Redis URL at the catalog",
        |o| set_config(o, "DOUMI_REDIS_URL", "redis://doumi-catalog:50052"),
        &["DOUMI_REDIS_URL", "selects doumi-catalog, not redis-server"],
    ),
    (
        "the gateway's containerPort off by one",
        |o| container_mut(o, "doumi-gateway").ports.as_mut().unwrap()[0].container_port = 8081,
        &["listens on 8080", "declares no such containerPort"],
    ),
    (
        "the gateway listening elsewhere",
        |o| {
            let env = env_mut(o, "doumi-gateway");
            env.iter_mut()
                .find(|e| e.name == "DOUMI_GATEWAY_LISTEN")
                .unwrap()
                .value = Some("0.0.0.0:9000".into());
        },
        &["listens on 9000", "declares no such containerPort"],
    ),
    (
        "a listener on loopback only",
        |o| {
            let env = env_mut(o, "doumi-bot");
            env.iter_mut()
                .find(|e| e.name == "DOUMI_BOT_LISTEN")
                .unwrap()
                .value = Some("127.0.0.1:50051".into());
        },
        &["doumi-bot listens on 127.0.0.1:50051", "kubelet"],
    ),
    (
        "the catalog's gRPC probe on the bot's port",
        |o| {
            let probe = container_mut(o, "doumi-catalog")
                .readiness_probe
                .as_mut()
                .unwrap();
            probe.grpc.as_mut().unwrap().port = 50051;
        },
        &["readinessProbe", "port 50051", "listens on 50052"],
    ),
    (
        "a TCP probe instead of a gRPC one",
        |o| {
            let probe = container_mut(o, "doumi-bot")
                .liveness_probe
                .as_mut()
                .unwrap();
            probe.grpc = None;
            probe.tcp_socket = Some(Default::default());
        },
        &["livenessProbe", "native gRPC probe"],
    ),
    (
        "no readiness probe",
        |o| container_mut(o, "doumi-gateway").readiness_probe = None,
        &["doumi-gateway", "no readinessProbe"],
    ),
    (
        "a policy for pods that do not exist",
        |o| policy_selector(o, "doumi-catalog").match_labels = Some(label("doumi-catalogue")),
        &["NetworkPolicy doumi-catalog selects no pod"],
    ),
    (
        "a peer that matches no pod",
        |o| {
            let spec = policy(o, "doumi-bot").spec.as_mut().unwrap();
            let peer = &mut spec.ingress.as_mut().unwrap()[0].from.as_mut().unwrap()[0];
            peer.pod_selector = Some(LabelSelector {
                match_labels: Some(label("doumi-gatway")),
                ..Default::default()
            });
        },
        &[
            "doumi-bot",
            "peer selects no pod",
            "block doumi-gateway -> doumi-bot:50051",
        ],
    ),
    (
        "Redis open to every pod",
        |o| {
            let spec = policy(o, "doumi-redis").spec.as_mut().unwrap();
            spec.ingress = Some(vec![Default::default()]);
        },
        &["a pod in another namespace reaches doumi-redis:6379"],
    ),
    (
        "no DNS",
        |o| {
            o.network_policies
                .retain(|p| name_of(p) != "doumi-allow-dns")
        },
        &["doumi-gateway cannot resolve names"],
    ),
    (
        "no default deny",
        |o| {
            o.network_policies
                .retain(|p| name_of(p) != "doumi-default-deny" && name_of(p) != "doumi-redis")
        },
        &["no NetworkPolicy governs the ingress of doumi-redis"],
    ),
    (
        "a gRPC Service port without appProtocol",
        |o| service_port(o, "doumi-bot").app_protocol = None,
        &[
            "Service doumi-bot port 50051 speaks gRPC",
            "kubernetes.io/h2c",
        ],
    ),
];

/// Breaks of production's catalog-clients component.
pub const PRODUCTION: &[Break] = &[
    (
        "no policy for client namespaces",
        |o| {
            o.network_policies
                .retain(|p| name_of(p) != "doumi-allow-catalog-clients")
        },
        &["labelled doumi.io/catalog-client=true cannot reach doumi-catalog:50052"],
    ),
    (
        "every port of the catalog for clients",
        |o| client_rule(o).ports = None,
        &["labelled doumi.io/catalog-client=true reaches doumi-catalog:9090"],
    ),
    (
        "every pod and port of doumi for clients",
        |o| {
            policy_selector(o, "doumi-allow-catalog-clients").match_labels = None;
            client_rule(o).ports = None;
        },
        &["labelled doumi.io/catalog-client=true reaches doumi-redis:6379"],
    ),
    (
        "every namespace for clients",
        |o| {
            let peers = client_rule(o).from.as_mut().unwrap();
            peers[0].namespace_selector = Some(LabelSelector::default());
        },
        &["without the label doumi.io/catalog-client=true reaches doumi-catalog:50052"],
    ),
    (
        "a label value nobody sets",
        |o| {
            let peers = client_rule(o).from.as_mut().unwrap();
            let selector = peers[0].namespace_selector.as_mut().unwrap();
            selector.match_labels = Some(BTreeMap::from([(
                "doumi.io/catalog-client".to_owned(),
                "yes".to_owned(),
            )]));
        },
        &["cannot reach doumi-catalog:50052"],
    ),
    (
        "no headless Service",
        |o| {
            o.services
                .retain(|s| name_of(s) != "doumi-catalog-headless")
        },
        &["no headless Service"],
    ),
    (
        "the catalog's Service without appProtocol",
        |o| service_port(o, "doumi-catalog").app_protocol = Some("http".into()),
        &[
            "Service doumi-catalog port 50052 speaks gRPC",
            "kubernetes.io/h2c",
        ],
    ),
    (
        "the HTTPRoute to the catalog",
        |o| {
            let backend = &mut o.http_routes[0].spec.rules[0].backend_refs[0];
            backend.name = "doumi-catalog".into();
            backend.port = Some(50052);
        },
        &["HTTPRoute doumi-gateway: only the gateway may be exposed, not doumi-catalog"],
    ),
    (
        "the HTTPRoute for every path",
        |o| {
            let path = o.http_routes[0].spec.rules[0].matches[0]
                .path
                .as_mut()
                .unwrap();
            path.value = "/".into();
        },
        &["HTTPRoute doumi-gateway: routes", "only /wechat"],
    ),
    (
        "the Gateway's namespace admitted by name",
        |o| {
            let policy = o
                .network_policies
                .iter_mut()
                .find(|p| name_of(*p) == "doumi-gateway")
                .unwrap();
            let rules = policy.spec.as_mut().unwrap().ingress.as_mut().unwrap();
            let peer = &mut rules[0].from.as_mut().unwrap()[0];
            peer.pod_selector = None;
            peer.namespace_selector = Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    "gateway-system".to_owned(),
                )])),
                ..LabelSelector::default()
            });
        },
        &["an unlabelled pod in gateway-system reaches doumi-gateway:8080"],
    ),
    (
        "the Gateway's proxies not admitted",
        |o| {
            o.network_policies
                .iter_mut()
                .filter(|p| name_of(*p) == "doumi-gateway")
                .for_each(|p| p.spec.as_mut().unwrap().ingress = Some(Vec::new()));
        },
        &["Gateway gateway-system/doumi-edge's proxy cannot reach doumi-gateway:8080"],
    ),
    (
        "a PodMonitor on a port the pods lack",
        |o| o.pod_monitors[1].spec.pod_metrics_endpoints[0].port = Some("prometheus".into()),
        &["PodMonitor doumi-services: doumi-bot has no container port named"],
    ),
    (
        "a PodMonitor that selects nothing",
        |o| {
            o.pod_monitors[0].spec.selector.match_labels = Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "gateway".to_owned(),
            )]))
        },
        &["PodMonitor doumi-gateway: selects no pod"],
    ),
    (
        "an object without the version label",
        |o| {
            if let Some(labels) = o.http_routes[0].metadata.labels.as_mut() {
                labels.remove("app.kubernetes.io/version");
            }
        },
        &["HTTPRoute doumi-gateway: label app.kubernetes.io/version missing"],
    ),
];
