//! The API server's layering, checked over its sources: its top-level modules import each other
//! without a cycle (a submodule counts as its top-level module), and kinds are told apart by
//! group and resource name only in the registration (`registry/mod.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each source file (relative to `src/`) with its code before any `#[cfg(test)]` section.
fn code() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            let text = match text.find("#[cfg(test)]") {
                Some(at) => &text[..at],
                None => &text[..],
            };
            // Comments (and doc links) are not imports.
            let code: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .map(|line| format!("{line}\n"))
                .collect();
            let relative = path
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            (relative, code)
        })
        .collect()
}

/// The top-level module a file belongs to: `registry/core/pod.rs` → `registry`.
fn module_of(relative: &str) -> String {
    let first = relative.split('/').next().unwrap_or(relative);
    first.trim_end_matches(".rs").to_string()
}

fn ident_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules `code` names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c};`: each top-level item of the group.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        found.insert(ident_at(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident_at(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, code) in code() {
        let module = module_of(&file);
        if module == "lib" {
            continue;
        }
        let targets = edges.entry(module.clone()).or_default();
        for target in imports(&code) {
            if target != module {
                targets.insert(target);
            }
        }
    }
    assert!(edges.contains_key("rest") && edges["rest"].contains("registry"));
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle between modules: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_sees_grouped_imports_and_cycles() {
    let found = imports("use crate::{a::b, c};\nuse crate::d::E;\nlet x = crate::e::f();");
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["a", "c", "d", "e"]);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("a".into());
    assert!(find_cycle(&edges).is_some());
    edges.remove("b");
    assert!(find_cycle(&edges).is_none());
}

/// Comparisons of a resource's group or plural with a literal, and matches on them.
fn kind_switches(code: &str) -> Vec<String> {
    let patterns = [
        ".plural == \"",
        ".group == \"",
        "match (info.group",
        "match (resource.group",
        "match info.plural",
        "match resource.plural",
        "(info.group, info.plural)",
    ];
    code.lines()
        .filter(|line| patterns.iter().any(|p| line.contains(p)))
        .map(str::trim)
        .map(String::from)
        .collect()
}

#[test]
fn kinds_are_told_apart_only_in_the_registration() {
    let mut found = Vec::new();
    for (file, code) in code() {
        // The registration; and the handler of the six review kinds, create-only resources
        // without storage whose dispatch by name is their registration.
        if file == "registry/mod.rs" || file == "review.rs" {
            continue;
        }
        for line in kind_switches(&code) {
            found.push(format!("{file}: {line}"));
        }
    }
    assert!(
        found.is_empty(),
        "per-kind switches outside the registration:\n{}",
        found.join("\n")
    );
    assert_eq!(kind_switches("if info.plural == \"pods\" {").len(), 1);
}
