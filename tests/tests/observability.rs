//! The alert rules and the dashboard in deploy/observability against the
//! code: every series they query is one the services expose, so a renamed
//! metric breaks this test instead of silently emptying a panel or never
//! firing an alert. And every series a running stack exposes is in the
//! services' lists, so those lists cannot fall behind the code.

use std::{collections::BTreeSet, path::PathBuf};

use doumi_tests::{StackOptions, TestStack};

/// Every series name the services' code declares.
fn declared() -> BTreeSet<&'static str> {
    [
        doumi_runtime::metrics::NAMES,
        doumi_gateway::metrics::NAMES,
        doumi_wechat::api::METRIC_NAMES,
        doumi_bot::metrics::NAMES,
        doumi_catalog::metrics::NAMES,
    ]
    .concat()
    .into_iter()
    .collect()
}

fn observability_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability")
}

/// The PromQL expressions of every rule in the rules file.
fn rule_expressions() -> Vec<String> {
    let path = observability_dir().join("alerts.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let rules: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut expressions = Vec::new();
    for group in rules["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            if let Some(expr) = rule["expr"].as_str() {
                expressions.push(expr.to_owned());
            }
        }
    }
    assert!(!expressions.is_empty(), "no rules in {}", path.display());
    expressions
}

/// Every dashboard in deploy/observability/grafana, parsed, with its path.
fn dashboards() -> Vec<(PathBuf, serde_json::Value)> {
    let dir = observability_dir().join("grafana");
    let mut dashboards = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let dashboard =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            dashboards.push((path, dashboard));
        }
    }
    assert!(!dashboards.is_empty(), "no dashboard in {}", dir.display());
    dashboards
}

/// The PromQL expressions of every panel target in the dashboards.
fn dashboard_expressions() -> Vec<String> {
    fn collect(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => into.push(expr.clone()),
                        _ => collect(value, into),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, into)),
            _ => {}
        }
    }
    let mut expressions = Vec::new();
    for (_, dashboard) in dashboards() {
        collect(&dashboard, &mut expressions);
    }
    assert!(
        !expressions.is_empty(),
        "no panel queries in the dashboards"
    );
    expressions
}

/// An expression without what names labels rather than series: selectors'
/// `{...}` and the label lists of `by`, `without`, `on`, `ignoring`,
/// `group_left` and `group_right`.
fn without_labels(expr: &str) -> String {
    const LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let mut out = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
            continue;
        }
        out.push(c);
        if c == '(' {
            let before = out[..out.len() - 1].trim_end();
            if LISTS.iter().any(|keyword| {
                before.ends_with(keyword)
                    && !before[..before.len() - keyword.len()]
                        .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            }) {
                for c in chars.by_ref() {
                    if c == ')' {
                        out.push(c);
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The series an expression names: identifiers of doumi's, gRPC's and the
/// process' families (functions are never prefixed so), with a histogram's
/// `_bucket`/`_sum`/`_count` taken back to its family.
fn series_in(expr: &str) -> BTreeSet<String> {
    without_labels(expr)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| {
            ["doumi_", "grpc_", "process_"]
                .iter()
                .any(|p| word.starts_with(p))
        })
        .map(|word| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

#[test]
fn every_series_the_rules_and_dashboards_use_is_exposed() {
    let declared = declared();
    let mut used = BTreeSet::new();
    for expr in rule_expressions().iter().chain(&dashboard_expressions()) {
        used.extend(series_in(expr));
    }
    assert!(used.len() > 10, "too few series found: {used:?}");
    let unknown: Vec<&String> = used
        .iter()
        .filter(|name| !declared.contains(name.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "queried but exposed by no service: {unknown:?}"
    );
}

/// What Grafana needs to import a dashboard and run it against the
/// operator's Prometheus: a stable uid (links and provisioning name it), the
/// schema it was written for, a datasource variable every query uses (no
/// datasource of the author's baked in), a query on every panel, and queries
/// that are PromQL (promtool parses each as a recording rule).
#[test]
fn every_dashboard_imports_and_its_queries_parse() {
    let mut rules = Vec::new();
    let mut problems = Vec::new();
    for (path, dashboard) in dashboards() {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if dashboard["uid"] != name {
            problems.push(format!(
                "{name}: uid is {}, not the file's name",
                dashboard["uid"]
            ));
        }
        if dashboard["schemaVersion"] != 39 {
            problems.push(format!(
                "{name}: schemaVersion is {}, not 39",
                dashboard["schemaVersion"]
            ));
        }
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        {
            problems.push(format!("{name}: no datasource variable of type prometheus"));
        }
        let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
        for panel in panels.iter().filter(|p| p["type"] != "row") {
            let (title, id) = (&panel["title"], &panel["id"]);
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{name}: panel {title} has no query"));
            }
            for target in targets {
                let reference = &target["refId"];
                if target["datasource"]["uid"] != "${datasource}" {
                    problems.push(format!(
                        "{name}: panel {title} query {reference} ignores $datasource"
                    ));
                }
                let mut expr = target["expr"].as_str().unwrap_or_default().to_owned();
                for variable in ["$__rate_interval", "$__interval", "$__range"] {
                    expr = expr.replace(variable, "5m");
                }
                let record = format!(
                    "dashboard:{name}:panel_{id}_{}",
                    reference.as_str().unwrap_or("?")
                );
                rules.push(serde_json::json!({ "record": record.replace('-', "_"), "expr": expr }));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // A rules file is YAML, and JSON is YAML.
    let file = std::env::temp_dir().join(format!(
        "doumi-dashboard-queries-{}.json",
        std::process::id()
    ));
    let groups = serde_json::json!({ "groups": [{ "name": "dashboard-queries", "rules": rules }] });
    std::fs::write(&file, groups.to_string()).expect("writing the scratch rules file");
    let promtool = std::env::var("PROMTOOL_BIN").unwrap_or_else(|_| "promtool".to_owned());
    let checked = std::process::Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let checked = checked.unwrap_or_else(|e| {
        panic!("{promtool}: {e} (scripts/test installs it from Debian's prometheus package)")
    });
    assert!(
        checked.status.success(),
        "a dashboard query is not PromQL:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn series_are_found_in_expressions() {
    let found = series_in(
        r#"sum by (le, grpc_code) (rate(doumi_gateway_attempt_seconds_bucket{kind="doumi_x", grpc_method!~"a"}[5m]))
          / on (grpc_service) group_left (grpc_method) process_open_fds"#,
    );
    assert_eq!(
        found,
        BTreeSet::from([
            "doumi_gateway_attempt_seconds".to_owned(),
            "process_open_fds".to_owned()
        ])
    );
}

#[tokio::test]
async fn every_exposed_series_is_declared_with_help() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack");
    let answer = stack.wechat().send_text("9787121139512").await;
    assert!(answer.text().contains("浪潮之巅"));
    let page = stack.gateway_metrics().await;
    let declared = declared();
    for family in page.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let family = family.split(' ').next().unwrap_or_default();
        assert!(
            declared.contains(family),
            "{family} is exposed but in no service's list of names"
        );
        assert!(
            page.contains(&format!("# HELP {family} ")),
            "{family} has no HELP text"
        );
    }
}
