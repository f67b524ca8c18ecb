//! The README held to the code. Its settings table against the binaries' own
//! clap definitions: every variable a service reads is documented, every
//! documented variable is read, and every documented default is the one the
//! binary applies. Its layout against the tree: every module and folder of
//! the crates is named, and every name is in the tree.

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

/// The crates whose `src` the README's layout maps, module by module.
const CRATES: [&str; 5] = [
    "gateway",
    "services/bot",
    "services/catalog",
    "runtime",
    "wechat",
];

/// The code block of the README's "Layout" section.
fn readme_layout() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README is readable");
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```\n").nth(1))
        .expect("the README has a layout section with a code block");
    section.to_owned()
}

/// The modules and folders of each crate's `src` (the names a layout shows),
/// with the entry points every crate has left out.
fn modules(dir: &std::path::Path, names: &mut BTreeSet<String>) {
    let entries = std::fs::read_dir(dir).expect("the source folder is readable");
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            names.insert(format!("{name}/"));
            modules(&path, names);
        } else if name.ends_with(".rs")
            && !["lib.rs", "main.rs", "mod.rs", "tests.rs"].contains(&name.as_str())
        {
            names.insert(name);
        }
    }
}

#[test]
fn the_readme_layout_is_the_tree() {
    let layout = readme_layout();
    // A word naming a file or folder, by its last component (`api/`, `slots.rs`).
    let named: BTreeSet<String> = layout
        .split(|c: char| c.is_whitespace() || "(),".contains(c))
        .filter(|word| word.ends_with(".rs") || (word.len() > 1 && word.ends_with('/')))
        .map(|word| {
            let last = word
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(word);
            let slash = if word.ends_with('/') { "/" } else { "" };
            format!("{last}{slash}")
        })
        .collect();
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut in_tree = BTreeSet::new();
    for krate in CRATES {
        modules(&root.join(krate).join("src"), &mut in_tree);
    }
    let unnamed: Vec<_> = in_tree.difference(&named).collect();
    assert!(
        unnamed.is_empty(),
        "in the tree, not in the README's layout: {unnamed:?}"
    );

    let mut everywhere = in_tree.clone();
    for dir in ["tests", "deploy", "deploy/k8s", "scripts", "."] {
        for entry in std::fs::read_dir(root.join(dir))
            .expect("readable")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            everywhere.insert(if entry.path().is_dir() {
                format!("{name}/")
            } else {
                name
            });
        }
    }
    modules(&root.join("tests"), &mut everywhere);
    for krate in CRATES {
        everywhere.insert(format!("{}/", krate.rsplit('/').next().unwrap_or(krate)));
    }
    for name in ["src/", "lib.rs", "main.rs", "mod.rs", "tests.rs"] {
        everywhere.insert(name.to_owned());
    }
    let missing: Vec<_> = named.difference(&everywhere).collect();
    assert!(
        missing.is_empty(),
        "in the README's layout, not in the tree: {missing:?}"
    );
}
