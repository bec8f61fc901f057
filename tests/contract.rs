//! The Parquet contract of docs/FORMAT.md §4, shown with another writer: segments written by
//! tests/independent_writer.py (pyarrow, from FORMAT.md alone). Issue 7: pyarrow's spelling of
//! the same content (`key_value`/`key`/`value` map parts, nullable declarations) was a
//! content mismatch to cairn and could not be adopted as a crash leftover.

use cairn_tests::*;
use std::path::{Path, PathBuf};

struct Setup {
    tmp: tempfile::TempDir,
    keys: Keys,
    input: PathBuf,
    /// Merkle roots of cairn's own segments of `input`, in offset order.
    cairn_roots: Vec<String>,
}

const SEGMENT: u64 = 10;

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let input = tmp.path().join("events.jsonl");
    let out = std::process::Command::new("python3")
        .arg(data("../../scripts/gen_events.py"))
        .args([
            "--count",
            "25",
            "--seed",
            "7",
            "--out",
            input.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let own = tmp.path().join("cairn-vault");
    seal(
        &input,
        own.to_str().unwrap(),
        &keys.key,
        SEGMENT,
        &tmp.path().join("r"),
    );
    let cairn_roots = roots(&own);
    assert_eq!(cairn_roots.len(), 3);
    Setup {
        tmp,
        keys,
        input,
        cairn_roots,
    }
}

/// The `merkle_root` of every manifest under `store`, in name (= offset) order.
fn roots(store: &Path) -> Vec<String> {
    objects(store)
        .iter()
        .filter(|o| o.ends_with(".manifest"))
        .map(|o| {
            let text = std::fs::read_to_string(store.join(o)).unwrap();
            let body: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            body["merkle_root"].as_str().unwrap().to_string()
        })
        .collect()
}

impl Setup {
    /// Writes the input with the independent writer into a new store.
    fn write(&self, variant: &str, parquet_only: bool) -> PathBuf {
        let store = self.tmp.path().join(format!("{variant}-{parquet_only}"));
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(data("../independent_writer.py"))
            .args(["--input", self.input.to_str().unwrap()])
            .args(["--source-id", "billing", "--store", store.to_str().unwrap()])
            .args(["--key", &self.keys.key])
            .args([
                "--segment-events",
                &SEGMENT.to_string(),
                "--variant",
                variant,
            ]);
        if parquet_only {
            cmd.arg("--parquet-only");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "independent writer ({variant}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        store
    }
}

#[test]
fn the_independent_writer_matches_the_worked_example() {
    let out = std::process::Command::new("python3")
        .arg(data("../independent_writer.py"))
        .arg("--self-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// FORMAT.md §4: pyarrow's natural spelling, large strings, dictionary-encoded strings and a
/// `+00:00` time zone are the same content: intact, with cairn's own Merkle roots.
#[test]
fn segments_other_writers_spell_differently_verify_intact_with_the_same_roots() {
    let s = setup();
    for variant in ["default", "large_string", "dictionary", "tz_offset"] {
        let store = s.write(variant, false);
        let (code, report) = verify_both(&store, &[&s.keys.public]);
        assert_eq!(code, 0, "{variant}: {report:#}");
        assert!(findings(&report).is_empty(), "{variant}: {report:#}");
        assert_eq!(report["events_checked"], 25, "{variant}");
        assert_eq!(
            roots(&store),
            s.cairn_roots,
            "{variant}: same leaves, same roots"
        );
    }
}

/// FORMAT.md §3 (issue 7, question 13): verifiers do not judge event values; a validly signed
/// row with the outcome `maybe` is the sealer's defect, not tampering.
#[test]
fn verifiers_do_not_validate_event_values() {
    let s = setup();
    let store = s.write("bad_outcome", false);
    let (code, report) = verify_both(&store, &[&s.keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_ne!(roots(&store), s.cairn_roots, "the leaves hold `maybe`");
}

/// FORMAT.md §4: what the contract refuses is a content mismatch on every manifest, although
/// each is validly signed over the file's true hash and root.
#[test]
fn files_outside_the_contract_are_content_mismatches() {
    let s = setup();
    for variant in [
        "extra_column",
        "ms_timestamps",
        "naive_timestamps",
        "binary_strings",
        "reordered_columns",
    ] {
        let store = s.write(variant, false);
        let (code, report) = verify_both(&store, &[&s.keys.public]);
        assert_eq!(code, 1, "{variant}: {report:#}");
        let want: std::collections::BTreeSet<(String, String)> = objects(&store)
            .into_iter()
            .filter(|o| o.ends_with(".manifest"))
            .map(|o| ("content_mismatch".to_string(), o))
            .collect();
        assert_eq!(findings(&report), want, "{variant}: {report:#}");
    }
}

/// FORMAT.md §7: a Parquet file another writer left without a manifest (a crash between the
/// two writes) is adopted by content, and the manifest signs it as it is.
#[test]
fn a_crash_leftover_written_by_pyarrow_is_adopted() {
    let s = setup();
    let store = s.write("default", true);
    let leftover = objects(&store);
    assert_eq!(leftover.len(), 1);
    let pyarrow_bytes = std::fs::read(store.join(&leftover[0])).unwrap();
    let out = seal(
        &s.input,
        store.to_str().unwrap(),
        &s.keys.key,
        SEGMENT,
        &s.tmp.path().join("r2"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("recovered v1/streams/billing/0/"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(store.join(&leftover[0])).unwrap(),
        pyarrow_bytes
    );
    let (code, report) = verify_both(&store, &[&s.keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert!(findings(&report).is_empty(), "{report:#}");
    assert_eq!(roots(&store), s.cairn_roots);
}
