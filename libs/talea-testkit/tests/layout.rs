//! The workspace's dependency rules (style.md), checked against `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

struct Workspace {
    /// Package name -> its folder ("libs" or "services").
    members: BTreeMap<String, String>,
    /// Package name -> (dependency name, kind) for direct workspace and external deps.
    direct: BTreeMap<String, Vec<(String, String)>>,
    /// Package id -> package name, and the normal-dependency graph by id.
    names: BTreeMap<String, String>,
    normal_graph: BTreeMap<String, Vec<String>>,
}

fn load() -> Workspace {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let member_ids: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut members = BTreeMap::new();
    let mut direct = BTreeMap::new();
    let mut names = BTreeMap::new();
    for package in meta["packages"].as_array().expect("packages") {
        let id = package["id"].as_str().expect("id");
        let name = package["name"].as_str().expect("name").to_owned();
        names.insert(id.to_owned(), name.clone());
        if !member_ids.contains(id) {
            continue;
        }
        let path = package["manifest_path"].as_str().expect("path");
        let folder = if path.contains("/services/") {
            "services"
        } else if path.contains("/loadtest/") {
            "loadtest"
        } else {
            "libs"
        };
        // Each folder is named exactly like its package.
        assert!(
            path.ends_with(&format!("/{folder}/{name}/Cargo.toml")),
            "{name} lives at {path}"
        );
        members.insert(name.clone(), folder.to_owned());
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().expect("dep name").to_owned(),
                    d["kind"].as_str().unwrap_or("normal").to_owned(),
                )
            })
            .collect();
        direct.insert(name, deps);
    }
    let mut normal_graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
        let id = node["id"].as_str().expect("id").to_owned();
        let deps = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
            })
            .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
            .collect();
        normal_graph.insert(id, deps);
    }
    Workspace {
        members,
        direct,
        names,
        normal_graph,
    }
}

impl Workspace {
    /// Every package a member pulls in through normal dependencies, transitively.
    fn transitive(&self, member: &str) -> BTreeSet<String> {
        let start = self
            .names
            .iter()
            .find(|(id, name)| name.as_str() == member && self.normal_graph.contains_key(*id))
            .map(|(id, _)| id.clone())
            .expect("member in the resolve graph");
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(id) = stack.pop() {
            for dep in self.normal_graph.get(&id).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen.iter()
            .filter_map(|id| self.names.get(id).cloned())
            .collect()
    }
}

#[test]
fn dependency_rules_hold() {
    let ws = load();
    assert!(ws.members.contains_key("talea-core"), "{:?}", ws.members);
    for (name, deps) in &ws.direct {
        let folder = &ws.members[name];
        for (dep, kind) in deps {
            let Some(dep_folder) = ws.members.get(dep) else {
                continue;
            };
            assert!(
                !(folder == "libs" && dep_folder == "services"),
                "library {name} depends on service {dep}"
            );
            assert!(
                !(folder == "services" && dep_folder == "services"),
                "service {name} depends on service {dep}"
            );
            assert!(
                dep_folder != "loadtest",
                "{name} depends on the load tool {dep}"
            );
            assert!(
                !(dep == "talea-testkit" && kind != "dev"),
                "{name} depends on talea-testkit outside [dev-dependencies]"
            );
            assert!(
                name != "talea-core",
                "talea-core depends on workspace crate {dep}"
            );
        }
    }
    for backend in [
        "talea-store-sql",
        "talea-store-pg",
        "talea-store-sqlite",
        "talea-store-log",
    ] {
        if !ws.members.contains_key(backend) {
            continue;
        }
        // talea-api is allowed: the hash chain binds each event as served
        // (talea_api::event), so the stores hash with the same encoding.
        let pulled = ws.transitive(backend);
        for banned in ["axum", "tower", "hyper"] {
            assert!(!pulled.contains(banned), "{backend} pulls in {banned}");
        }
    }
    if ws.members.contains_key("talea-client") {
        let pulled = ws.transitive("talea-client");
        for banned in ["axum", "sqlx"] {
            assert!(!pulled.contains(banned), "talea-client pulls in {banned}");
        }
    }
    let core = ws.transitive("talea-core");
    for banned in ["serde", "sqlx", "tokio"] {
        assert!(!core.contains(banned), "talea-core pulls in {banned}");
    }
}

/// The store crates depend one way: `talea-store` (the trait) on no store
/// crate; the SQL core on the trait alone; each backend on the trait and
/// (the SQL ones) on the core, never on another backend; and `talea-store`
/// and the log store never pull in sqlx.
#[test]
fn store_crates_depend_one_way() {
    let ws = load();
    let stores = [
        "talea-store",
        "talea-store-sql",
        "talea-store-pg",
        "talea-store-sqlite",
        "talea-store-log",
    ];
    let allowed: [(&str, &[&str]); 5] = [
        ("talea-store", &[]),
        ("talea-store-sql", &["talea-store"]),
        ("talea-store-pg", &["talea-store", "talea-store-sql"]),
        ("talea-store-sqlite", &["talea-store", "talea-store-sql"]),
        ("talea-store-log", &["talea-store"]),
    ];
    for (store, may) in allowed {
        let pulled = ws.transitive(store);
        for other in stores.iter().filter(|s| **s != store) {
            assert_eq!(
                pulled.contains(*other),
                may.contains(other),
                "{store} {} {other}",
                if may.contains(other) {
                    "must depend on"
                } else {
                    "must not depend on"
                }
            );
        }
    }
    for light in ["talea-store", "talea-store-log"] {
        assert!(
            !ws.transitive(light).contains("sqlx"),
            "{light} pulls in sqlx"
        );
    }
}

/// No library reads the environment: settings are parsed once, by each
/// service's own `clap` parser (shared `Args` groups in talea-http and
/// talea-telemetry), and handed down as values. Binaries (`src/bin`, the
/// services), unit tests and the test kit may read it.
#[test]
fn no_library_reads_the_environment() {
    let libs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = std::fs::read_dir(&libs)
        .expect("libs/")
        .flatten()
        .filter(|e| e.file_name() != "talea-testkit")
        .map(|e| e.path().join("src"))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name() != "bin" {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for needle in ["env::var(", "env::var_os(", "env::vars("] {
                    if code.contains(needle) {
                        offenders.push(format!("{} ({needle})", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "libraries reading the environment: {offenders:?}"
    );
}

/// Every production source file (`*.rs` under `libs/*/src`,
/// `services/*/src`, `loadtest/*/src`, `bin/` included) is one hop from
/// ARCHITECTURE.md's code map: the code map names, as a backticked path,
/// either the file or its own directory (whose entry then describes the
/// files in it). Every such path the code map names exists, so it cannot
/// point at a file that moved. Tests, benches and examples live outside
/// `src/` and are not covered.
#[test]
fn every_source_file_is_on_the_code_map() {
    use std::path::{Path, PathBuf};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = doc
        .split("\n## Code map")
        .nth(1)
        .expect("a `## Code map` section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let named: BTreeSet<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            ["libs/", "services/", "loadtest/"]
                .iter()
                .any(|r| span.starts_with(r))
        })
        .map(|span| span.trim_end_matches('/').to_owned())
        .collect();
    let missing_paths: Vec<&String> = named.iter().filter(|p| !root.join(p).exists()).collect();
    assert!(
        missing_paths.is_empty(),
        "the code map names paths that do not exist: {missing_paths:?}"
    );

    let mut stack: Vec<PathBuf> = Vec::new();
    for top in ["libs", "services", "loadtest"] {
        for entry in std::fs::read_dir(root.join(top)).expect(top).flatten() {
            stack.push(entry.path().join("src"));
        }
    }
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(&root).expect("under the root");
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut unmapped: Vec<&String> = files
        .iter()
        .filter(|file| {
            let dir = file.rsplit_once('/').map(|(d, _)| d).unwrap_or_default();
            !named.contains(*file) && !named.contains(dir)
        })
        .collect();
    unmapped.sort();
    assert!(
        unmapped.is_empty(),
        "source files neither named in ARCHITECTURE.md's code map nor in a directory it names: \
         {unmapped:?}"
    );
}
