//! The library's dependency direction, checked on the source tree itself:
//! - src/lib.rs declares the modules in pipeline order, and no module names one declared below it
//!   (`crate::x` in its code), so the pipeline reads top to bottom and has no import circles;
//! - the `hive` library does not link the simulated fleet: with default features off, nothing it
//!   depends on (transitively, normal dependencies) is `winsim`, and no library module names
//!   `winsim` outside its tests. The simulator belongs to the binary's `demo` and to tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges that break the order today, each with why it is still there. An entry that no longer
/// matches the tree fails the test too, so the list only shrinks.
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The modules src/lib.rs declares, in order.
fn declared_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

/// Every .rs file of a top-level module (`src/x.rs` or everything below `src/x/`).
fn module_files(name: &str) -> Vec<PathBuf> {
    let file = root().join("src").join(format!("{name}.rs"));
    let mut out = Vec::new();
    if file.is_file() {
        out.push(file);
    }
    let mut stack = vec![root().join("src").join(name)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments and without its `#[cfg(test)]` part (tests may use
/// anything; by this tree's convention the test module is the file's tail).
fn code_of(path: &Path) -> String {
    if is_test_only_file(path) {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file that its parent module declares only for tests (`#[cfg(test)] mod x;`), such as a
/// test-support module: like a test tail, it may use anything.
fn is_test_only_file(path: &Path) -> bool {
    let (Some(stem), Some(dir)) = (path.file_stem().and_then(|s| s.to_str()), path.parent()) else {
        return false;
    };
    if stem == "mod" {
        return false;
    }
    let parent = dir.join("mod.rs");
    let Ok(text) = std::fs::read_to_string(&parent) else {
        return false;
    };
    let decl = format!("mod {stem};");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .any(|w| w[0] == "#[cfg(test)]" && (w[1] == decl || w[1] == format!("pub {decl}")))
}

/// Top-level modules a piece of code names: `crate::x::...` and `use crate::{x::..., y}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("");
                out.insert(first.trim().to_string());
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(word);
        }
    }
    out
}

fn upward_edges() -> BTreeMap<(String, String), PathBuf> {
    let order = declared_modules();
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut edges = BTreeMap::new();
    for (i, m) in order.iter().enumerate() {
        for f in module_files(m) {
            for used in named_modules(&code_of(&f)) {
                if rank.get(used.as_str()).is_some_and(|&j| j > i) {
                    edges.entry((m.clone(), used)).or_insert(f.clone());
                }
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_one_declared_below_it() {
    let order = declared_modules();
    assert!(
        order.len() > 5,
        "src/lib.rs declares only {order:?}: the check reads `pub mod x;` lines"
    );
    let edges = upward_edges();
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|(a, b, _)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<String> = edges
        .iter()
        .filter(|(e, _)| !known.contains(*e))
        .map(|((a, b), f)| format!("{a} -> {b} ({})", f.display()))
        .collect();
    assert!(
        new.is_empty(),
        "modules naming a module declared below them in src/lib.rs (pipeline order {order:?}):\n{}",
        new.join("\n")
    );
    let stale: Vec<&(String, String)> = known.iter().filter(|e| !edges.contains_key(*e)).collect();
    assert!(
        stale.is_empty(),
        "KNOWN_UPWARD lists edges the tree no longer has; delete them: {stale:?}"
    );
}

#[test]
fn the_checker_sees_grouped_and_plain_paths() {
    let found = named_modules(
        "use crate::remote::Target;\nuse crate::{journal::Journal, events};\nlet x = crate::scan::run::f();",
    );
    let want: BTreeSet<String> = ["remote", "journal", "events", "scan"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, want);
}

#[test]
fn no_library_module_names_winsim() {
    let mut offenders = Vec::new();
    for m in declared_modules() {
        for f in module_files(&m) {
            if code_of(&f).contains("winsim") {
                offenders.push(f.display().to_string());
            }
        }
    }
    let lib = code_of(&root().join("src/lib.rs"));
    if lib.contains("winsim") {
        offenders.push("src/lib.rs".into());
    }
    assert!(
        offenders.is_empty(),
        "library modules naming winsim outside their tests: {offenders:?}"
    );
}

/// `cargo metadata` resolves the workspace for this platform with default features off; from `hive`, follow normal
/// dependencies only and look for `winsim`.
#[test]
fn the_library_does_not_link_the_simulator() {
    // Only this platform's packages: the others' are not downloaded, and do not matter here.
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let rustc = String::from_utf8_lossy(&rustc.stdout);
    let host = rustc
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host triple");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--no-default-features",
            "--filter-platform",
            host,
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve.nodes");
    let by_id: BTreeMap<&str, &serde_json::Value> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let hive = by_id
        .keys()
        .find(|id| name_of(id) == "hive")
        .copied()
        .expect("the hive package in the resolve graph");
    let mut seen = BTreeSet::new();
    let mut stack = vec![(hive, vec!["hive".to_string()])];
    while let Some((id, path)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in by_id[id]["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            let Some(dep_id) = dep["pkg"].as_str() else {
                continue;
            };
            if !normal {
                continue;
            }
            let name = name_of(dep_id);
            let mut via = path.clone();
            via.push(name.clone());
            assert_ne!(
                name,
                "winsim",
                "the hive library links the simulator: {}",
                via.join(" -> ")
            );
            stack.push((dep_id, via));
        }
    }
    assert!(
        seen.len() > 10,
        "the walk found only {} packages: the check would pass on a broken graph",
        seen.len()
    );
}
