//! The layers ARCHITECTURE.md draws, checked on the source: no cycle between the
//! top-level modules, and the decisions and plain types free of I/O. Test code may
//! reach across layers and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names (`crate::x`).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let is_test = name == "tests.rs" || name.ends_with("_tests.rs");
        if !name.ends_with(".rs")
            || is_test
            || relative.starts_with("bin/")
            || ["lib.rs", "main.rs"].contains(&&*relative)
        {
            continue;
        }
        let top = relative.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let uses = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String =
                code[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            assert!(!name.is_empty(), "{relative}: a grouped `crate::{{…}}` import; name each module");
            if name != top {
                uses.insert(name);
            }
        }
    }
    graph
}

/// A path of modules that leads from `start` back to it, if any.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        for next in graph.get(path.last().unwrap()).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

#[test]
fn no_cycle_between_top_level_modules() {
    let graph = module_graph();
    assert!(graph.len() > 10, "the source tree was not found: {graph:?}");
    let cycles: Vec<String> =
        graph.keys().filter_map(|m| cycle_through(&graph, m)).map(|c| c.join(" → ")).collect();
    assert!(cycles.is_empty(), "module cycles (move the shared type down a layer):\n{}", cycles.join("\n"));
}

#[test]
fn decisions_and_plain_types_do_no_io() {
    let graph = module_graph();
    // `domain` names nothing; `policy` only `domain`: both are tested without a database,
    // a file or a clock.
    assert_eq!(graph["domain"], BTreeSet::new());
    assert_eq!(graph["policy"], BTreeSet::from(["domain".to_string()]));
    // The store keeps what it is given; it decides nothing.
    assert_eq!(graph["store"], BTreeSet::from(["domain".to_string()]));
}

/// Every admin change goes through `actions`, in one transaction with its audit row:
/// nothing else writes the audit log (the lockout guard's own undo aside), so a new
/// handler cannot change something unaudited by writing the store itself.
#[test]
fn only_the_actions_write_the_audit_log() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut writers = BTreeSet::new();
    let mut dirs = vec![src.clone()];
    while let Some(path) = dirs.pop() {
        if path.is_dir() {
            dirs.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("audit::record(") {
            writers.insert(path.strip_prefix(&src).unwrap().to_string_lossy().to_string());
        }
    }
    let allowed =
        ["actions/admins.rs", "actions/countries.rs", "actions/mod.rs", "actions/networks.rs", "lockout.rs"];
    let stray: Vec<&String> = writers.iter().filter(|w| !allowed.contains(&w.as_str())).collect();
    assert!(stray.is_empty(), "audit rows written outside `actions`: {stray:?}");
    assert!(writers.contains("actions/mod.rs"), "the scan found no writer at all");
}

/// The Asterisk facts the code cites are in the project's own docs: every
/// `docs/ASTERISK.md §n` names a section (or, in §0, a numbered finding) that exists.
#[test]
fn every_cited_asterisk_section_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/ASTERISK.md")).unwrap();
    let exists = |cite: &str| match cite.split_once('.') {
        Some(("0", item)) => docs.split("\n## 1.").next().unwrap().contains(&format!("\n{item}. **")),
        Some(_) => docs.contains(&format!("\n### {cite} ")),
        None => docs.contains(&format!("\n## {cite}. ")),
    };
    let mut cited = 0;
    let mut dirs = vec![root.join("src"), root.join("tests/it")];
    while let Some(path) = dirs.pop() {
        if path.is_dir() {
            dirs.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.ends_with("architecture.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (i, _) in text.match_indices("docs/ASTERISK.md §") {
            let rest = &text[i + "docs/ASTERISK.md §".len()..];
            let cite: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let cite = cite.trim_end_matches('.');
            assert!(exists(cite), "{}: §{cite} is not in docs/ASTERISK.md", path.display());
            cited += 1;
        }
    }
    assert!(cited >= 10, "only {cited} citations found");
}
