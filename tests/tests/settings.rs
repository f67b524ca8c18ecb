//! The README's settings table against the binaries' own clap definitions:
//! every variable a service reads is documented, every documented variable is
//! read, and every documented default is the one the binary applies. A
//! default changed in the code (or the README) without the other fails here.

use std::collections::{BTreeMap, BTreeSet};

use clap::{Command, CommandFactory};

/// Variables the README documents that no clap definition reads: the log
/// filter (tracing reads it) and the OpenTelemetry SDK's own batch and
/// exporter settings.
const READ_OUTSIDE_CLAP: &[&str] = &[
    "RUST_LOG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_HEADERS",
];

/// Each service binary's command line: the one its `main.rs` parses.
fn commands() -> Vec<Command> {
    vec![
        doumi_gateway::Cli::command(),
        doumi_bot::Cli::command(),
        doumi_catalog::Cli::command(),
    ]
}

/// Every variable the services read, with its default (`None`: no default).
fn read_by_the_binaries() -> BTreeMap<String, Option<String>> {
    let mut read = BTreeMap::new();
    for command in commands() {
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let default = arg
                .get_default_values()
                .first()
                .map(|value| value.to_string_lossy().into_owned());
            read.insert(env.to_string_lossy().into_owned(), default);
        }
    }
    read
}

/// The README's settings table: each variable with the first value its
/// "default" cell quotes (`None` when the cell starts with words: "unset",
/// "required", ...).
fn documented() -> BTreeMap<String, Option<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let table = readme
        .split("| variable | read by | default | meaning |")
        .nth(1)
        .unwrap_or_else(|| panic!("the README has no settings table"));
    let mut documented = BTreeMap::new();
    for row in table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(variables), Some(default)) = (cells.get(1), cells.get(3)) else {
            panic!("malformed settings row: {row}");
        };
        let default = default
            .strip_prefix('`')
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        for variable in variables.split(',') {
            let variable = variable.trim().trim_matches('`');
            documented.insert(variable.to_owned(), default.clone());
        }
    }
    assert!(
        documented.len() > 30,
        "too few settings read from the README"
    );
    documented
}

#[test]
fn every_setting_is_documented_with_the_default_the_binary_applies() {
    let read = read_by_the_binaries();
    let documented = documented();

    let undocumented: Vec<&String> = read
        .keys()
        .filter(|v| !documented.contains_key(*v))
        .collect();
    assert!(
        undocumented.is_empty(),
        "read but not in the README's table: {undocumented:?}"
    );

    let unread: BTreeSet<&String> = documented
        .keys()
        .filter(|v| !read.contains_key(*v) && !READ_OUTSIDE_CLAP.contains(&v.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "in the README's table but read by no service: {unread:?}"
    );

    for (variable, default) in &read {
        if let Some(default) = default {
            assert_eq!(
                documented.get(variable).and_then(Option::as_deref),
                Some(default.as_str()),
                "{variable}: the binary's default is {default}"
            );
        }
    }
}
