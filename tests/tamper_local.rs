//! Tampering with a local store in each way an attacker or accident could, and asserting that
//! `cairn verify` names exactly that problem, on exactly that object, with exit code 1.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

struct Fixture {
    _tmp: tempfile::TempDir,
    store: PathBuf,
    keys: Keys,
    /// Manifest names in offset order.
    manifests: Vec<String>,
    parquets: Vec<String>,
}

impl Fixture {
    /// 50 lines (43 events) sealed as 5 segments.
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let keys = keygen(tmp.path());
        let store = tmp.path().join("vault");
        seal(
            &data("sample.jsonl"),
            store.to_str().unwrap(),
            &keys.key,
            10,
            &tmp.path().join("r.jsonl"),
        );
        let objs = objects(&store);
        let manifests: Vec<String> = objs
            .iter()
            .filter(|o| o.ends_with(".manifest"))
            .cloned()
            .collect();
        let parquets: Vec<String> = objs
            .iter()
            .filter(|o| o.ends_with(".parquet"))
            .cloned()
            .collect();
        assert_eq!(manifests.len(), 5);
        Fixture {
            _tmp: tmp,
            store,
            keys,
            manifests,
            parquets,
        }
    }

    fn path(&self, object: &str) -> PathBuf {
        self.store.join(object)
    }

    fn store_s(&self) -> &str {
        self.store.to_str().unwrap()
    }

    /// Asserts verify exits 1 with exactly these (kind, object) findings.
    fn expect(&self, want: &[(&str, &str)]) -> serde_json::Value {
        let (code, report) = verify(self.store_s(), &[&self.keys.public]);
        let want: BTreeSet<(String, String)> = want
            .iter()
            .map(|(k, o)| (k.to_string(), o.to_string()))
            .collect();
        assert_eq!(findings(&report), want, "{report:#}");
        assert_eq!(code, 1, "{report:#}");
        assert_eq!(report["intact"], false);
        report
    }
}

fn rewrite(p: &Path, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    make_writable(p);
    let bytes = std::fs::read(p).unwrap();
    std::fs::write(p, f(bytes)).unwrap();
}

#[test]
fn modified_parquet_file() {
    let fx = Fixture::new();
    rewrite(&fx.path(&fx.parquets[1]), |mut b| {
        let i = b.len() / 2;
        b[i] ^= 0x01;
        b
    });
    fx.expect(&[("modified_file", &fx.parquets[1])]);
}

#[test]
fn parquet_file_replaced_by_a_valid_but_different_segment() {
    // Same name, a well-formed Parquet file with other rows: the hash catches it first.
    let fx = Fixture::new();
    let other = std::fs::read(fx.path(&fx.parquets[2])).unwrap();
    rewrite(&fx.path(&fx.parquets[1]), |_| other);
    fx.expect(&[("modified_file", &fx.parquets[1])]);
}

#[test]
fn modified_manifest_body() {
    let fx = Fixture::new();
    rewrite(&fx.path(&fx.manifests[1]), |b| {
        String::from_utf8(b)
            .unwrap()
            .replace("\"event_count\":10", "\"event_count\":9")
            .into_bytes()
    });
    fx.expect(&[("modified_manifest", &fx.manifests[1])]);
}

#[test]
fn unparseable_manifest() {
    let fx = Fixture::new();
    rewrite(&fx.path(&fx.manifests[2]), |mut b| {
        b.truncate(b.len() / 2);
        b
    });
    // Its range is then unaccounted for, and nothing vouches for the Parquet file.
    let report = fx.expect(&[
        ("modified_manifest", &fx.manifests[2]),
        ("gap", &fx.manifests[3]),
        ("orphan_file", &fx.parquets[2]),
    ]);
    assert_eq!(report["findings"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_signature() {
    let fx = Fixture::new();
    // Put another manifest's (valid, but wrong) signature on manifest 2.
    let other = std::fs::read_to_string(fx.path(&fx.manifests[3])).unwrap();
    let other_sig = other.lines().nth(1).unwrap().to_string();
    rewrite(&fx.path(&fx.manifests[1]), |b| {
        let text = String::from_utf8(b).unwrap();
        format!("{}\n{other_sig}\n", text.lines().next().unwrap()).into_bytes()
    });
    fx.expect(&[("bad_signature", &fx.manifests[1])]);
}

#[test]
fn unknown_key_and_key_rotation() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let other = keygen(tmp.path());
    let (code, report) = verify(fx.store_s(), &[&other.public]);
    assert_eq!(code, 1);
    let want: BTreeSet<(String, String)> = fx
        .manifests
        .iter()
        .map(|m| ("unknown_key".to_string(), m.clone()))
        .collect();
    assert_eq!(findings(&report), want, "{report:#}");
    // Trusting both keys (rotation) verifies.
    let (code, report) = verify(fx.store_s(), &[&other.public, &fx.keys.public]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn missing_segment_is_a_gap() {
    let fx = Fixture::new();
    for o in [&fx.manifests[2], &fx.parquets[2]] {
        std::fs::remove_file(fx.path(o)).unwrap();
    }
    let report = fx.expect(&[("gap", &fx.manifests[3])]);
    let msg = report["findings"][0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("offsets 24..=34 are in no segment"),
        "{msg}"
    );
}

#[test]
fn missing_first_segment_is_a_gap_before_the_chain() {
    let fx = Fixture::new();
    for o in [&fx.manifests[0], &fx.parquets[0]] {
        std::fs::remove_file(fx.path(o)).unwrap();
    }
    fx.expect(&[("gap", &fx.manifests[1])]);
}

#[test]
fn missing_parquet_file() {
    let fx = Fixture::new();
    std::fs::remove_file(fx.path(&fx.parquets[3])).unwrap();
    fx.expect(&[("missing_file", &fx.parquets[3])]);
}

#[test]
fn overlapping_segment_from_a_second_sealer() {
    // Another sealer with the same key and other segment sizes wrote into the store: its
    // segment covers offsets already sealed.
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    let kfile = fx.keys.key.clone();
    seal(
        &data("sample.jsonl"),
        other.to_str().unwrap(),
        &kfile,
        7,
        &tmp.path().join("r"),
    );
    let objs = objects(&other);
    // Its second segment: lines 9..=16, which straddles ours (1..=11, 12..=23).
    let m = objs
        .iter()
        .filter(|o| o.ends_with(".manifest"))
        .nth(1)
        .unwrap()
        .clone();
    let p = m.replace(".manifest", ".parquet");
    for o in [&m, &p] {
        std::fs::copy(other.join(o), fx.path(o)).unwrap();
    }
    let report = fx.expect(&[("overlap", &m), ("overlap", &fx.manifests[1])]);
    assert_eq!(report["findings"].as_array().unwrap().len(), 2);
}

#[test]
fn broken_chain_when_a_validly_signed_manifest_is_swapped_in() {
    // The same input sealed again (another time, so another body) gives a manifest for the
    // same range whose chain link points into the other store's chain.
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    seal(
        &data("sample.jsonl"),
        other.to_str().unwrap(),
        &fx.keys.key,
        10,
        &tmp.path().join("r"),
    );
    rewrite(&fx.path(&fx.manifests[2]), |_| {
        std::fs::read(other.join(&fx.manifests[2])).unwrap()
    });
    fx.expect(&[
        ("broken_chain", &fx.manifests[2]),
        ("broken_chain", &fx.manifests[3]),
    ]);
}

#[test]
fn reordered_segments() {
    let fx = Fixture::new();
    let (a, b) = (fx.path(&fx.manifests[1]), fx.path(&fx.manifests[2]));
    let tmpname = a.with_extension("swap");
    std::fs::rename(&a, &tmpname).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmpname, &b).unwrap();
    fx.expect(&[
        ("reordered", &fx.manifests[1]),
        ("reordered", &fx.manifests[2]),
    ]);
}

#[test]
fn foreign_objects_are_warnings_not_failures() {
    let fx = Fixture::new();
    std::fs::write(fx.path("v1/streams/billing/0/notes.txt"), b"hi").unwrap();
    let (code, report) = verify(fx.store_s(), &[&fx.keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(kinds(&report), ["unexpected_object".to_string()].into());
}

#[test]
fn verifying_an_empty_or_missing_store_is_an_error_not_a_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let missing = tmp.path().join("no-such-vault");
    let out = run_expect(
        &[
            "verify",
            "--store",
            missing.to_str().unwrap(),
            "--pubkey",
            &keys.public,
        ],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such directory"));
    assert!(!missing.exists(), "verify must not create the store");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run_expect(
        &[
            "verify",
            "--store",
            empty.to_str().unwrap(),
            "--pubkey",
            &keys.public,
        ],
        2,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no sealed segments found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
