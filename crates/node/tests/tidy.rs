//! The pure core stays pure: `corral-proto`, `corral-tree`, `corral-node` and `corral-zab`
//! depend on no async runtime and never read a clock or an unseeded random source, so the
//! same code can run under a deterministic simulator. (After TigerBeetle's tidy checks.)

use std::fs;
use std::path::{Path, PathBuf};

const PURE_CRATES: &[&str] = &["proto", "tree", "node", "zab"];

/// Dependencies a pure crate must not have.
const FORBIDDEN_DEPS: &[&str] = &[
    "tokio",
    "rand",
    "getrandom",
    "async-std",
    "mio",
    "corral-server",
];

/// Calls a pure crate must not make.
const FORBIDDEN_CALLS: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::random",
    "std::thread::sleep",
    "std::net::",
    "std::fs::",
    "tokio::",
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn pure_crates_have_no_runtime_dependencies() {
    for c in PURE_CRATES {
        let manifest = crates_dir().join(c).join("Cargo.toml");
        let text =
            fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        // Only [dependencies]: tests may use anything.
        let deps: String = text
            .split("\n[")
            .filter(|section| section.starts_with("dependencies]"))
            .collect();
        for bad in FORBIDDEN_DEPS {
            let found = deps.lines().any(|l| {
                l.trim_start().starts_with(&format!("{bad} "))
                    || l.trim_start().starts_with(&format!("{bad}."))
                    || l.trim_start().starts_with(&format!("{bad}="))
            });
            assert!(
                !found,
                "{} depends on {bad}: the pure core must not",
                manifest.display()
            );
        }
    }
}

#[test]
fn pure_crates_read_no_clock_and_no_unseeded_randomness() {
    for c in PURE_CRATES {
        let mut files = Vec::new();
        rust_files(&crates_dir().join(c).join("src"), &mut files);
        assert!(!files.is_empty(), "no sources found for {c}");
        for f in files {
            let text = fs::read_to_string(&f).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for bad in FORBIDDEN_CALLS {
                    assert!(
                        !code.contains(bad),
                        "{}:{}: `{bad}` in the pure core",
                        f.display(),
                        n + 1
                    );
                }
            }
        }
    }
}
