//! No import circles among the inspector's modules (lower layers never import from
//! higher ones). Reads `src/` and follows every `crate::MODULE` path; `inspect/` counts as one
//! module, and so does main.rs (`otel_ctx_dump::` paths), which nothing may import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The modules a source text names through `crate::NAME` (or `otel_ctx_dump::NAME`).
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "otel_ctx_dump::"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` groups are not used in this crate; a bare name is a module.
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut add = |module: String, path: &Path| {
        let text = std::fs::read_to_string(path).expect("read source");
        let mut deps = imports(&text);
        deps.remove(&module);
        graph.entry(module).or_default().extend(deps);
    };
    for entry in std::fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            for sub in std::fs::read_dir(&path).expect("subdir") {
                add(stem.clone(), &sub.expect("entry").path());
            }
        } else if stem != "lib" {
            add(stem, &path);
        }
    }
    graph
}

/// A circle, as the list of modules on it, if the graph has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(n: &str, g: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_import_without_circles() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.contains_key("inspect") && graph.contains_key("ptrace"),
        "{graph:?}"
    );
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn nothing_imports_the_binary() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for (module, deps) in &graph {
        assert!(!deps.contains("main"), "{module} imports main");
    }
}

/// The library's modules (native/) too: layered, with `status` at the bottom importing nothing.
#[test]
fn library_modules_import_without_circles() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../native"));
    assert!(
        graph.contains_key("ffi") && graph.contains_key("process_context"),
        "{graph:?}"
    );
    assert_eq!(graph["status"], BTreeSet::new(), "status is the bottom layer");
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

/// Control: the finder sees the two circles these modules once had, as they were.
#[test]
fn the_cycle_finder_sees_a_circle() {
    let g = |edges: &[(&str, &str)]| {
        let mut graph = Graph::new();
        for (a, b) in edges {
            graph.entry(a.to_string()).or_default().insert(b.to_string());
        }
        graph
    };
    let old = g(&[
        ("json", "output"),
        ("output", "process_context"),
        ("process_context", "json"),
    ]);
    assert!(find_cycle(&old).is_some());
    assert!(find_cycle(&g(&[("inspect", "ptrace"), ("ptrace", "inspect")])).is_some());
    // The library's old circle: the lock module called into the modules that use its locks.
    let library = g(&[
        ("handle", "fork_safe"),
        ("fork_safe", "process_context"),
        ("process_context", "self_check"),
        ("self_check", "ffi"),
        ("ffi", "handle"),
    ]);
    assert!(find_cycle(&library).is_some());
    assert_eq!(
        find_cycle(&g(&[("json", "output"), ("output", "process_context")])),
        None
    );
    assert_eq!(
        imports("use crate::maps::{Mapping};\nlet x = crate::record::hex(b);"),
        BTreeSet::from(["maps".to_owned(), "record".to_owned()])
    );
}
