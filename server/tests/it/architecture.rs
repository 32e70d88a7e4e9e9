//! The server's dependencies point one way (`api → app → {store, media, security, audit, inference,
//! intrusion} → domain`): a module never imports a layer above it. Read from the source, so a new
//! `use crate::app::…` in `media/` fails here before it ships.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// For each module of the crate root, the modules it must not import.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "api",
            "app",
            "server",
            "config",
            "store",
            "security",
            "media",
            "audit",
            "inference",
            "intrusion",
            "bus",
            "metrics",
            "postgres",
        ],
    ),
    (
        "store",
        &["api", "app", "server", "config", "security", "media", "audit", "inference", "intrusion", "bus", "metrics"],
    ),
    ("security", &["api", "app", "server", "config", "audit", "media", "inference", "intrusion", "metrics"]),
    ("audit", &["api", "app", "server", "config", "media", "inference", "intrusion", "metrics"]),
    ("media", &["api", "app", "server", "config", "audit", "inference", "intrusion", "metrics"]),
    ("inference", &["api", "app", "server", "config", "audit", "intrusion", "metrics"]),
    ("intrusion", &["api", "app", "server", "config", "audit", "inference", "media", "metrics"]),
    ("bus", &["api", "app", "server", "config", "store", "security", "media", "audit", "inference", "intrusion"]),
    ("app", &["api", "server", "config"]),
];

/// Leaves every layer may use: they import nothing of the crate.
const LEAVES: &[&str] = &["error", "clock", "process"];

/// The crate-root modules that `text` refers to through `crate::` paths, including those named inside
/// `use crate::{a::…, b}` groups.
fn crate_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in text.match_indices("crate::") {
        // `opennvr_server::crate` cannot occur; skip `$crate::` macro paths.
        if text[..i].ends_with('$') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: after `{` and after each comma at depth 0.
            let mut depth = 0usize;
            let mut start = true;
            for (j, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        found.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files of crate-root module `name`: `src/name.rs` and everything under `src/name/`.
fn files_of(src: &Path, name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        files.push(single);
    }
    let dir = src.join(name);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    files
}

#[test]
fn the_scanner_sees_single_and_grouped_imports() {
    let text = "use crate::app::cameras::CameraApp;\nuse crate::{store::Store, security::{seal, token}};\n\
                let x = crate::config::Config::default();\nmacro_rules! m { () => { $crate::error::Error } }";
    let seen: Vec<String> = crate_modules(text).into_iter().collect();
    assert_eq!(seen, ["app", "config", "security", "store"]);
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, forbidden) in FORBIDDEN {
        let files = files_of(&src, module);
        assert!(!files.is_empty(), "no source for module {module}: update this test with the layout");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for import in crate_modules(&text) {
                if forbidden.contains(&import.as_str()) {
                    violations.push(format!("{} imports crate::{import}", file.strip_prefix(&src).unwrap().display()));
                }
            }
        }
    }
    for leaf in LEAVES {
        for file in files_of(&src, leaf) {
            let text = std::fs::read_to_string(&file).unwrap();
            for import in crate_modules(&text) {
                violations
                    .push(format!("{} (a leaf) imports crate::{import}", file.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    assert!(violations.is_empty(), "dependencies must point one way:\n{}", violations.join("\n"));
}

#[test]
fn every_crate_root_module_has_a_place_in_the_layering() {
    // A new top-level module must be placed in FORBIDDEN (or deliberately left at the top).
    let top = ["api", "server", "config", "lib", "main", "metrics", "postgres"];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut unplaced = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !top.contains(&name.as_str())
            && !LEAVES.contains(&name.as_str())
            && !FORBIDDEN.iter().any(|(m, _)| *m == name)
        {
            unplaced.push(name);
        }
    }
    assert!(unplaced.is_empty(), "modules without a layer: {unplaced:?}");
}
