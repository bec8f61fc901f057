//! The crate graph stays as docs/ARCHITECTURE.md draws it: data flows one way, readers never
//! depend on writers, and each outside system is touched by one crate only. Checked on the
//! declared (normal) dependencies of every workspace package, from `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};

/// Each cairn crate and the cairn crates it may depend on. A new crate must be added here (and
/// to ARCHITECTURE.md) before it builds a dependency on anything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("cairn-format", &[]),
    ("cairn-store", &[]),
    ("cairn-kafka", &[]),
    ("cairn-policy", &[]),
    (
        "cairn-query",
        &[
            "cairn-format",
            "cairn-store",
            "cairn-verify",
            "cairn-policy",
            "cairn-kafka",
        ],
    ),
    ("cairn-sealer", &["cairn-format", "cairn-store"]),
    ("cairn-verify", &["cairn-format", "cairn-store"]),
    // The checkpointer is a writer: it reads the log through the verifier's readers and takes
    // the store's origin from the sealer's; no reader depends on it.
    (
        "cairn-log",
        &[
            "cairn-format",
            "cairn-store",
            "cairn-sealer",
            "cairn-verify",
        ],
    ),
    (
        "cairn-ingest",
        &["cairn-format", "cairn-store", "cairn-sealer", "cairn-kafka"],
    ),
    (
        "cairn",
        &[
            "cairn-format",
            "cairn-store",
            "cairn-sealer",
            "cairn-verify",
            "cairn-log",
            "cairn-ingest",
            "cairn-kafka",
            "cairn-policy",
            "cairn-query",
        ],
    ),
];

/// Outside systems and the only crates that may touch them.
const GATEKEEPERS: &[(&str, &[&str])] = &[
    ("object_store", &["cairn-store"]),
    ("rdkafka", &["cairn-kafka", "cairn-ingest"]),
    ("regorus", &["cairn-policy"]),
    ("opa-wasm", &["cairn-policy"]),
];

/// Package name → its normal dependencies' names.
fn workspace() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(crate::cli::repo())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn crate_dependencies_follow_the_architecture() {
    let ws = workspace();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(c, deps)| (*c, deps.iter().copied().collect()))
        .collect();
    let mut problems = Vec::new();
    for (pkg, deps) in &ws {
        if pkg == "cairn-tests" {
            continue; // test support: it may use anything
        }
        let Some(ok) = allowed.get(pkg.as_str()) else {
            problems.push(format!(
                "{pkg} is not in ALLOWED: say which cairn crates it may use"
            ));
            continue;
        };
        for d in deps.iter().filter(|d| d.starts_with("cairn")) {
            if !ok.contains(d.as_str()) {
                problems.push(format!("{pkg} must not depend on {d}"));
            }
        }
        for (system, keepers) in GATEKEEPERS {
            if deps.contains(*system) && !keepers.contains(&pkg.as_str()) {
                problems.push(format!(
                    "{pkg} must not depend on {system} (only {keepers:?})"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The rule has teeth: the verifier really is a reader of the store only.
    assert!(ws["cairn-verify"].contains("cairn-store"));
    assert!(!ws["cairn-verify"].contains("cairn-sealer"));
}
