//! Offline checks of deploy/k8s against the code and doumi's own rules.
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
//! And against doumi's own rules (manifests/rules.rs), which the code does not imply: the
//! `app.kubernetes.io/name` and `part-of` labels; pods that run as non-root under the
//! RuntimeDefault seccomp profile, mount no service account token and get no service links;
//! containers with a pinned image (never `:latest`) pulled `IfNotPresent` or `Never`, CPU and
//! memory requests and limits, no privilege escalation, a read-only root filesystem and every
//! capability dropped; the gateway's readiness on `/readyz` and liveness on `/healthz`; a preStop
//! sleep that the grace period outlasts by 5 s (but for Redis); a default-deny NetworkPolicy and
//! one of its own for every Deployment; only the gateway's Service other than ClusterIP, and every
//! Service for one Deployment; an autoscaler and a disruption budget for gateway, bot and catalog,
//! each for a Deployment that exists.
//!
//! `the_checks_catch_broken_manifests` breaks the kind overlay in each of those ways (and
//! `the_catalog_client_checks_catch_broken_policies` production's catalog-clients component) and
//! expects each break to be reported, so a green run means something. Without kubectl the tests
//! say so on stderr and pass, except in CI (`CI` set), where they fail.

mod binaries;
mod breaking;
mod crds;
mod env;
mod netpol;
mod objects;
mod probes;
mod reach;
mod rule_breaks;
mod rules;
mod services;

use std::{collections::BTreeSet, io::Write, sync::OnceLock};

use binaries::Binary;
use objects::{Objects, kustomizations, kustomize};
use probes::{ProbeServers, ProbeTarget};
use services::URL_SETTINGS;

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

/// An overlay's render and its objects, asserted to parse and pass every check before a
/// self-test breaks it; `None` without kubectl (see [`renders`]).
fn clean_render(overlay: &str) -> Option<(&'static str, Objects)> {
    let yaml = render(overlay)?;
    let (objects, errors) = objects::parse(yaml);
    assert_eq!(errors, Vec::<String>::new(), "{overlay} must parse cleanly");
    assert_eq!(
        check(overlay, &objects).problems,
        Vec::<String>::new(),
        "{overlay} must be clean to start with"
    );
    Some((yaml, objects))
}

#[test]
fn the_checks_catch_broken_manifests() {
    let Some((yaml, kind)) = clean_render("kind") else {
        return;
    };

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

    let broken = breaking::KIND.iter().chain(rule_breaks::RULES);
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
    let Some((_, production)) = clean_render("production") else {
        return;
    };

    let mut missed = Vec::new();
    for (what, breaks, expected) in breaking::PRODUCTION {
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

fn check(overlay: &str, objects: &Objects) -> Report {
    let mut report = Report::default();
    let workloads = env::workloads(overlay, objects, &mut report.problems);
    report.containers = workloads.len();
    for binary in Binary::ALL {
        if !workloads.iter().any(|w| w.binary == binary) {
            report
                .problems
                .push(format!("no Deployment runs {}", binary.name()));
        }
    }
    for w in &workloads {
        probes::check_ports_and_probes(w, &mut report);
    }
    for service in &objects.services {
        services::check_service(service, &workloads, &mut report.problems);
    }
    services::check_ingresses(objects, &workloads, &mut report.problems);
    services::check_http_routes(objects, &workloads, &mut report.problems);
    let hops = services::hops(objects, &workloads, &mut report.problems);
    report.hops = hops.len();
    reach::check_network_policies(objects, &workloads, &hops, &mut report.problems);
    reach::check_catalog_clients(overlay, objects, &workloads, &mut report.problems);
    rules::check_rules(objects, &mut report.problems);
    report
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
        + objects.http_routes.len()
        + objects.pod_monitors.len()
}
