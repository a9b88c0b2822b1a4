//! The layout is the architecture (ARCHITECTURE.md, "Crates"): the workspace's crates depend on
//! each other in one direction only, and no crate's top-level modules import each other in a
//! cycle (test modules excluded: a test may drive a module with the ones above it). Read from
//! the sources and manifests, so a change that breaks a layer fails here. No production function
//! grows past [`MAX_FUNCTION_LINES`] either (data and named exceptions aside).

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

/// The longest a function may be, from its `fn` line to its closing brace: past this a reader
/// holds too much at once, and a name for each step says more than the comments between them.
const MAX_FUNCTION_LINES: usize = 150;

/// Functions allowed past [`MAX_FUNCTION_LINES`], as (the file's path or its tail, function
/// name), each with why: a tail keeps matching when a module moves to another crate. An entry
/// whose function is short again (or gone) fails the test: delete it.
const LONG_FUNCTIONS: &[(&str, &str)] = &[
    // Data: one registration per metric (name, help, type, labels), in exposition order.
    ("crates/metrics/src/lib.rs", "new"),
];

/// `text` with comments, string and character literals blanked to spaces (line breaks kept),
/// so braces and `fn` in them are not code.
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[char]| {
        out.extend(s.iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < c.len() {
        let rest = &c[i..];
        let prev_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        let end = if rest.starts_with(&['/', '/']) {
            i + rest.iter().position(|&ch| ch == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            let (mut depth, mut j) = (0, i);
            loop {
                if c[j..].starts_with(&['/', '*']) {
                    depth += 1;
                    j += 2;
                } else if c[j..].starts_with(&['*', '/']) {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break j;
                    }
                } else {
                    j += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest, prev_ident) {
            // r"…", r#"…"#, br"…": ends at `"` and as many `#`.
            let open = rest.iter().position(|&ch| ch == '"').unwrap();
            let mut j = i + open + 1;
            while !(c[j] == '"'
                && c[j + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|&&h| h == '#')
                    .count()
                    == hashes)
            {
                j += 1;
            }
            j + 1 + hashes
        } else if c[i] == '"' {
            let mut j = i + 1;
            while c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if c[i] == '\'' && rest.get(1) == Some(&'\\') {
            i + 2 + rest[2..].iter().position(|&ch| ch == '\'').unwrap() + 1
        } else if c[i] == '\'' && rest.get(2) == Some(&'\'') {
            i + 3
        } else {
            out.push(c[i]);
            i += 1;
            continue;
        };
        blank(&mut out, &c[i..end]);
        i = end;
    }
    out
}

/// The `#` count of a raw string literal starting here (`r`, `br`), if one does.
fn raw_string_start(rest: &[char], prev_ident: bool) -> Option<usize> {
    if prev_ident {
        return None;
    }
    let after = match rest {
        ['r', tail @ ..] | ['b', 'r', tail @ ..] => tail,
        _ => return None,
    };
    let hashes = after.iter().take_while(|&&h| h == '#').count();
    (after.get(hashes) == Some(&'"')).then_some(hashes)
}

/// Each function with a body in `code` (from [`code_only`]) outside `#[cfg(test)]` modules:
/// (name, lines from its `fn` line to its closing brace).
fn function_lengths(code: &str) -> Vec<(String, usize)> {
    let c: Vec<char> = code.chars().collect();
    let line_at = |i: usize| c[..i].iter().filter(|&&ch| ch == '\n').count();
    let matching = |open: usize| {
        let mut depth = 0;
        for (j, &ch) in c.iter().enumerate().skip(open) {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return j;
                    }
                }
                _ => {}
            }
        }
        c.len() - 1
    };
    let word_at = |i: usize, w: &str| {
        let n = w.chars().count();
        c.len() >= i + n
            && c[i..i + n].iter().copied().eq(w.chars())
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
            && c.get(i + n)
                .is_none_or(|ch| !(ch.is_alphanumeric() || *ch == '_'))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i..].starts_with(&"#[cfg(test)]".chars().collect::<Vec<_>>()) {
            // Past further attributes to the item: a test module's body is skipped.
            let mut j = i + "#[cfg(test)]".len();
            while j < c.len() && (c[j].is_whitespace() || c[j] == '#') {
                if c[j] == '#' {
                    j += c[j..].iter().position(|&ch| ch == ']').unwrap() + 1;
                } else {
                    j += 1;
                }
            }
            if word_at(j, "mod") {
                let end = j + c[j..]
                    .iter()
                    .position(|&ch| ch == '{' || ch == ';')
                    .unwrap();
                i = if c[end] == '{' {
                    matching(end) + 1
                } else {
                    end + 1
                };
                continue;
            }
        }
        if word_at(i, "fn") {
            let name: String = c[i + 2..]
                .iter()
                .skip_while(|ch| ch.is_whitespace())
                .take_while(|ch| ch.is_alphanumeric() || **ch == '_')
                .collect();
            // The signature ends at the first `{` (a body) or `;` (none) outside () and [].
            let (mut depth, mut j) = (0i32, i);
            while j < c.len() {
                match c[j] {
                    '(' | '[' => depth += 1,
                    ')' | ']' => depth -= 1,
                    '{' | ';' if depth == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            if !name.is_empty() && j < c.len() && c[j] == '{' {
                out.push((name, line_at(matching(j)) - line_at(i) + 1));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn the_function_measure_skips_literals_comments_and_test_modules() {
    let code = code_only(concat!(
        "fn a() {\n    let s = \"}\"; let c = '{'; let r = r#\"}\"#;\n    // }\n    /* } */\n}\n",
        "trait T {\n    fn decl(&self, x: [u8; 4])\n        -> u8;\n}\n",
        "fn b<'a>(x: &'a str) -> &'a str {\n    x\n}\n",
        "#[cfg(test)]\nmod tests {\n    fn long() {\n    }\n}\n",
    ));
    assert_eq!(
        function_lengths(&code),
        [("a".to_string(), 5), ("b".to_string(), 3)]
    );
}

/// The source files of every crate, production code only, as (path under the root, text):
/// test files skipped, and so are the files of modules declared `#[cfg(test)] mod name;`
/// (test data, golden-file drivers) with what is under them.
fn production_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for (_, dir) in LAYERS {
        let src = root().join(dir).join("src");
        let mut stack = vec![src.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !is_test_file(path.strip_prefix(&src).unwrap())
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    files.push((path, text));
                }
            }
        }
    }
    // Where each `#[cfg(test)] mod name;` lives: name.rs and name/ beside a mod.rs, lib.rs or
    // main.rs, else under the directory named after the file.
    let mut test_modules: Vec<PathBuf> = Vec::new();
    for (path, text) in &files {
        let stem = path.file_stem().unwrap().to_string_lossy();
        let dir = if ["mod", "lib", "main"].contains(&stem.as_ref()) {
            path.parent().unwrap().to_path_buf()
        } else {
            path.parent().unwrap().join(stem.as_ref())
        };
        for name in test_module_files(&code_only(text)) {
            test_modules.push(dir.join(format!("{name}.rs")));
            test_modules.push(dir.join(name));
        }
    }
    let mut out: Vec<(String, String)> = files
        .into_iter()
        .filter(|(path, _)| !test_modules.iter().any(|t| path.starts_with(t)))
        .map(|(path, text)| {
            let rel = path.strip_prefix(root()).unwrap();
            (rel.to_string_lossy().replace('\\', "/"), text)
        })
        .collect();
    out.sort();
    out
}

/// The names of the modules `code` declares as `#[cfg(test)] mod name;` (in their own file).
fn test_module_files(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("#[cfg(test)]") {
        rest = &rest[i + "#[cfg(test)]".len()..];
        // Past further attributes to the item.
        let mut item = rest.trim_start();
        while item.starts_with('#') {
            item = item[item.find(']').unwrap() + 1..].trim_start();
        }
        let item = item.strip_prefix("pub(crate) ").unwrap_or(item);
        let item = item.strip_prefix("pub ").unwrap_or(item);
        if let Some(decl) = item.strip_prefix("mod ") {
            let name: String = decl
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if decl[name.len()..].trim_start().starts_with(';') {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_150_lines() {
    let mut long = Vec::new();
    let mut excepted_seen = BTreeSet::new();
    for (path, text) in production_sources() {
        for (name, lines) in function_lengths(&code_only(&text)) {
            if lines <= MAX_FUNCTION_LINES {
                continue;
            }
            let excepted = LONG_FUNCTIONS.iter().find(|(file, fname)| {
                *fname == name && (path == *file || path.ends_with(&format!("/{file}")))
            });
            if let Some(e) = excepted {
                excepted_seen.insert(*e);
            } else {
                long.push(format!("{path}: fn {name} ({lines} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines: split each into steps named for what they \
         do (or, for data, add it to LONG_FUNCTIONS with why):\n{}",
        long.join("\n")
    );
    let stale: Vec<_> = LONG_FUNCTIONS
        .iter()
        .filter(|e| !excepted_seen.contains(*e))
        .collect();
    assert!(
        stale.is_empty(),
        "LONG_FUNCTIONS entries no longer over {MAX_FUNCTION_LINES} lines (or gone): delete \
         them: {stale:?}"
    );
}
