//! netpost-user's modules must not import each other in a cycle: helpers sit at the bottom,
//! probes above them, the loader and the run loop above the probes, sinks read the Snapshot.
//! This reads every file under src/, builds the file-level graph of `crate::...` references
//! (in `use` trees and in paths) and fails with the cycle when there is one.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// A module path (`["probe", "drops", "model"]`) and the file that holds it.
type Modules = BTreeMap<Vec<String>, String>;

/// Every file of the library crate, by module path (main.rs is the binary: it imports the
/// library as `netpost::`, never `crate::`).
fn modules(src: &Path) -> Modules {
    let mut out = Modules::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut segments: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            let file = segments.pop().unwrap();
            match file.as_str() {
                "main.rs" if segments.is_empty() => continue,
                "lib.rs" if segments.is_empty() => {}
                "mod.rs" => {}
                name => segments.push(name.trim_end_matches(".rs").to_string()),
            }
            out.insert(segments, rel.to_string_lossy().into_owned());
        }
    }
    out
}

/// The text with comments, string and char literals blanked out (so doc comments and
/// messages naming `crate::x` are not references).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // Raw string: r"..." or r#"..."#.
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            let start = i + 1 + hashes;
            if b.get(start) != Some(&b'"') {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i = start + 1;
            while i < b.len() && !b[i..].starts_with(&close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && (b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')))
        {
            // A char literal ('x', '\n', '\''); lifetimes ('a) have no closing quote.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            let len = text[i..].chars().next().unwrap().len_utf8();
            out.push_str(&text[i..i + len]);
            i += len;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths a `crate::` reference names: `crate::a::{b::{self, C}, d}` names `a::b`,
/// `a::b::C` and `a::d`. `at` is just past `crate::`; returns where the reference ends.
fn paths_at(code: &str, mut at: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let skip_space = |i: usize| i + (code[i..].len() - code[i..].trim_start().len());
    let mut path = prefix.to_vec();
    loop {
        at = skip_space(at);
        let rest = &code[at..];
        if rest.starts_with('{') {
            // A use-tree group: each item continues `path`.
            at += 1;
            loop {
                at = skip_space(at);
                match code[at..].chars().next() {
                    None => return at,
                    Some('}') => return at + 1,
                    Some(',') => at += 1,
                    Some(_) => at = paths_at(code, at, &path, out).max(at + 1),
                }
            }
        }
        if rest.starts_with('*') {
            out.push(path);
            return at + 1;
        }
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if len == 0 {
            out.push(path);
            return at;
        }
        if &rest[..len] != "self" {
            path.push(rest[..len].to_string());
        }
        at = skip_space(at + len);
        if code[at..].starts_with("::") {
            at += 2;
            continue;
        }
        out.push(path);
        // `X as Y`: the alias is no path.
        if code[at..].starts_with("as ") {
            at = skip_space(at + 3);
            at += code[at..]
                .find(|c: char| !is_ident(c))
                .unwrap_or(code.len() - at);
        }
        return at;
    }
}

/// The module files `code` refers to through `crate::` paths.
fn references(code: &str, modules: &Modules) -> BTreeSet<String> {
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("crate::") {
        let at = from + pos;
        from = at + "crate::".len();
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        from = paths_at(code, from, &[], &mut paths).max(from);
    }
    paths
        .into_iter()
        .filter_map(|path| {
            // The deepest module on the path: `probe::drops::model::DropsStats` is a
            // reference to probe/drops/model.rs.
            (0..=path.len())
                .rev()
                .find_map(|n| modules.get(&path[..n]))
                .cloned()
        })
        .collect()
}

type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph(sources: &BTreeMap<Vec<String>, (String, String)>) -> Graph {
    let modules: Modules = sources
        .iter()
        .map(|(path, (file, _))| (path.clone(), file.clone()))
        .collect();
    sources
        .values()
        .map(|(file, text)| {
            let mut to = references(&code_only(text), &modules);
            to.remove(file);
            (file.clone(), to)
        })
        .collect()
}

/// One cycle of the graph, if there is any (depth-first search, three colours).
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        graph: &'a Graph,
        done: &mut BTreeSet<&'a str>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn read_sources(src: &Path) -> BTreeMap<Vec<String>, (String, String)> {
    modules(src)
        .into_iter()
        .map(|(path, file)| {
            let text = std::fs::read_to_string(src.join(&file)).expect("read source");
            (path, (file, text))
        })
        .collect()
}

#[test]
fn the_modules_of_netpost_user_import_each_other_without_a_cycle() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&read_sources(&src));
    // The reader must see the graph it checks: a broken parser finding nothing passes.
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        graph.len() > 50 && edges > 100,
        "{} files, {edges} edges",
        graph.len()
    );
    assert!(
        graph["run.rs"].contains("model.rs"),
        "{:?}",
        graph["run.rs"]
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in netpost-user/src: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_cycle_is_found_and_shown() {
    let file = |path: &[&str], name: &str, text: &str| {
        (
            path.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            (name.to_string(), text.to_string()),
        )
    };
    let sources: BTreeMap<_, _> = [
        file(&[], "lib.rs", "pub mod a; pub mod b; pub mod c;"),
        file(&["a"], "a.rs", "use crate::{b::{self, X as Y}, c};\n"),
        // Only in a comment and a string: no reference. // crate::a
        file(&["b"], "b.rs", "/* crate::a */ fn f() { g(\"crate::a\"); }"),
        file(&["c"], "c/mod.rs", "fn f() -> crate::a::T { todo!() }"),
        file(&["c", "d"], "c/d.rs", ""),
    ]
    .into();
    let g = graph(&sources);
    assert_eq!(g["a.rs"], ["b.rs", "c/mod.rs"].map(String::from).into());
    assert!(g["b.rs"].is_empty(), "{:?}", g["b.rs"]);
    let cycle = find_cycle(&g).expect("a -> c -> a");
    assert_eq!(cycle, ["a.rs", "c/mod.rs", "a.rs"]);
}
