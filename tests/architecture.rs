//! The shape of the source tree, checked: no import cycle between the crate's top-level
//! modules (a reader can take them bottom-up), and `lib.rs`'s map names every module.
//!
//! An import is any `crate::<module>` path outside `#[cfg(test)]` code (tests may reach
//! across layers to build fixtures).

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules `lib.rs` declares.
fn declared_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(source_dir().join("lib.rs")).expect("lib.rs reads");
    lib.lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').to_string())
        .collect()
}

fn rust_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("dir reads") {
            rust_files(&entry.expect("entry").path(), found);
        }
    } else if path.is_file() && path.extension().is_some_and(|ext| ext == "rs") {
        found.push(path.to_path_buf());
    }
}

/// The code of a file without its `#[cfg(test)]` items: from each such attribute to the
/// end of the item it marks (a line or a braced block).
fn production_code(text: &str) -> String {
    let mut kept = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        let mut depth = 0i64;
        let mut opened = false;
        for item in lines.by_ref() {
            depth += item.matches('{').count() as i64 - item.matches('}').count() as i64;
            opened |= item.contains('{');
            let ended_line_item = !opened && item.trim_end().ends_with(';');
            if ended_line_item || (opened && depth <= 0) {
                break;
            }
        }
    }
    kept
}

/// The top-level modules a piece of code names after `crate::`, including inside
/// `use crate::{a, b::c}` groups.
fn named_modules(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            group.split(',').collect()
        } else {
            vec![rest]
        };
        for name in names {
            let name: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                named.insert(name);
            }
        }
    }
    named
}

/// Module → the other top-level modules its production code imports.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = declared_modules().into_iter().collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        rust_files(&source_dir().join(module), &mut files);
        rust_files(&source_dir().join(format!("{module}.rs")), &mut files);
        assert!(!files.is_empty(), "module {module} has no source file");
        let imports = graph.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source reads");
            imports.extend(named_modules(&production_code(&text), &modules));
        }
        imports.remove(module);
    }
    graph
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let graph = import_graph();
    assert!(graph.len() >= 10, "found the modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle between top-level modules: {}\nthe graph: {graph:#?}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    let modules: BTreeSet<String> = ["hold", "store", "sku"].map(String::from).into();
    let code = "use crate::{store::Journal, sku};\nuse crate::hold::X;\n\
        #[cfg(test)]\nmod tests {\n    use crate::hold::Y;\n}\n";
    assert_eq!(
        named_modules(&production_code(code), &modules),
        ["hold", "sku", "store"].map(String::from).into(),
    );
    assert!(
        !production_code(code).contains("Y"),
        "test code is left out"
    );
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("hold".into(), ["store".to_string()].into());
    graph.insert("store".into(), ["sku".to_string()].into());
    graph.insert("sku".into(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
    graph.insert("sku".into(), ["hold".to_string()].into());
    assert_eq!(
        find_cycle(&graph),
        Some(["hold", "store", "sku", "hold"].map(String::from).to_vec())
    );
}

#[test]
fn the_module_map_in_lib_rs_names_every_module() {
    let lib = std::fs::read_to_string(source_dir().join("lib.rs")).expect("lib.rs reads");
    for module in declared_modules() {
        assert!(
            lib.contains(&format!("[`{module}`]")),
            "lib.rs's map of the modules does not describe `{module}`"
        );
    }
}
