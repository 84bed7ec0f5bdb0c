//! The house rule, checked: every module imports only from the layers below it, and no two sibling modules import
//! each other (directly or around a loop). The layers, top to bottom, are those of the `# Layout` table in
//! `src/lib.rs`; a top-level module that is not listed here fails the check, so a new folder has to be placed.
//!
//! The check reads the source text: `crate::…` paths (in `use` trees and in expressions), `super::…` and `self::…`
//! paths, and the paths a `mod.rs` reaches through its own child modules. Comments are ignored.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a broken tree should stop it loudly

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Top to bottom; modules on one line share a layer and may not import each other.
const LAYERS: &[&[&str]] = &[
    &["main"],
    &["cli"],
    &["app"],
    &["grpc"],
    &["core"],
    &["upstream"],
    &["observability"],
    &["support"],
    &["proto", "sandbox"],
];

/// A module of the crate: its path from the crate root (`["grpc", "status"]`), empty for the root itself.
type ModulePath = Vec<String>;

#[test]
fn every_import_points_down_and_no_siblings_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = check(&read_tree(&src));
    assert!(
        problems.is_empty(),
        "the module graph has edges against the layering of src/lib.rs:\n{}",
        problems.join("\n")
    );
}

#[test]
fn an_import_from_a_layer_above_is_caught() {
    let tree = tree(&[
        ("core/mod.rs", "mod call;\npub use call::create;"),
        (
            "core/call.rs",
            "use crate::{grpc::status, upstream::Client};\npub fn create() {}",
        ),
        ("grpc/mod.rs", "pub mod status;"),
        ("grpc/status.rs", "use crate::core::create;"),
        ("upstream/mod.rs", "pub struct Client;"),
    ]);
    assert_eq!(
        check(&tree),
        vec!["core/call.rs imports crate::grpc, a layer above core".to_owned()]
    );
}

#[test]
fn a_back_edge_written_as_a_full_path_in_code_is_caught_too() {
    let tree = tree(&[
        (
            "support/watcher.rs",
            "// crate::app in a comment is no import\nfn f() { crate::observability::Metrics::new(); }",
        ),
        ("observability/mod.rs", "pub struct Metrics;"),
        ("app/mod.rs", "pub struct Application;"),
    ]);
    assert_eq!(
        check(&tree),
        vec!["support/watcher.rs imports crate::observability, a layer above support".to_owned()]
    );
}

#[test]
fn modules_of_one_layer_may_not_import_each_other() {
    let tree = tree(&[
        ("proto.rs", "pub struct Session;"),
        ("sandbox/mod.rs", "use crate::proto::Session;"),
    ]);
    assert_eq!(
        check(&tree),
        vec!["sandbox/mod.rs imports crate::proto, a module of its own layer".to_owned()]
    );
}

#[test]
fn siblings_that_import_each_other_are_caught() {
    let tree = tree(&[
        ("grpc/mod.rs", "mod batch;\nmod service;"),
        ("grpc/service.rs", "use super::batch::stream;"),
        ("grpc/batch.rs", "use crate::grpc::service::Gateway;"),
    ]);
    assert_eq!(
        check(&tree),
        vec!["grpc/batch.rs and grpc/service.rs import each other (grpc::batch → grpc::service → grpc::batch)".to_owned()]
    );
}

#[test]
fn a_folder_that_is_not_a_layer_is_caught() {
    let tree = tree(&[("util/mod.rs", "pub fn helper() {}")]);
    assert_eq!(
        check(&tree),
        vec!["util/mod.rs is in no layer: place `util` in LAYERS (tests/architecture.rs) and in src/lib.rs".to_owned()]
    );
}

// === the checker ===

/// One source file: where it is (relative to `src/`), the module it is, and its text without comments.
struct File {
    name: String,
    module: ModulePath,
    code: String,
}

fn read_tree(src: &Path) -> Vec<File> {
    let mut paths = Vec::new();
    collect(src, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let text = fs::read_to_string(&path).expect("source is UTF-8");
            file(&name, &text)
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("readable src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn tree(files: &[(&str, &str)]) -> Vec<File> {
    files.iter().map(|(name, text)| file(name, text)).collect()
}

fn file(name: &str, text: &str) -> File {
    let mut module: ModulePath = name
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if module
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        module.pop();
    }
    File {
        name: name.to_owned(),
        module,
        code: strip_comments(text),
    }
}

/// The text without `//` and `/* */` comments (string literals are left alone: a `//` inside one is rare here and
/// only hides what follows it on that line).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The layer of a top-level module, 0 at the top.
fn layer(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

/// Every problem with the module graph of `files`, one line each.
fn check(files: &[File]) -> Vec<String> {
    let known: BTreeSet<ModulePath> = files.iter().map(|f| f.module.clone()).collect();
    let mut problems = Vec::new();
    let mut sibling_edges: BTreeMap<ModulePath, BTreeSet<ModulePath>> = BTreeMap::new();
    for file in files {
        let Some(top) = file.module.first() else {
            continue; // lib.rs declares the modules and re-exports their surface
        };
        let Some(rank) = layer(top) else {
            problems.push(format!(
                "{} is in no layer: place `{top}` in LAYERS (tests/architecture.rs) and in src/lib.rs",
                file.name
            ));
            continue;
        };
        let mut reported = BTreeSet::new();
        for target in references(file, &known) {
            let Some(target_top) = target.first() else {
                continue;
            };
            if target_top != top {
                let verdict = match layer(target_top) {
                    Some(r) if r > rank => None,
                    Some(r) if r == rank => Some("a module of its own layer"),
                    Some(_) => Some("a layer above"),
                    None => None, // an external crate or a name the check does not know
                };
                if let Some(verdict) = verdict {
                    if reported.insert(target_top.clone()) {
                        let detail = if verdict == "a layer above" {
                            format!("{verdict} {top}")
                        } else {
                            verdict.to_owned()
                        };
                        problems.push(format!(
                            "{} imports crate::{target_top}, {detail}",
                            file.name
                        ));
                    }
                }
                continue;
            }
            // Within a layer: an edge between the two siblings under their nearest common parent.
            if let Some((from, to)) = siblings(&file.module, &target) {
                sibling_edges.entry(from).or_default().insert(to);
            }
        }
    }
    problems.extend(cycles(&sibling_edges, files));
    problems
}

/// The modules `file` refers to, resolved to the longest known module path.
fn references(file: &File, known: &BTreeSet<ModulePath>) -> Vec<ModulePath> {
    let mut paths = Vec::new();
    let code = &file.code;
    // `use` trees: `use crate::{a, b::{c, d}};` names several paths at once.
    for (start, _) in code.match_indices("use ") {
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| !c.is_whitespace() && c != ';' && c != '{' && c != '}') {
            continue; // part of a word ("because ")
        }
        let Some(end) = code[start..].find(';') else {
            continue;
        };
        let tree = &code[start + 4..start + end];
        for path in expand_use_tree(tree) {
            paths.push(path);
        }
    }
    // Paths in code: `crate::a::b`, `super::x`, `self::y`.
    for prefix in ["crate::", "super::", "self::"] {
        for (start, _) in code.match_indices(prefix) {
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path.split("::").map(str::to_owned).collect());
        }
    }
    paths
        .into_iter()
        .filter_map(|path| resolve(&file.module, is_mod_file(&file.name), &path, known))
        .collect()
}

fn is_mod_file(name: &str) -> bool {
    name.ends_with("mod.rs") || name == "lib.rs" || !name.contains('/') && name != "main.rs"
}

/// `use` tree text (`crate::{a, b::{c}}`) as flat paths (`crate::a`, `crate::b::c`).
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    expand(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree.find('{') {
        None => {
            let mut path = prefix.clone();
            path.extend(
                tree.split(" as ")
                    .next()
                    .unwrap_or(tree)
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            out.push(path);
        }
        Some(open) => {
            let head: Vec<String> = tree[..open]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let close = tree
                .rfind('}')
                .filter(|&close| close > open)
                .unwrap_or(tree.len());
            let inner = &tree[open + 1..close];
            let depth = prefix.len();
            prefix.extend(head);
            for part in split_top_level(inner) {
                expand(part, prefix, out);
            }
            prefix.truncate(depth);
        }
    }
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top_level(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The module a path names: `crate::` from the root, `super::` from the parent, `self::` (or, in a `mod.rs`, a
/// child's name) from the module itself; the longest prefix that is a module of the crate.
fn resolve(
    module: &ModulePath,
    is_mod_file: bool,
    path: &[String],
    known: &BTreeSet<ModulePath>,
) -> Option<ModulePath> {
    let (mut base, rest): (ModulePath, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (module.clone(), &path[1..]),
        Some("super") => {
            let mut base = module.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        Some(first) if is_mod_file && known.contains(&child(module, first)) => {
            (module.clone(), path)
        }
        _ => return None,
    };
    let mut found = None;
    for segment in rest {
        base.push(segment.clone());
        if known.contains(&base) {
            found = Some(base.clone());
        } else {
            break;
        }
    }
    found
}

fn child(module: &ModulePath, name: &str) -> ModulePath {
    let mut path = module.clone();
    path.push(name.to_owned());
    path
}

/// For an edge `from → to` inside one layer: the two distinct children of their nearest common ancestor that
/// contain them, unless one contains the other (a module may use its own children, and a child its parent's
/// re-exports).
fn siblings(from: &ModulePath, to: &ModulePath) -> Option<(ModulePath, ModulePath)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((from[..=common].to_vec(), to[..=common].to_vec()))
}

/// Each loop among sibling modules, reported once.
fn cycles(edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>, files: &[File]) -> Vec<String> {
    let name_of = |module: &ModulePath| {
        files
            .iter()
            .find(|f| &f.module == module)
            .map_or_else(|| module.join("/"), |f| f.name.clone())
    };
    let mut seen_loops = BTreeSet::new();
    let mut problems = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    let mut members: Vec<_> = trail.iter().map(name_of).collect();
                    members.sort();
                    if seen_loops.insert(members.clone()) {
                        let mut shown: Vec<String> = trail.iter().map(|m| m.join("::")).collect();
                        shown.push(start.join("::"));
                        problems.push(format!(
                            "{} import each other ({})",
                            members.join(" and "),
                            shown.join(" → ")
                        ));
                    }
                } else if !trail.contains(next) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    problems
}
