//! The layout is the architecture (ARCHITECTURE.md, "Crates"): the workspace's crates depend on
//! each other in one direction only, and no crate's top-level modules import each other in a
//! cycle (test modules excluded: a test may drive a module with the ones above it). Read from
//! the sources and manifests, so a change that breaks a layer fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's crates, lowest layer first, with their directories: a crate may depend only
/// on crates listed before it.
const LAYERS: &[(&str, &str)] = &[
    ("petitiond-core", "crates/core"),
    ("petitiond-store", "crates/store"),
    ("petitiond-metrics", "crates/metrics"),
    ("petitiond-kafka", "crates/kafka"),
    ("petitiond-channels", "crates/channels"),
    ("petitiond-sim", "crates/sim"),
    ("petitiond", "."),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The petitiond crates named in a manifest's `[dependencies]` (not dev-dependencies: tests
/// may use a simulator).
fn workspace_deps(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    let mut out = BTreeSet::new();
    if let Some(deps) = doc.get("dependencies").and_then(|d| d.as_table_like()) {
        for (name, _) in deps.iter() {
            if LAYERS.iter().any(|(n, _)| *n == name) {
                out.insert(name.to_string());
            }
        }
    }
    out
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let members: BTreeSet<&str> = LAYERS.iter().map(|(_, d)| *d).collect();
    // Every workspace member is placed in a layer.
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    let declared: BTreeSet<&str> = doc["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(declared, members, "workspace members and LAYERS differ");
    for (i, (name, dir)) in LAYERS.iter().enumerate() {
        let allowed: BTreeSet<String> = LAYERS[..i].iter().map(|(n, _)| n.to_string()).collect();
        let deps = workspace_deps(&root().join(dir).join("Cargo.toml"));
        let wrong: Vec<_> = deps.difference(&allowed).collect();
        assert!(
            wrong.is_empty(),
            "{name} depends on a crate above it: {wrong:?}"
        );
    }
}

/// The top-level modules each top-level module of a crate's `src` names through `crate::`
/// (comments skipped; `crate::{a, b::c}` groups read).
fn module_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            if path.extension().is_none_or(|e| e != "rs") || is_test_file(rel) {
                continue;
            }
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            let targets = graph.entry(module.clone()).or_default();
            let text = std::fs::read_to_string(&path).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for named in crate_paths(&code) {
                if named != module {
                    targets.insert(named);
                }
            }
        }
    }
    for skip in ["lib", "main"] {
        graph.remove(skip);
    }
    graph
}

/// The first segment after each `crate::` in `code` (and each member of a `crate::{...}` group).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i;
        at = start + "crate::".len();
        // `$crate::` (macros) and identifiers ending in `crate` are not the crate root.
        if start > 0 && (bytes[start - 1] == b'$' || ident(bytes[start - 1])) {
            continue;
        }
        if bytes.get(at) == Some(&b'{') {
            // Members of the group at depth 1: the first identifier of each.
            let (mut depth, mut expect, mut item) = (0, false, String::new());
            for &b in &bytes[at..] {
                if depth == 1 && expect && ident(b) {
                    item.push(b as char);
                    continue;
                }
                if !item.is_empty() {
                    out.push(std::mem::take(&mut item));
                    expect = false;
                }
                match b {
                    b'{' => {
                        depth += 1;
                        expect = depth == 1;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => expect = true,
                    _ => {}
                }
            }
        } else {
            let name: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// A test module's file (`tests.rs`, `*_tests.rs`, under a `tests/` directory; `path` relative
/// to `src`): tests may
/// drive a module together with the ones above it, production code may not.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

fn ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Modules that are in a cycle (a strongly connected component of more than one module).
fn modules_in_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for n in graph.get(&m).into_iter().flatten() {
                if graph.contains_key(n) && seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    graph
        .keys()
        .filter(|m| reach(m).contains(*m))
        .cloned()
        .collect()
}

#[test]
fn the_cycle_finder_sees_a_cycle_and_a_grouped_import() {
    assert_eq!(
        crate_paths(
            "use crate::{a::X, b, c::{d, e}};\nlet x = crate::f::g(); $crate::h; my_crate::i"
        ),
        ["a", "b", "c", "f"]
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        modules_in_cycles(&graph),
        BTreeSet::from(["a".into(), "b".into(), "c".into()])
    );
}

#[test]
fn no_crate_has_a_module_cycle() {
    for (name, dir) in LAYERS {
        let graph = module_imports(&root().join(dir).join("src"));
        let files = std::fs::read_dir(root().join(dir).join("src"))
            .unwrap()
            .count();
        assert!(
            files == 1 || !graph.is_empty(),
            "{name}: no modules read from {dir}/src"
        );
        let cycles = modules_in_cycles(&graph);
        assert!(
            cycles.is_empty(),
            "{name}: modules in an import cycle: {cycles:?} (graph: {graph:?})"
        );
    }
}

/// The daemon's modules that may import `config`: the wiring, the commands, the demo, the fuzz
/// entry points and the store opener, all above it. A component receives its own sections
/// (ARCHITECTURE.md, "Crates": each component owns its config section).
const CONFIG_READERS: &[&str] = &["app", "cli", "demo", "fuzzing", "storage"];

#[test]
fn components_do_not_import_config() {
    let graph = module_imports(&root().join("src"));
    let readers: Vec<&String> = graph
        .iter()
        .filter(|(m, targets)| targets.contains("config") && !CONFIG_READERS.contains(&m.as_str()))
        .map(|(m, _)| m)
        .collect();
    assert!(
        readers.is_empty(),
        "these modules import `config`; give them their own sections instead: {readers:?}"
    );
}
