//! Offline checks of deploy/k8s against the code.
//!
//! Every kustomization (the base and each overlay) is rendered with `kubectl kustomize` and read
//! into k8s-openapi's typed structs; a field the Kubernetes API does not have fails the test
//! instead of being dropped, which is what a misspelled field would otherwise be. Then the
//! rendered objects are held against the binaries themselves, not against a list written down
//! beside them:
//!
//! - every variable a container sets is one its binary's clap definition reads, secrets come
//!   from Secrets, and the binary's own start-up validation accepts the resulting environment
//!   (so a required setting such as `DOUMI_WECHAT_TOKEN` is set, and every value parses);
//! - the ports the binary then listens on are exactly the container's ports, on every address;
//! - the probes fit the protocol (HTTP for the gateway, native gRPC for bot and catalog) and
//!   point at the listening port, and every probed path or health service really answers when
//!   the real services run in-process;
//! - `DOUMI_BOT_URL`, `DOUMI_CATALOG_URL` and `DOUMI_REDIS_URL` name a Service that exists, on a
//!   port it has, selecting the pods of the right binary, whose target port is what that binary
//!   listens on;
//! - every NetworkPolicy selects pods that exist, and together they allow exactly the hops those
//!   URLs need (plus DNS, and the gateway from outside) and nothing else between doumi's pods;
//! - other teams' pods reach the catalog's gRPC port where components/catalog-clients is included,
//!   only from a namespace labelled `doumi.io/catalog-client=true`, and nothing else of doumi's;
//!   every gRPC Service port says `appProtocol: kubernetes.io/h2c`.
//!
//! `the_checks_catch_broken_manifests` breaks the kind overlay in each of those ways (and
//! `the_catalog_client_checks_catch_broken_policies` production's catalog-clients component) and
//! expects each break to be reported, so a green run means something. Without kubectl the tests
//! say so on stderr and pass, except in CI (`CI` set), where they fail.

#[path = "manifests/binaries.rs"]
mod binaries;
#[path = "manifests/netpol.rs"]
mod netpol;
#[path = "manifests/objects.rs"]
mod objects;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::SocketAddr,
    sync::OnceLock,
    time::Duration,
};

use binaries::{Binary, Listener, Protocol};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Container, ContainerPort, EnvVar, Probe, Service},
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use netpol::{Labels, Pod, allows, applies_to, governs, selects};
use objects::{Objects, kustomizations, kustomize, name_of, namespace_labels, namespace_of};

/// Overlays that must carry everything they need: tests/kind/run.sh applies the kind overlay as
/// it is. The others may leave a non-optional Secret key to the operator (production creates the
/// Secret out of band; the base ships it empty on purpose).
const SELF_CONTAINED: &[&str] = &["kind"];

/// Stands in for a secret the operator provides out of band, so the binary's validation can still
/// run. Shaped like a WeChat token (letters and digits), the only secret a binary requires.
const OUT_OF_BAND_SECRET: &str = "OutOfBandSecret42";

/// The settings that point one binary at another (the README's settings table), with the URL
/// scheme each must use: the gRPC hops are plaintext inside the cluster.
const URL_SETTINGS: &[(&str, Binary, &str)] = &[
    ("DOUMI_BOT_URL", Binary::Bot, "http"),
    ("DOUMI_CATALOG_URL", Binary::Catalog, "http"),
    ("DOUMI_REDIS_URL", Binary::Redis, "redis"),
];

/// The production overlay lets only the ingress controller's namespace reach the gateway; base
/// and kind let anyone. A pod there stands for "outside" in the reachability checks.
const INGRESS_CONTROLLER_NAMESPACE: &str = "ingress-nginx";

/// The namespace label that admits another team's pods to the catalog's gRPC API
/// (components/catalog-clients).
const CATALOG_CLIENT_LABEL: (&str, &str) = ("doumi.io/catalog-client", "true");

/// Overlays that include components/catalog-clients: there a labelled namespace reaches the
/// catalog's gRPC port and a headless Service lists the catalog's pods; elsewhere the label
/// grants nothing.
const CATALOG_CLIENT_OVERLAYS: &[&str] = &["production"];

/// A client team's namespace in the reachability checks.
const CATALOG_CLIENT_NAMESPACE: &str = "library";

/// The `appProtocol` of every Service port that speaks gRPC: HTTP/2 in plaintext (h2c) inside the
/// cluster, which meshes and Gateway API implementations read instead of guessing.
const GRPC_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// Every kustomization rendered once per test process; `None` when kubectl is not installed
/// (outside CI: in CI that fails the test).
fn renders() -> Option<&'static [(String, String)]> {
    static RENDERS: OnceLock<Option<Vec<(String, String)>>> = OnceLock::new();
    RENDERS
        .get_or_init(|| {
            let mut rendered = Vec::new();
            for (name, dir) in kustomizations() {
                match kustomize(&dir) {
                    Ok(Some(yaml)) => rendered.push((name, yaml)),
                    // In CI a missing kubectl is a failure: a skipped check must not pass for
                    // a green run there.
                    Ok(None) if std::env::var_os("CI").is_some() => {
                        panic!("kubectl is not installed, and CI must run the manifest checks")
                    }
                    Ok(None) => {
                        // Straight to stderr: the test harness captures eprintln! of passing tests,
                        // and a skip nobody sees would pass for a green run.
                        let _ = writeln!(
                            std::io::stderr(),
                            "SKIPPED: kubectl is not installed, so deploy/k8s cannot be rendered and \
                             the manifest checks did not run (install kubectl to run them)"
                        );
                        return None;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Some(rendered)
        })
        .as_deref()
}

fn render(overlay: &str) -> Option<&'static str> {
    let renders = renders()?;
    let found = renders.iter().find(|(name, _)| name == overlay);
    Some(
        found
            .unwrap_or_else(|| panic!("no kustomization named {overlay}"))
            .1
            .as_str(),
    )
}

#[test]
fn every_kustomization_is_typed_and_agrees_with_the_code() {
    for (setting, ..) in URL_SETTINGS {
        assert!(
            Binary::ALL.iter().any(|b| b.env_names().contains(*setting)),
            "no binary reads {setting} any more: update URL_SETTINGS"
        );
    }
    let Some(renders) = renders() else { return };
    let mut problems = Vec::new();
    for (name, yaml) in renders {
        let (objects, errors) = objects::parse(yaml);
        let report = check(name, &objects);
        eprintln!(
            "{name}: {} objects, {} containers, {} hops, {} probes checked",
            count(&objects),
            report.containers,
            report.hops,
            report.probes.len()
        );
        let found = errors.into_iter().chain(report.problems);
        problems.extend(found.map(|p| format!("{name}: {p}")));
    }
    assert!(
        problems.is_empty(),
        "deploy/k8s disagrees with the code:\n  {}",
        problems.join("\n  ")
    );
}

#[tokio::test]
async fn every_probe_reaches_an_endpoint_the_binary_serves() {
    let Some(renders) = renders() else { return };
    let mut probes = BTreeSet::new();
    for (name, yaml) in renders {
        let (objects, errors) = objects::parse(yaml);
        assert!(errors.is_empty(), "{name}: {}", errors.join("; "));
        probes.extend(check(name, &objects).probes);
    }
    for binary in [Binary::Gateway, Binary::Bot, Binary::Catalog] {
        assert!(
            probes.iter().any(|p| p.binary() == binary),
            "no probe of {} found: did the rendering change shape?",
            binary.name()
        );
    }

    let stop = tokio_util::sync::CancellationToken::new();
    let servers = ProbeServers::start(&stop).await;
    let mut failures = Vec::new();
    for probe in &probes {
        if let Err(e) = servers.probe(probe).await {
            failures.push(format!("{probe:?}: {e}"));
        }
    }
    // The same check on endpoints that do not exist must fail, or it proves nothing.
    for control in [
        ProbeTarget::Http {
            binary: Binary::Gateway,
            path: "/no-such-probe".to_owned(),
        },
        ProbeTarget::Grpc {
            binary: Binary::Catalog,
            service: "doumi.no.such.Service".to_owned(),
        },
    ] {
        assert!(
            servers.probe(&control).await.is_err(),
            "the probe check accepted {control:?}"
        );
    }
    stop.cancel();
    assert!(
        failures.is_empty(),
        "probes that would fail in a cluster:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn the_checks_catch_broken_manifests() {
    let Some(yaml) = render("kind") else { return };
    let (kind, errors) = objects::parse(yaml);
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "the kind overlay must parse cleanly"
    );
    assert_eq!(
        check("kind", &kind).problems,
        Vec::<String>::new(),
        "the kind overlay must be clean to start with"
    );

    // A misspelled field is an error, not a silently dropped key.
    let typo = yaml.replacen("readinessProbe:", "readinessProbez:", 1);
    assert_ne!(typo, yaml);
    let (_, errors) = objects::parse(&typo);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("unknown field") && e.contains("containers.0.readinessProbez")),
        "{errors:?}"
    );
    // So is an object of a kind nobody checks.
    let stranger = format!("{yaml}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\n");
    assert!(
        objects::parse(&stranger)
            .1
            .iter()
            .any(|e| e.contains("no check reads kind \"Pod\""))
    );

    /// One way to break the kind overlay, and what the report must then say.
    type Break = (&'static str, fn(&mut Objects), &'static [&'static str]);
    let broken: &[Break] = &[
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
            |o| set_config(o, "DOUMI_BOT_URL", "http://doumi-bot:50052"),
            &["DOUMI_BOT_URL", "Service doumi-bot has no port 50052"],
        ),
        (
            "the catalog URL naming no Service",
            |o| set_config(o, "DOUMI_CATALOG_URL", "http://doumi-catalogue:50052"),
            &["DOUMI_CATALOG_URL", "no Service doumi-catalogue"],
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
    let mut missed = Vec::new();
    for (what, breaks, expected) in broken {
        let mut objects = kind.clone();
        breaks(&mut objects);
        let problems = check("kind", &objects).problems;
        let caught = problems
            .iter()
            .any(|p| expected.iter().all(|e| p.contains(e)))
            || expected
                .iter()
                .all(|e| problems.iter().any(|p| p.contains(e)));
        if caught {
            eprintln!("caught {what}:\n    {}", problems.join("\n    "));
        } else {
            missed.push(format!("{what}: expected {expected:?} in {problems:#?}"));
        }
    }
    assert!(
        missed.is_empty(),
        "breaks the checks did not catch:\n{}",
        missed.join("\n")
    );
}

#[test]
fn the_catalog_client_checks_catch_broken_policies() {
    let Some(yaml) = render("production") else {
        return;
    };
    let (production, errors) = objects::parse(yaml);
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "production must parse cleanly"
    );
    assert_eq!(
        check("production", &production).problems,
        Vec::<String>::new(),
        "production must be clean to start with"
    );

    /// One way to break the production overlay's catalog-clients component, and what the report
    /// must then say.
    type Break = (&'static str, fn(&mut Objects), &'static [&'static str]);
    let broken: &[Break] = &[
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
    ];
    let mut missed = Vec::new();
    for (what, breaks, expected) in broken {
        let mut objects = production.clone();
        breaks(&mut objects);
        let problems = check("production", &objects).problems;
        if expected
            .iter()
            .all(|e| problems.iter().any(|p| p.contains(e)))
        {
            eprintln!("caught {what}:\n    {}", problems.join("\n    "));
        } else {
            missed.push(format!("{what}: expected {expected:?} in {problems:#?}"));
        }
    }
    assert!(
        missed.is_empty(),
        "breaks the checks did not catch:\n{}",
        missed.join("\n")
    );
}

// --- the checks -----------------------------------------------------------------------------------

/// What checking one rendered kustomization found.
#[derive(Debug, Default)]
struct Report {
    problems: Vec<String>,
    probes: BTreeSet<ProbeTarget>,
    containers: usize,
    hops: usize,
}

/// One container of a Deployment's pods and what follows from it.
struct Workload<'a> {
    deployment: &'a str,
    container: &'a Container,
    binary: Binary,
    pod: Pod,
    /// The environment the container starts with, values resolved from ConfigMaps and Secrets.
    env: BTreeMap<String, String>,
    /// Where the binary listens with that environment; empty when it would not start.
    listeners: Vec<Listener>,
}

impl Workload<'_> {
    fn main_port(&self) -> Option<u16> {
        self.listeners.first().map(|l| l.addr.port())
    }
}

/// A connection one binary opens because a setting tells it to.
struct Hop {
    from: usize,
    to: usize,
    port: u16,
    setting: &'static str,
}

fn check(overlay: &str, objects: &Objects) -> Report {
    let mut report = Report::default();
    let workloads = workloads(overlay, objects, &mut report.problems);
    report.containers = workloads.len();
    for binary in Binary::ALL {
        if !workloads.iter().any(|w| w.binary == binary) {
            report
                .problems
                .push(format!("no Deployment runs {}", binary.name()));
        }
    }
    for w in &workloads {
        check_ports_and_probes(w, &mut report);
    }
    for service in &objects.services {
        check_service(service, &workloads, &mut report.problems);
    }
    check_ingresses(objects, &workloads, &mut report.problems);
    let hops = hops(objects, &workloads, &mut report.problems);
    report.hops = hops.len();
    check_network_policies(objects, &workloads, &hops, &mut report.problems);
    check_catalog_clients(overlay, objects, &workloads, &mut report.problems);
    report
}

fn workloads<'a>(
    overlay: &str,
    objects: &'a Objects,
    problems: &mut Vec<String>,
) -> Vec<Workload<'a>> {
    let mut found = Vec::new();
    for deployment in &objects.deployments {
        let name = name_of(deployment);
        let namespace = namespace_of(deployment);
        let Some(template) = deployment.spec.as_ref().map(|s| &s.template) else {
            problems.push(format!("Deployment {name} has no spec"));
            continue;
        };
        let labels: Labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let selector = deployment.spec.as_ref().map(|s| &s.selector);
        if !selector.is_some_and(|s| {
            (s.match_labels.is_some() || s.match_expressions.is_some()) && selects(s, &labels)
        }) {
            problems.push(format!(
                "Deployment {name}: its selector does not select its own pods"
            ));
        }
        let containers = template
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let named_ports: BTreeMap<String, (u16, String)> = containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let number = u16::try_from(p.container_port).ok()?;
                Some((
                    p.name.clone()?,
                    (number, p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                ))
            })
            .collect();
        for container in containers {
            let image = container.image.as_deref().unwrap_or_default();
            let Some(binary) = Binary::from_image(image) else {
                problems.push(format!(
                    "Deployment {name}: container {} runs {image:?}, which no check knows",
                    container.name
                ));
                continue;
            };
            let env = container_env(
                overlay, objects, namespace, name, container, binary, problems,
            );
            let args = container.args.clone().unwrap_or_default();
            if container.command.is_some() {
                problems.push(format!(
                    "Deployment {name}: `command` replaces the image's entrypoint; use `args`"
                ));
            }
            let listeners = binary.listeners(&env, &args).unwrap_or_else(|e| {
                problems.push(format!(
                    "Deployment {name}: {} would not start with this environment: {e}",
                    binary.name()
                ));
                Vec::new()
            });
            found.push(Workload {
                deployment: name,
                container,
                binary,
                pod: Pod {
                    namespace: namespace.to_owned(),
                    namespace_labels: namespace_labels(objects, namespace),
                    labels: labels.clone(),
                    named_ports: named_ports.clone(),
                },
                env,
                listeners,
            });
        }
    }
    found
}

/// The container's environment as the kubelet would build it, after checking each variable is
/// one the binary reads and that secrets come from Secrets.
fn container_env(
    overlay: &str,
    objects: &Objects,
    namespace: &str,
    deployment: &str,
    container: &Container,
    binary: Binary,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let here = format!("Deployment {deployment}");
    let reads = binary.env_names();
    let secrets = binary.secret_env_names();
    if container.env_from.is_some() {
        problems.push(format!(
            "{here}: envFrom passes whatever a ConfigMap holds; list the variables under env"
        ));
    }
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let name = &var.name;
        if !reads.contains(name) {
            problems.push(format!(
                "{here}: sets {name}, but {} does not read it (it reads {})",
                binary.name(),
                reads.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        let from_secret = var
            .value_from
            .as_ref()
            .is_some_and(|v| v.secret_key_ref.is_some());
        if secrets.contains(name) && !from_secret {
            problems.push(format!(
                "{here}: {name} is a secret; it must come from a Secret (secretKeyRef)"
            ));
        }
        if let Some(value) = resolve(overlay, objects, namespace, &here, var, problems)
            && env.insert(name.clone(), value).is_some()
        {
            problems.push(format!("{here}: {name} is set twice"));
        }
    }
    for (name, default) in binary.loopback_defaults() {
        if !env.contains_key(&name) {
            problems.push(format!(
                "{here}: {name} is unset, so {} would use its default {default}, inside its own pod",
                binary.name()
            ));
        }
    }
    env
}

/// A variable's value, or `None` when it stays unset (an optional reference to nothing).
fn resolve(
    overlay: &str,
    objects: &Objects,
    namespace: &str,
    here: &str,
    var: &EnvVar,
    problems: &mut Vec<String>,
) -> Option<String> {
    let name = &var.name;
    let Some(source) = &var.value_from else {
        return Some(var.value.clone().unwrap_or_default());
    };
    if let Some(r) = &source.config_map_key_ref {
        let value = objects
            .config_maps
            .iter()
            .find(|cm| name_of(*cm) == r.name && namespace_of(*cm) == namespace)
            .and_then(|cm| cm.data.as_ref()?.get(&r.key).cloned());
        if value.is_none() && r.optional != Some(true) {
            problems.push(format!(
                "{here}: {name} needs key {} of ConfigMap {}, which the render lacks: the container would not start",
                r.key, r.name
            ));
        }
        return value;
    }
    if let Some(r) = &source.secret_key_ref {
        let secret = objects
            .secrets
            .iter()
            .find(|s| name_of(*s) == r.name && namespace_of(*s) == namespace);
        let value = secret.and_then(|s| {
            let text = s.string_data.as_ref().and_then(|d| d.get(&r.key).cloned());
            text.or_else(|| String::from_utf8(s.data.as_ref()?.get(&r.key)?.0.clone()).ok())
        });
        return match value {
            Some(value) => Some(value),
            None if r.optional == Some(true) => None,
            None if SELF_CONTAINED.contains(&overlay) => {
                problems.push(format!(
                    "{here}: {name} needs key {} of Secret {}, which this overlay must carry (it is applied as it is)",
                    r.key, r.name
                ));
                None
            }
            None => Some(OUT_OF_BAND_SECRET.to_owned()),
        };
    }
    problems.push(format!(
        "{here}: {name} comes from neither a ConfigMap nor a Secret; no check knows that source"
    ));
    None
}

/// A container port number, resolving a port name among the pod's container ports.
fn resolve_port(port: &IntOrString, pod: &Pod) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => pod.named_ports.get(name).map(|(n, _)| *n),
    }
}

fn check_ports_and_probes(w: &Workload<'_>, report: &mut Report) {
    let here = format!("Deployment {}", w.deployment);
    let problems = &mut report.problems;
    let binary = w.binary.name();
    let declared: BTreeSet<u16> = w
        .container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p: &ContainerPort| u16::try_from(p.container_port).ok())
        .collect();
    let listening: BTreeSet<u16> = w.listeners.iter().map(|l| l.addr.port()).collect();
    for listener in &w.listeners {
        if !listener.addr.ip().is_unspecified() {
            problems.push(format!(
                "{here}: {binary} listens on {} ({}), which neither the kubelet nor a Service can reach",
                listener.addr, listener.purpose
            ));
        }
        if !declared.contains(&listener.addr.port()) {
            problems.push(format!(
                "{here}: {binary} listens on {} ({}) but the container declares no such containerPort",
                listener.addr.port(),
                listener.purpose
            ));
        }
    }
    if !w.listeners.is_empty() {
        for port in declared.difference(&listening) {
            problems.push(format!(
                "{here}: containerPort {port} is declared, but {binary} listens on {listening:?}"
            ));
        }
    }

    let Some(main) = w.listeners.first() else {
        return;
    };
    let probes = [
        ("readinessProbe", &w.container.readiness_probe, true),
        ("livenessProbe", &w.container.liveness_probe, true),
        ("startupProbe", &w.container.startup_probe, false),
    ];
    for (kind, probe, required) in probes {
        match probe {
            None if required => problems.push(format!("{here}: {binary} has no {kind}")),
            None => {}
            Some(probe) => match check_probe(probe, main, &w.pod, w.binary) {
                Ok(Some(target)) => {
                    report.probes.insert(target);
                }
                Ok(None) => {}
                Err(e) => problems.push(format!("{here}: {kind}: {e}")),
            },
        }
    }
}

/// Whether `probe` fits the listener's protocol and port; the endpoint it calls, for the
/// in-process check.
fn check_probe(
    probe: &Probe,
    main: &Listener,
    pod: &Pod,
    binary: Binary,
) -> Result<Option<ProbeTarget>, String> {
    let port = main.addr.port();
    let at = |probed: Option<u16>| match probed {
        Some(p) if p == port => Ok(()),
        Some(p) => Err(format!("probes port {p}, but the binary listens on {port}")),
        None => Err(format!(
            "probes a port no container declares (the binary listens on {port})"
        )),
    };
    match main.protocol {
        Protocol::Http => {
            let get = probe
                .http_get
                .as_ref()
                .ok_or("the HTTP server needs an httpGet probe")?;
            at(resolve_port(&get.port, pod))?;
            if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                return Err("the gateway serves plain HTTP".into());
            }
            let path = get.path.clone().unwrap_or_else(|| "/".into());
            Ok(Some(ProbeTarget::Http { binary, path }))
        }
        Protocol::Grpc => {
            let grpc = probe
                .grpc
                .as_ref()
                .ok_or("a gRPC server needs a native gRPC probe (grpc:)")?;
            at(u16::try_from(grpc.port).ok())?;
            let service = grpc.service.clone().unwrap_or_default();
            Ok(Some(ProbeTarget::Grpc { binary, service }))
        }
        Protocol::Resp => {
            if let Some(tcp) = &probe.tcp_socket {
                at(resolve_port(&tcp.port, pod))?;
            } else if probe.exec.is_none() {
                return Err("Redis needs a tcpSocket or exec (redis-cli ping) probe".into());
            }
            // exec's `redis-cli ping` runs in the image: scripts/container-test runs it too.
            Ok(None)
        }
    }
}

/// The workloads a Service's selector picks.
fn selected<'w, 'a>(service: &Service, workloads: &'w [Workload<'a>]) -> Vec<&'w Workload<'a>> {
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
fn target_port(
    port: &k8s_openapi::api::core::v1::ServicePort,
    target: &Workload<'_>,
) -> Option<u16> {
    let target_port = port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(port.port));
    resolve_port(&target_port, &target.pod)
}

fn check_service(service: &Service, workloads: &[Workload<'_>], problems: &mut Vec<String>) {
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

fn check_ingresses(objects: &Objects, workloads: &[Workload<'_>], problems: &mut Vec<String>) {
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
            if selected(service, workloads)
                .iter()
                .any(|w| w.binary != Binary::Gateway)
            {
                problems.push(format!(
                    "Ingress {name}: only the gateway may be exposed, not {}",
                    backend.name
                ));
            }
        }
    }
}

/// The connections the settings make, each checked against the Service it goes through.
fn hops(objects: &Objects, workloads: &[Workload<'_>], problems: &mut Vec<String>) -> Vec<Hop> {
    let mut hops = Vec::new();
    for (from, w) in workloads.iter().enumerate() {
        for &(setting, binary, scheme) in URL_SETTINGS {
            let Some(value) = w.env.get(setting).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let here = format!("Deployment {}: {setting}={value}", w.deployment);
            let url = match url::Url::parse(value) {
                Ok(url) => url,
                Err(e) => {
                    problems.push(format!("{here}: not a URL: {e}"));
                    continue;
                }
            };
            if url.scheme() != scheme {
                problems.push(format!("{here}: must be a {scheme}:// URL"));
            }
            let host = url.host_str().unwrap_or_default();
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
            let Some(port) = url
                .port_or_known_default()
                .or((scheme == "redis").then_some(6379))
            else {
                problems.push(format!("{here}: no port"));
                continue;
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

fn check_network_policies(
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
            let local = peer
                .namespace_selector
                .as_ref()
                .is_none_or(|ns| selects(ns, &namespace_labels(objects, namespace)));
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

    // From outside: the ingress controller reaches the gateway; nobody outside reaches the rest,
    // not even a pod that copies doumi's labels.
    let controller = outside_pod(INGRESS_CONTROLLER_NAMESPACE, []);
    for to in workloads {
        for listener in &to.listeners {
            let port = listener.addr.port();
            // Only the gateway's WeChat port is public (the README's "Deploying"); the catalog's /metrics is not.
            let public = to.binary == Binary::Gateway && listener.protocol == Protocol::Http;
            if public && !allows(policies, &controller, &to.pod, port, "TCP") {
                problems.push(format!(
                    "the ingress controller cannot reach {}:{port}",
                    to.deployment
                ));
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
fn check_catalog_clients(
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

fn count(objects: &Objects) -> usize {
    objects.namespaces.len()
        + objects.config_maps.len()
        + objects.secrets.len()
        + objects.deployments.len()
        + objects.services.len()
        + objects.ingresses.len()
        + objects.network_policies.len()
        + objects.autoscalers.len()
        + objects.disruption_budgets.len()
}

// --- probes against the real services -------------------------------------------------------------

/// An endpoint a kubelet probe calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ProbeTarget {
    Http { binary: Binary, path: String },
    Grpc { binary: Binary, service: String },
}

impl ProbeTarget {
    fn binary(&self) -> Binary {
        match self {
            Self::Http { binary, .. } | Self::Grpc { binary, .. } => *binary,
        }
    }
}

/// The three services started in-process (the library entry points the binaries call), on
/// loopback, so each probe's path or health service can be tried for real.
struct ProbeServers {
    addrs: BTreeMap<Binary, SocketAddr>,
    http: reqwest::Client,
}

impl ProbeServers {
    async fn start(stop: &tokio_util::sync::CancellationToken) -> Self {
        async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind on loopback");
            let addr = listener.local_addr().expect("local address");
            (listener, addr)
        }
        // Nothing listens on port 9 (discard): the gateway and the bot connect lazily and the
        // probes must not need their downstream.
        let nowhere = "http://127.0.0.1:9".to_owned();
        let mut addrs = BTreeMap::new();

        let (listener, addr) = bind().await;
        let token = doumi_gateway::WechatToken::parse("probecheck").expect("a valid token");
        let config = doumi_gateway::GatewayConfig::new(addr, nowhere.clone(), token);
        tokio::spawn(doumi_gateway::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        addrs.insert(Binary::Gateway, addr);

        let (listener, addr) = bind().await;
        let config = doumi_bot::BotConfig::new(addr, nowhere);
        tokio::spawn(doumi_bot::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        addrs.insert(Binary::Bot, addr);

        let (listener, addr) = bind().await;
        let config = doumi_catalog::CatalogConfig::offline(addr);
        tokio::spawn(doumi_catalog::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        addrs.insert(Binary::Catalog, addr);

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        Self { addrs, http }
    }

    /// What the kubelet would conclude: HTTP 200–399, or a gRPC health status of SERVING.
    /// Retried briefly while the servers come up.
    async fn probe(&self, target: &ProbeTarget) -> Result<(), String> {
        let addr = self.addrs[&target.binary()];
        let mut last = String::new();
        for _ in 0..50 {
            let outcome = match target {
                ProbeTarget::Http { path, .. } => {
                    match self.http.get(format!("http://{addr}{path}")).send().await {
                        Ok(r) if (200..400).contains(&r.status().as_u16()) => return Ok(()),
                        Ok(r) => return Err(format!("HTTP {}", r.status())),
                        Err(e) => e.to_string(),
                    }
                }
                ProbeTarget::Grpc { service, .. } => match grpc_health(addr, service).await {
                    Ok(status) if status == tonic_health::ServingStatus::Serving as i32 => {
                        return Ok(());
                    }
                    Ok(status) => return Err(format!("health status {status}, not SERVING")),
                    Err(status) if status.code() != tonic::Code::Unavailable => {
                        return Err(status.to_string());
                    }
                    Err(status) => status.to_string(),
                },
            };
            last = outcome;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("no answer: {last}"))
    }
}

/// `grpc.health.v1.Health/Check` for `service`, as the kubelet's gRPC probe sends it.
async fn grpc_health(addr: SocketAddr, service: &str) -> Result<i32, tonic::Status> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    Ok(HealthClient::new(channel)
        .check(request)
        .await?
        .into_inner()
        .status)
}

// --- helpers that break a rendered overlay on purpose -------------------------------------------

fn deployment_mut<'a>(objects: &'a mut Objects, name: &str) -> &'a mut Deployment {
    objects
        .deployments
        .iter_mut()
        .find(|d| name_of(*d) == name)
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

fn container_mut<'a>(objects: &'a mut Objects, deployment: &str) -> &'a mut Container {
    let spec = deployment_mut(objects, deployment).spec.as_mut().unwrap();
    &mut spec.template.spec.as_mut().unwrap().containers[0]
}

fn env_mut<'a>(objects: &'a mut Objects, deployment: &str) -> &'a mut Vec<EnvVar> {
    container_mut(objects, deployment)
        .env
        .get_or_insert_with(Vec::new)
}

fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn set_config(objects: &mut Objects, key: &str, value: &str) {
    let data = objects.config_maps[0]
        .data
        .get_or_insert_with(BTreeMap::new);
    assert!(data.contains_key(key), "the ConfigMap has no {key}");
    data.insert(key.into(), value.into());
}

fn set_secret(objects: &mut Objects, key: &str, value: &str) {
    let secret = &mut objects.secrets[0];
    secret.data = None;
    secret.string_data = Some(BTreeMap::from([(key.into(), value.into())]));
}

fn policy<'a>(
    objects: &'a mut Objects,
    name: &str,
) -> &'a mut k8s_openapi::api::networking::v1::NetworkPolicy {
    objects
        .network_policies
        .iter_mut()
        .find(|p| name_of(*p) == name)
        .unwrap_or_else(|| panic!("no NetworkPolicy {name}"))
}

fn policy_selector<'a>(objects: &'a mut Objects, name: &str) -> &'a mut LabelSelector {
    policy(objects, name)
        .spec
        .as_mut()
        .unwrap()
        .pod_selector
        .get_or_insert_with(Default::default)
}

/// The first port of a Service.
fn service_port<'a>(
    objects: &'a mut Objects,
    name: &str,
) -> &'a mut k8s_openapi::api::core::v1::ServicePort {
    let service = objects
        .services
        .iter_mut()
        .find(|s| name_of(*s) == name)
        .unwrap_or_else(|| panic!("no Service {name}"));
    &mut service.spec.as_mut().unwrap().ports.as_mut().unwrap()[0]
}

/// The one ingress rule of components/catalog-clients' policy.
fn client_rule(
    objects: &mut Objects,
) -> &mut k8s_openapi::api::networking::v1::NetworkPolicyIngressRule {
    let spec = policy(objects, "doumi-allow-catalog-clients")
        .spec
        .as_mut()
        .unwrap();
    &mut spec.ingress.as_mut().unwrap()[0]
}

fn label(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), name.to_owned())])
}
