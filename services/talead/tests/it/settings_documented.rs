//! Every `TALEA_*` setting a service names, in its `--help` or in its code's
//! messages, is documented in the README or a page it links to.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use talea_testkit::process::{run_to_exit, talea_command, workspace_bin};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `TALEA_[A-Z0-9_]+` name in `text` (not the wildcard `TALEA_*`).
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("TALEA_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // `TALEA_*` (all of them) names no one setting.
        let name = name.trim_end_matches('_');
        if name != "TALEA" {
            names.insert(name.to_owned());
        }
    }
    names
}

/// The names the services' and the CLI's `--help` (and their subcommands'
/// `--help`) print.
fn names_in_help() -> BTreeSet<String> {
    let bins = [
        (
            "talead",
            "talead",
            &["serve", "init", "bootstrap", "wait-bootstrap"][..],
        ),
        ("talea-relay", "talea-relay", &[][..]),
        ("talea-fanout", "talea-fanout", &[][..]),
        ("talea-scope", "talea-scope", &[][..]),
        ("talea-client", "talea", &[][..]),
    ];
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut names = BTreeSet::new();
    for (package, bin, subcommands) in bins {
        let path = workspace_bin(package, bin).expect("service binary");
        let mut runs: Vec<Vec<&str>> = vec![vec!["--help"]];
        runs.extend(subcommands.iter().map(|s| vec![*s, "--help"]));
        for args in runs {
            let mut cmd = talea_command(&path, dir.path());
            cmd.args(&args);
            let out = run_to_exit(cmd, Duration::from_secs(30)).expect("--help runs");
            assert!(out.status.success(), "{bin} {args:?}: {out:?}");
            names.extend(names_in(&String::from_utf8_lossy(&out.stdout)));
        }
    }
    names
}

/// The names in the non-test source of the services and the libraries they
/// run (log messages, errors, clap attributes), less the test kit's.
fn names_in_source() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![root().join("services"), root().join("libs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(
                    name.as_ref(),
                    "tests" | "benches" | "talea-testkit" | "target"
                ) {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).expect("source file");
                // A file's unit tests come last, after `#[cfg(test)]`.
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                names.extend(names_in(text));
            }
        }
    }
    names
}

/// The README and every page of docs/.
fn documentation() -> String {
    let mut text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    for entry in std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .flatten()
    {
        if entry.path().extension().is_some_and(|e| e == "md") {
            text.push_str(&std::fs::read_to_string(entry.path()).expect("doc page"));
        }
    }
    text
}

#[test]
fn every_setting_named_is_documented() {
    let help = names_in_help();
    assert!(help.contains("TALEA_DB_URL"), "{help:?}");
    let mut named = help;
    named.extend(names_in_source());
    let docs = names_in(&documentation());
    let missing: Vec<&String> = named.iter().filter(|n| !docs.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named by a service but documented nowhere (README.md, docs/*.md): {missing:?}"
    );
}
