//! Tampering with a local store in each way an attacker or accident could, and asserting that
//! `cairn verify` names exactly that problem, on exactly that object, with exit code 1.

use cairn_tests::*;
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

    /// Makes `other` a second writer of this store (the same origin, FORMAT.md §11), so what
    /// it seals and is copied in here is this store's, not a foreign stream.
    fn share_origin(&self, other: &Path) {
        std::fs::create_dir_all(other.join("v1")).unwrap();
        std::fs::copy(self.path("v1/origin"), other.join("v1/origin")).unwrap();
    }

    /// Asserts verify exits 1 with exactly these (kind, object) findings, and that the
    /// independent verifier (tests/independent_verifier.py) says exactly the same.
    fn expect(&self, want: &[(&str, &str)]) -> serde_json::Value {
        let (code, report) = verify_both(&self.store, &[&self.keys.public]);
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
    // It stands in the walk for the range its name says (FORMAT.md §8.4): the failure is
    // named once, without a consequential gap after it or an orphan beside it.
    let report = fx.expect(&[("modified_manifest", &fx.manifests[2])]);
    assert_eq!(report["findings"].as_array().unwrap().len(), 1);
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
    let (code, report) = verify_both(&fx.store, &[&other.public]);
    assert_eq!(code, 1);
    let want: BTreeSet<(String, String)> = fx
        .manifests
        .iter()
        .map(|m| ("unknown_key".to_string(), m.clone()))
        .collect();
    assert_eq!(findings(&report), want, "{report:#}");
    // Trusting both keys (rotation) verifies.
    let (code, report) = verify_both(&fx.store, &[&other.public, &fx.keys.public]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn missing_segment_is_a_gap() {
    let fx = Fixture::new();
    for o in [&fx.manifests[2], &fx.parquets[2]] {
        std::fs::remove_file(fx.path(o)).unwrap();
    }
    // The segment's claim (FORMAT.md §7), left behind, points at what is gone.
    let claim = "v1/streams/billing/0/00000000000000000024.claim";
    let report = fx.expect(&[("gap", &fx.manifests[3]), ("orphan_file", claim)]);
    let gap = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "gap")
        .unwrap();
    let msg = gap["message"].as_str().unwrap();
    assert!(
        msg.starts_with("offsets 24..=34 are in no segment"),
        "{msg}"
    );
    // Deleting the claim too leaves only the gap.
    std::fs::remove_file(fx.path(claim)).unwrap();
    fx.expect(&[("gap", &fx.manifests[3])]);
}

#[test]
fn missing_first_segment_is_a_gap_before_the_chain() {
    let fx = Fixture::new();
    for o in [
        &fx.manifests[0],
        &fx.parquets[0],
        &"v1/streams/billing/0/00000000000000000001.claim".to_string(),
    ] {
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
    fx.share_origin(&other);
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
    fx.share_origin(&other);
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
    let (code, report) = verify_both(&fx.store, &[&fx.keys.public]);
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

// ---------------------------------------------------------------------------------------------
// Issue 7: holes an independent verifier found, and the answers FORMAT.md now gives.
// ---------------------------------------------------------------------------------------------

/// A copy of the stream directory, outside the store, with one row rewritten by pyarrow.
fn forged_copy_of_stream(fx: &Fixture) -> tempfile::TempDir {
    let outside = tempfile::tempdir().unwrap();
    let copy = outside.path().join("0");
    std::fs::create_dir(&copy).unwrap();
    for o in fx.manifests.iter().chain(&fx.parquets) {
        let name = Path::new(o).file_name().unwrap();
        std::fs::copy(fx.path(o), copy.join(name)).unwrap();
    }
    let victim = copy.join(Path::new(&fx.parquets[1]).file_name().unwrap());
    make_writable(&victim);
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         t = pq.read_table({p:?})\n\
         i = t.schema.get_field_index('tenant')\n\
         col = t.column('tenant').to_pylist(); col[0] = 'forged-tenant'\n\
         t = t.set_column(i, t.schema.field(i), pa.array(col, pa.string()))\n\
         pq.write_table(t, {p:?})\n",
        p = victim.to_str().unwrap()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    outside
}

/// Issue 7, critical 1: a stream directory replaced by a symlink to a forged copy verified
/// INTACT (the stream dropped out of the report) while DuckDB followed the link.
#[test]
fn a_symlinked_stream_directory_is_an_integrity_failure_never_followed() {
    let fx = Fixture::new();
    let outside = forged_copy_of_stream(&fx);
    let dir = fx.store.join("v1/streams/billing/0");
    std::fs::rename(&dir, outside.path().join("original")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("0"), &dir).unwrap();
    // What an analyst reading the files directly would see.
    let glob = format!("{}/v1/streams/*/*/*.parquet", fx.store.display());
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import duckdb; print(duckdb.connect().execute(\"SELECT count(*) FROM read_parquet('{glob}') WHERE tenant = 'forged-tenant'\").fetchone()[0])"
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "DuckDB follows the link: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = fx.expect(&[("non_regular_object", "v1/streams/billing/0")]);
    assert_eq!(report["segments_checked"], 0);
}

/// Issue 7, critical 1: a Parquet file or a manifest replaced by a symlink, and a FIFO (which
/// a careless reader would block on), are integrity failures of their own class.
#[test]
fn symlinked_files_and_special_files_are_never_followed() {
    let fx = Fixture::new();
    let outside = forged_copy_of_stream(&fx);
    let forged = |o: &str| {
        outside
            .path()
            .join("0")
            .join(Path::new(o).file_name().unwrap())
    };
    for o in [&fx.parquets[1], &fx.manifests[3]] {
        make_writable(&fx.path(o));
        std::fs::remove_file(fx.path(o)).unwrap();
        std::os::unix::fs::symlink(forged(o), fx.path(o)).unwrap();
    }
    let fifo = fx.store.join("v1/streams/billing/0/pipe.parquet");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    fx.expect(&[
        ("non_regular_object", &fx.parquets[1]),
        ("non_regular_object", &fx.manifests[3]),
        ("non_regular_object", "v1/streams/billing/0/pipe.parquet"),
        // The link in the manifest's place stands in the walk for its name's range (§8.4):
        // no false gap after it, and its Parquet file is no orphan.
    ]);
}

/// Issue 7: objects outside `v1/streams/` were never listed.
#[test]
fn the_whole_store_is_listed_and_foreign_objects_are_warnings() {
    let fx = Fixture::new();
    std::fs::write(fx.store.join("README"), b"x").unwrap();
    std::fs::write(fx.store.join("v1/notes.parquet"), b"x").unwrap();
    std::fs::create_dir_all(fx.store.join("v2/streams/billing/0")).unwrap();
    std::fs::write(
        fx.store
            .join("v2/streams/billing/0/00000000000000000001-00000000000000000011.parquet"),
        b"x",
    )
    .unwrap();
    std::fs::write(fx.store.join("v1/streams/billing/0/.x.tmp-1-2"), b"x").unwrap();
    let (code, report) = verify_both(&fx.store, &[&fx.keys.public]);
    assert_eq!(code, 0, "{report:#}");
    let want: BTreeSet<(String, String)> = [
        "README",
        "v1/notes.parquet",
        "v2/streams/billing/0/00000000000000000001-00000000000000000011.parquet",
        "v1/streams/billing/0/.x.tmp-1-2",
    ]
    .iter()
    .map(|o| ("unexpected_object".to_string(), o.to_string()))
    .collect();
    assert_eq!(findings(&report), want, "{report:#}");
}

/// Issue 7: a signature line whose key id differs from the body's was reported as an
/// unreadable manifest (modified, plus a false gap and an orphan). The body is intact: it is a
/// signature failure, and the next segment's link shows the body is the sealed one.
#[test]
fn a_key_id_mismatch_on_the_signature_line_is_a_signature_failure() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let other = keygen(tmp.path());
    let other_id =
        cairn_format::PublicKey::parse(&std::fs::read_to_string(&other.public).unwrap(), "k")
            .unwrap()
            .key_id()
            .to_string();
    rewrite(&fx.path(&fx.manifests[1]), |b| {
        let text = String::from_utf8(b).unwrap();
        let (body, line) = text.trim_end().split_once('\n').unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        format!("{body}\ned25519 {other_id} {}\n", parts[2]).into_bytes()
    });
    let report = fx.expect(&[("bad_signature", &fx.manifests[1])]);
    let msg = report["findings"][0]["message"].as_str().unwrap();
    assert!(msg.contains("the body's key_id is"), "{msg}");
}

/// FORMAT.md §6.1 rules and §8.3 step 6 (issue 7, questions 3, 4 and 7): a validly signed
/// manifest that breaks a rule is a content mismatch and stays in the walk; the verifier reads
/// the segment's own Parquet name, never `parquet.object`.
#[test]
fn a_validly_signed_manifest_that_breaks_a_rule_is_a_content_mismatch() {
    type Edit = fn(&str) -> String;
    let cases: [(&str, Edit); 5] = [
        ("sealed_at without six fractional digits", |b| {
            let i = b.find("\"sealed_at\":\"").unwrap() + 13;
            format!("{}Z\"}}", &b[..i + 19])
        }),
        ("uppercase hex", |b| {
            let i = b.find("\"merkle_root\":\"").unwrap() + 15;
            format!("{}{}{}", &b[..i], b[i..i + 64].to_uppercase(), &b[i + 64..])
        }),
        ("a rejected range outside the segment", |b| {
            b.replacen("\"rejected\":[", "\"rejected\":[[1,1],", 1)
        }),
        ("parquet.object elsewhere", |b| {
            let i = b.find("\"object\":\"").unwrap() + 10;
            let j = i + b[i..].find('"').unwrap();
            format!("{}../../../etc/passwd{}", &b[..i], &b[j..])
        }),
        ("parquet.object another segment", |b| {
            b.replacen(
                "\"object\":\"v1/streams/billing/0/000000000000000000",
                "\"object\":\"v1/streams/billing/0/000000000000000001",
                1,
            )
        }),
    ];
    for (what, edit) in cases {
        let fx = Fixture::new();
        let last = fx.manifests.last().unwrap();
        let before = std::fs::read_to_string(fx.path(last)).unwrap();
        resign(&fx.path(last), &fx.keys.key, edit);
        assert_ne!(
            before,
            std::fs::read_to_string(fx.path(last)).unwrap(),
            "{what}"
        );
        let report = fx.expect(&[("content_mismatch", last)]);
        assert_eq!(report["segments_checked"], 5, "{what}: still in the walk");
    }
}

/// FORMAT.md §8.3 step 4 (issue 7, questions 3 and 6): a body that fails the structure tier
/// is a content mismatch under a valid signature and a modified manifest otherwise; either way
/// it is only a placeholder in the walk (so its Parquet file is no orphan).
#[test]
fn a_body_that_is_not_a_manifest_is_a_content_mismatch_when_validly_signed() {
    let edits: [fn(&str) -> String; 3] = [
        |b| b.replacen("\"partition\":0", "\"partition\":0,\"extra\":1", 1),
        |b| {
            b.replacen(
                "\"version_id\":null",
                "\"version_id\":null,\"version_id\":null",
                1,
            )
        },
        |b| b.replacen("\"seq\":4", "\"seq\":4.0", 1),
    ];
    for edit in edits {
        let fx = Fixture::new();
        let last = fx.manifests.last().unwrap().clone();
        resign(&fx.path(&last), &fx.keys.key, edit);
        fx.expect(&[("content_mismatch", &last)]);
        // The same body change without the key.
        let fx = Fixture::new();
        rewrite(&fx.path(&last), |b| {
            let text = String::from_utf8(b).unwrap();
            let (body, line) = text.trim_end().split_once('\n').unwrap();
            format!("{}\n{line}\n", edit(body)).into_bytes()
        });
        fx.expect(&[("modified_manifest", &last)]);
    }
}

/// FORMAT.md §8.3 (issue 7, question 17): manifests signed by an unknown key still get their
/// file and content checks, so an auditor without that key learns whether files match.
#[test]
fn unknown_key_manifests_still_get_file_checks() {
    let fx = Fixture::new();
    rewrite(&fx.path(&fx.parquets[2]), |mut b| {
        let i = b.len() / 2;
        b[i] ^= 0x01;
        b
    });
    let tmp = tempfile::tempdir().unwrap();
    let other = keygen(tmp.path());
    let (code, report) = verify_both(&fx.store, &[&other.public]);
    assert_eq!(code, 1);
    let mut want: BTreeSet<(String, String)> = fx
        .manifests
        .iter()
        .map(|m| ("unknown_key".to_string(), m.clone()))
        .collect();
    want.insert(("modified_file".into(), fx.parquets[2].clone()));
    assert_eq!(findings(&report), want, "{report:#}");
}

/// Issue 7: a segment nested inside an earlier, larger one produced a false gap ("offsets …
/// are in no segment" although the larger one covers them). FORMAT.md §8.4: walk against the
/// running maximum.
#[test]
fn a_segment_nested_inside_a_larger_one_is_an_overlap_without_a_false_gap() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    fx.share_origin(&other);
    seal(
        &data("sample.jsonl"),
        other.to_str().unwrap(),
        &fx.keys.key,
        3,
        &tmp.path().join("r"),
    );
    // Ours: 1..=11, 12..=23, …; a small segment strictly inside 12..=23.
    let nested = objects(&other)
        .into_iter()
        .filter(|o| o.ends_with(".manifest"))
        .find(|o| {
            let n = cairn_format::names::parse_object_name(o).unwrap();
            n.first > 12 && n.last < 23
        })
        .expect("a segment nested in 12..=23");
    let p = nested.replace(".manifest", ".parquet");
    for o in [&nested, &p] {
        std::fs::copy(other.join(o), fx.path(o)).unwrap();
    }
    let report = fx.expect(&[("overlap", &nested)]);
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
}

/// The human report names classes as --json, the README and FORMAT.md do (it printed
/// `ModifiedFile`), and every verdict states what it cannot establish (issue 7, critical 2).
#[test]
fn the_human_report_uses_the_class_names_and_states_the_limits() {
    let fx = Fixture::new();
    let out = run_expect(
        &[
            "verify",
            "--store",
            fx.store_s(),
            "--pubkey",
            &fx.keys.public,
        ],
        0,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("INTACT: 5 segments, 43 events"), "{text}");
    for l in [
        "deletion of a whole stream",
        "deletion of a stream's newest segments",
    ] {
        assert!(text.contains(l), "{l}: {text}");
    }
    // A v3 store names itself (`v1/origin`): a stream copied in is a finding, not a limit.
    assert!(
        !text.contains("a stream copied in from another vault"),
        "{text}"
    );
    let (_, report) = verify(fx.store_s(), &[&fx.keys.public]);
    assert_eq!(report["limitations"].as_array().unwrap().len(), 2);
    rewrite(&fx.path(&fx.parquets[0]), |mut b| {
        b[100] ^= 1;
        b
    });
    let out = run_expect(
        &[
            "verify",
            "--store",
            fx.store_s(),
            "--pubkey",
            &fx.keys.public,
        ],
        1,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("ERROR modified_file {} — ", fx.parquets[0])),
        "{text}"
    );
    assert!(text.contains("deletion of a whole stream"), "{text}");
}

/// FORMAT.md §8.2 (issue 7, question 11): nothing to verify is exit 2, not a pass.
#[test]
fn a_store_without_manifests_is_exit_2_even_with_other_objects() {
    let fx = Fixture::new();
    for m in &fx.manifests {
        std::fs::remove_file(fx.path(m)).unwrap();
    }
    let out = run_expect(
        &[
            "verify",
            "--store",
            fx.store_s(),
            "--pubkey",
            &fx.keys.public,
        ],
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no sealed segments found"), "{err}");
    assert!(
        err.contains("11 other objects"),
        "5 Parquet files, 5 claims, the origin: {err}"
    );
    assert!(err.contains("--store"), "the binary adds the hint: {err}");
    let (code, _, iout) = independent_verify(&fx.store, &[&fx.keys.public]);
    assert_eq!(code, 2, "{iout}");
}

/// FORMAT.md §6.4 (issue 7, question 14): a trusted key of small order (the identity point)
/// was loaded without complaint; under it, forged signatures can verify.
#[test]
fn weak_or_malformed_trusted_keys_are_usage_errors() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let cases = [
        (
            format!("cairn-ed25519-public:{}\n", hex::encode(identity)),
            "small order",
        ),
        (
            std::fs::read_to_string(&fx.keys.public)
                .unwrap()
                .replace('\n', "\r\n"),
            "carriage return",
        ),
        (
            std::fs::read_to_string(&fx.keys.public)
                .unwrap()
                .to_uppercase()
                .replace("CAIRN-ED25519-PUBLIC", "cairn-ed25519-public"),
            "lowercase",
        ),
    ];
    for (i, (text, says)) in cases.iter().enumerate() {
        let p = tmp.path().join(format!("k{i}.pub"));
        std::fs::write(&p, text).unwrap();
        let out = run_expect(
            &[
                "verify",
                "--store",
                fx.store_s(),
                "--pubkey",
                &fx.keys.public,
                "--pubkey",
                p.to_str().unwrap(),
            ],
            2,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{says}: {err}");
        let (code, _, iout) =
            independent_verify(&fx.store, &[&fx.keys.public, p.to_str().unwrap()]);
        assert_eq!(code, 2, "{iout}");
    }
}

/// FORMAT.md §7–8: a claim no manifest fulfils (a writer stopped between claiming a segment and
/// sealing it) and an object with a claim's name that is not a valid claim are warnings: claims
/// coordinate writers, they are not evidence. cairn and the independent verifier agree.
#[test]
fn unfulfilled_and_invalid_claims_are_warnings() {
    let fx = Fixture::new();
    let dir = fx.store.join("v1/streams/billing/0");
    let pending = "v1/streams/billing/0/00000000000000000051.claim";
    std::fs::write(
        fx.path(pending),
        "{\"format\":\"cairn.claim.v1\",\"stream\":{\"id\":\"billing\",\"partition\":0},\"first_offset\":51,\"last_offset\":60,\"writer\":\"00112233445566778899aabbccddeeff\"}\n",
    )
    .unwrap();
    let garbage = "v1/streams/billing/0/00000000000000000070.claim";
    std::fs::write(dir.join("00000000000000000070.claim"), "not a claim\n").unwrap();
    // A claim on a sealed segment's first offset with another range is not fulfilled either.
    let other = "v1/streams/billing/0/00000000000000000012.claim";
    rewrite(&fx.path(other), |b| {
        String::from_utf8(b)
            .unwrap()
            .replace("\"last_offset\":23", "\"last_offset\":22")
            .into_bytes()
    });
    let (code, report) = verify_both(&fx.store, &[&fx.keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["intact"], true);
    let want: BTreeSet<(String, String)> = [pending, garbage, other]
        .iter()
        .map(|o| ("orphan_file".to_string(), o.to_string()))
        .collect();
    assert_eq!(findings(&report), want, "{report:#}");
}
