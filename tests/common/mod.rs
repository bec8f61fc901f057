//! Helpers shared by the integration tests: run the real `cairn` binary, read its reports.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// Runs `cairn args…`, returning the output; panics with stderr if the exit code differs.
pub fn run_expect(args: &[&str], code: i32) -> Output {
    let out = cairn().args(args).output().expect("run cairn");
    assert_eq!(
        out.status.code(),
        Some(code),
        "cairn {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Keys {
    pub dir: PathBuf,
    pub key: String,
    pub public: String,
}

pub fn keygen(dir: &Path) -> Keys {
    let kdir = dir.join("keys");
    run_expect(&["keygen", "--out", kdir.to_str().unwrap()], 0);
    Keys {
        key: kdir.join("signing.key").to_str().unwrap().into(),
        public: kdir.join("signing.pub").to_str().unwrap().into(),
        dir: kdir,
    }
}

pub fn seal(input: &Path, store: &str, key: &str, segment_events: u64, rejects: &Path) -> Output {
    run_expect(
        &[
            "seal",
            "--input",
            input.to_str().unwrap(),
            "--source-id",
            "billing",
            "--store",
            store,
            "--key",
            key,
            "--segment-events",
            &segment_events.to_string(),
            "--rejects",
            rejects.to_str().unwrap(),
        ],
        0,
    )
}

/// `cairn verify --json`: (exit code, report).
pub fn verify(store: &str, pubkeys: &[&str]) -> (i32, serde_json::Value) {
    let mut cmd = cairn();
    cmd.args(["verify", "--store", store, "--json"]);
    for k in pubkeys {
        cmd.args(["--pubkey", k]);
    }
    let out = cmd.output().expect("run cairn verify");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON report ({e})\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

/// The (kind, object) pairs of a report's findings.
pub fn findings(report: &serde_json::Value) -> BTreeSet<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn kinds(report: &serde_json::Value) -> BTreeSet<String> {
    findings(report).into_iter().map(|(k, _)| k).collect()
}

/// Sorted object names (relative to the store root) under `root`.
pub fn objects(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

pub fn make_writable(p: &Path) {
    let mut perms = std::fs::metadata(p).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(p, perms).unwrap();
}

pub fn valid_lines(path: &Path) -> (u64, u64) {
    // (valid, malformed) as produced by scripts/gen_events.py --malformed-every 7
    let text = std::fs::read_to_string(path).unwrap();
    let total = text.lines().count() as u64;
    let bad = total / 7;
    (total - bad, bad)
}
