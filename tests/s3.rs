//! Sealing to and verifying S3 with Object Lock, against a real S3 server (moto_server on
//! 127.0.0.1, started per test). Covers the start-up checks, COMPLIANCE retention on every
//! object, idempotent re-runs, and tampering that Object Lock still allows: new versions and
//! delete markers shadowing sealed objects, extra forged objects, foreign keys.

use cairn_tests::*;
use std::collections::BTreeSet;

fn seal_args<'a>(store: &'a str, key: &'a str, input: &'a str) -> Vec<&'a str> {
    vec![
        "seal",
        "--input",
        input,
        "--source-id",
        "billing",
        "--store",
        store,
        "--key",
        key,
        "--segment-events",
        "10",
        "--rejects",
        "-",
    ]
}

struct Sealed {
    s3: S3Server,
    _tmp: tempfile::TempDir,
    keys: Keys,
    store: String,
    manifests: Vec<String>,
    parquets: Vec<String>,
}

/// A bucket with Object Lock and a default COMPLIANCE retention, holding the sample sealed
/// as 5 segments.
fn sealed_bucket() -> Sealed {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    s3.admin(&[
        "create-bucket",
        "audit",
        "--lock",
        "--default-retention-days",
        "1",
    ]);
    let store = "s3://audit/tenant-a".to_string();
    let input = data("sample.jsonl");
    let (code, out, err) = s3.cairn(&seal_args(&store, &keys.key, input.to_str().unwrap()));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("sealed 5 segments"), "{err}");
    // `--rejects -`: stdout is exactly the rejected lines, as JSON.
    let rejected: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejected.len(), 7, "{out}");
    assert_eq!(rejected[0]["line"], 7);
    let (_, listing) = s3.admin(&["list-versions", "audit", "tenant-a/"]);
    let versions: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    let mut names: Vec<String> = versions
        .iter()
        .map(|v| {
            v["key"]
                .as_str()
                .unwrap()
                .strip_prefix("tenant-a/")
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    // Per segment: manifest, Parquet file and the claim its writer made (FORMAT.md §7); and
    // the store's origin (§11).
    assert_eq!(names.len(), 16, "one version per object: {names:?}");
    let manifests = names
        .iter()
        .filter(|n| n.ends_with(".manifest"))
        .cloned()
        .collect();
    let parquets = names
        .iter()
        .filter(|n| n.ends_with(".parquet"))
        .cloned()
        .collect();
    Sealed {
        s3,
        _tmp: tmp,
        keys,
        store,
        manifests,
        parquets,
    }
}

impl Sealed {
    fn verify(&self, pubkeys: &[&str]) -> (i32, serde_json::Value) {
        self.s3.verify(&self.store, pubkeys)
    }

    fn expect(&self, want: &[(&str, &str)]) {
        let (code, report) = self.verify(&[&self.keys.public]);
        let want: BTreeSet<(String, String)> = want
            .iter()
            .map(|(k, o)| (k.to_string(), o.to_string()))
            .collect();
        assert_eq!(findings(&report), want, "{report:#}");
        assert_eq!(code, 1, "{report:#}");
    }

    fn key(&self, object: &str) -> String {
        format!("tenant-a/{object}")
    }
}

#[test]
fn object_lock_is_required_and_every_object_is_under_compliance_retention() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let input = data("sample.jsonl");
    let input = input.to_str().unwrap();

    s3.admin(&["create-bucket", "plain"]);
    let (code, _, err) = s3.cairn(&seal_args("s3://plain", &keys.key, input));
    assert_eq!(code, 2);
    assert!(
                err.contains(
            "bucket \"plain\" has object lock disabled; a cairn store needs a bucket created with object lock enabled"
        ),
        "{err}"
    );

    s3.admin(&[
        "create-bucket",
        "governed",
        "--lock",
        "--default-retention-days",
        "1",
        "--governance",
    ]);
    let (code, _, err) = s3.cairn(&seal_args("s3://governed", &keys.key, input));
    assert_eq!(code, 2);
    assert!(
        err.contains("has no default COMPLIANCE retention (its default mode is GOVERNANCE)"),
        "{err}"
    );

    s3.admin(&["create-bucket", "nodefault", "--lock"]);
    let (code, _, err) = s3.cairn(&seal_args("s3://nodefault", &keys.key, input));
    assert_eq!(code, 2, "{err}");
    // The library names the problem; the binary adds the flag that solves it.
    assert!(
        err.contains("or configure a per-object retention")
            && err.contains("hint: or pass --retention-days N"),
        "{err}"
    );
    // Per-object retention instead of a bucket default.
    let mut args = seal_args("s3://nodefault", &keys.key, input);
    args.extend(["--retention-days", "2"]);
    let (code, out, err) = s3.cairn(&args);
    assert_eq!(code, 0, "{out}\n{err}");

    let (_, listing) = s3.admin(&["list-versions", "nodefault", ""]);
    let versions: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    assert_eq!(
        versions.len(),
        16,
        "5 segments: manifest, Parquet, claim; and the store's origin"
    );
    for v in &versions {
        let key = v["key"].as_str().unwrap();
        let vid = v["version_id"].as_str().unwrap();
        let (_, head) = s3.admin(&["head", "nodefault", key, vid]);
        let head: serde_json::Value = serde_json::from_str(&head).unwrap();
        assert_eq!(head["mode"], "COMPLIANCE", "{key}: {head}");
        // The server refuses to delete a locked version.
        let (code, out) = s3.admin(&["delete", "nodefault", key, vid]);
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("AccessDenied"), "{out}");
    }
    // The manifests pin the Parquet version ids.
    let (code, out, err) = s3.cairn(&[
        "verify",
        "--store",
        "s3://nodefault",
        "--pubkey",
        &keys.public,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn seal_is_idempotent_and_verify_is_clean() {
    let b = sealed_bucket();
    let (code, report) = b.verify(&[&b.keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["events_checked"], 43);
    assert_eq!(report["streams"][0]["last_offset"], 50);
    let input = data("sample.jsonl");
    let (code, out, err) =
        b.s3.cairn(&seal_args(&b.store, &b.keys.key, input.to_str().unwrap()));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("sealed 0 segments"), "{err}");
    assert!(out.is_empty(), "nothing new rejected: {out}");
}

/// Issue 12 on S3 with Object Lock: the log's tiles and checkpoints are written once under
/// COMPLIANCE retention like segments, `verify --checkpoint` and `prove` read them from the
/// bucket, and a delete marker over the newest segment's manifest does not hide it from a
/// checkpointed verdict.
#[test]
fn the_log_is_written_once_in_the_bucket_and_proofs_come_from_it() {
    let b = sealed_bucket();
    let (code, note, err) =
        b.s3.cairn(&["checkpoint", "--store", &b.store, "--key", &b.keys.key]);
    assert_eq!(code, 0, "{err}");
    assert!(note.contains("\n5\n"), "{note}");
    let cp = b._tmp.path().join("cp.txt");
    std::fs::write(&cp, &note).unwrap();
    let (_, listing) = b.s3.admin(&["list-versions", "audit", "tenant-a/v1/log/"]);
    let versions: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    let keys: Vec<&str> = versions
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "tenant-a/v1/log/checkpoint/00000000000000000005",
            "tenant-a/v1/log/tile/0/000.p/5",
            "tenant-a/v1/log/tile/entries/000.p/5"
        ]
    );
    for v in &versions {
        let (_, head) = b.s3.admin(&[
            "head",
            "audit",
            v["key"].as_str().unwrap(),
            v["version_id"].as_str().unwrap(),
        ]);
        assert!(head.contains("COMPLIANCE"), "{head}");
    }
    let args = |extra: &[&str]| {
        let mut a = vec![
            "verify",
            "--store",
            &b.store,
            "--json",
            "--pubkey",
            &b.keys.public,
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        b.s3.cairn(&a)
    };
    let (code, out, _) = run(args(&["--checkpoint", cp.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["checkpoint"]["size"], 5);
    assert_eq!(report["limitations"], serde_json::json!([]));

    let sample = std::fs::read_to_string(data("sample.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    let id = first["event_id"].as_str().unwrap();
    let (code, proof, err) = b.s3.cairn(&[
        "prove",
        "--store",
        &b.store,
        "--event-id",
        id,
        "--pubkey",
        &b.keys.public,
    ]);
    assert_eq!(code, 0, "{err}");
    let pf = b._tmp.path().join("proof.json");
    std::fs::write(&pf, proof).unwrap();
    let out = run_expect(
        &[
            "verify-proof",
            pf.to_str().unwrap(),
            "--pubkey",
            &b.keys.public,
        ],
        0,
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("PROVEN"));

    // An audit bundle cut from the bucket carries each object's Object Lock evidence, and
    // verifies with no store access.
    let tar = b._tmp.path().join("bundle.tar");
    let tenant = first["tenant"].as_str().unwrap();
    let (code, _, err) = b.s3.cairn(&[
        "bundle",
        "--store",
        &b.store,
        "--tenant",
        tenant,
        "--out",
        tar.to_str().unwrap(),
        "--pubkey",
        &b.keys.public,
    ]);
    assert_eq!(code, 0, "{err}");
    run_expect(
        &[
            "verify",
            "--bundle",
            tar.to_str().unwrap(),
            "--pubkey",
            &b.keys.public,
        ],
        0,
    );
    let index = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, tarfile; print(tarfile.open(sys.argv[1]).extractfile('bundle.json').read().decode())",
            tar.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index.stdout).unwrap();
    for s in index["segments"].as_array().unwrap() {
        assert_eq!(s["parquet_lock"]["mode"], "COMPLIANCE", "{index:#}");
        assert_eq!(s["manifest_lock"]["mode"], "COMPLIANCE", "{index:#}");
        assert!(!s["parquet_lock"]["version_id"].as_str().unwrap().is_empty());
    }

    // A delete marker over the newest manifest: the sealed version is still read (and the
    // marker reported), so the checkpoint finds every segment.
    let newest = b.manifests.last().unwrap().clone();
    b.s3.admin(&["delete", "audit", &b.key(&newest)]);
    let (code, out, _) = run(args(&["--checkpoint", cp.to_str().unwrap()]));
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        findings(&report),
        BTreeSet::from([("shadowed_version".to_string(), newest)])
    );
}

#[test]
fn a_new_version_shadowing_a_parquet_file_is_found_and_the_sealed_version_verified() {
    let b = sealed_bucket();
    let junk = b._tmp.path().join("junk");
    std::fs::write(&junk, b"not the sealed segment").unwrap();
    b.s3.admin(&[
        "put",
        "audit",
        &b.key(&b.parquets[1]),
        junk.to_str().unwrap(),
    ]);
    // Only the shadowing is reported: the pinned sealed version is intact.
    b.expect(&[("shadowed_version", &b.parquets[1])]);
}

#[test]
fn a_new_version_of_a_manifest_with_an_altered_body_is_found() {
    let b = sealed_bucket();
    let path = b._tmp.path().join("m");
    b.s3.admin(&[
        "get",
        "audit",
        &b.key(&b.manifests[2]),
        path.to_str().unwrap(),
    ]);
    let forged = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"event_count\":10", "\"event_count\":11");
    std::fs::write(&path, forged).unwrap();
    b.s3.admin(&[
        "put",
        "audit",
        &b.key(&b.manifests[2]),
        path.to_str().unwrap(),
    ]);
    b.expect(&[("shadowed_version", &b.manifests[2])]);
}

#[test]
fn a_delete_marker_hiding_a_manifest_is_found() {
    let b = sealed_bucket();
    let (code, out) = b.s3.admin(&["delete", "audit", &b.key(&b.manifests[3])]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"delete_marker\": true"), "{out}");
    // A plain listing no longer shows it; the verifier lists versions and still checks it.
    b.expect(&[("shadowed_version", &b.manifests[3])]);
}

#[test]
fn a_forged_overlapping_segment_and_an_unknown_key_are_found() {
    let b = sealed_bucket();
    // Another sealer (same key, other segment size, the same store origin) in a local store;
    // copy one segment in.
    let other = b._tmp.path().join("other");
    std::fs::create_dir_all(other.join("v1")).unwrap();
    b.s3.admin(&[
        "get",
        "audit",
        &b.key("v1/origin"),
        other.join("v1/origin").to_str().unwrap(),
    ]);
    seal(
        &data("sample.jsonl"),
        other.to_str().unwrap(),
        &b.keys.key,
        7,
        &b._tmp.path().join("r"),
    );
    let objs = objects(&other);
    let m = objs
        .iter()
        .filter(|o| o.ends_with(".manifest"))
        .nth(1)
        .unwrap()
        .clone();
    let p = m.replace(".manifest", ".parquet");
    for o in [&m, &p] {
        b.s3.admin(&["put", "audit", &b.key(o), other.join(o).to_str().unwrap()]);
    }
    b.expect(&[("overlap", &m), ("overlap", &b.manifests[1])]);

    let tmp = tempfile::tempdir().unwrap();
    let stranger = keygen(tmp.path());
    let (code, report) = b.verify(&[&stranger.public]);
    assert_eq!(code, 1);
    let unknown: BTreeSet<String> = findings(&report)
        .into_iter()
        .filter(|(k, _)| k == "unknown_key")
        .map(|(_, o)| o)
        .collect();
    assert_eq!(unknown.len(), 6, "{report:#}");
}

/// The S3 side of orphan adoption: the oldest (locked) version of a Parquet object left without
/// a manifest is read back, found to hold the same events, and signed as it is.
#[test]
fn an_orphan_encoded_by_another_writer_is_adopted_on_s3() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    s3.admin(&[
        "create-bucket",
        "audit",
        "--lock",
        "--default-retention-days",
        "1",
    ]);
    // The segment the full sample ends with, sealed locally to learn its name and rows.
    let local = tmp.path().join("vault");
    let input = data("sample.jsonl");
    let (code, _, err) = s3.cairn(&seal_args(
        local.to_str().unwrap(),
        &keys.key,
        input.to_str().unwrap(),
    ));
    assert_eq!(code, 0, "{err}");
    let names = objects(&local);
    let last = names
        .iter()
        .rfind(|o| o.ends_with(".parquet"))
        .unwrap()
        .clone();
    let reencoded = tmp.path().join("reencoded.parquet");
    std::fs::write(
        &reencoded,
        reencode(&std::fs::read(local.join(&last)).unwrap()),
    )
    .unwrap();

    // On S3: everything before that segment is sealed, then a crash left its Parquet file
    // (written by another writer) without a manifest.
    let first_line: usize = last.rsplit('/').next().unwrap()[..20].parse().unwrap();
    let text = std::fs::read_to_string(&input).unwrap();
    let head: Vec<&str> = text.lines().take(first_line - 1).collect();
    let truncated = tmp.path().join("head.jsonl");
    std::fs::write(&truncated, head.join("\n") + "\n").unwrap();
    let store = "s3://audit/vault";
    let (code, _, err) = s3.cairn(&seal_args(store, &keys.key, truncated.to_str().unwrap()));
    assert_eq!(code, 0, "{err}");
    s3.admin(&[
        "put",
        "audit",
        &format!("vault/{last}"),
        reencoded.to_str().unwrap(),
    ]);

    let (code, _, err) = s3.cairn(&seal_args(store, &keys.key, input.to_str().unwrap()));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("recovered v1/streams/billing/0/"), "{err}");
    let (code, report) = s3.verify(store, &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(report["events_checked"], 43, "{report:#}");
}

/// FORMAT.md §8.3 step 7 (issue 7, question 16): an auditor downloads the bucket and
/// verifies the copy offline. The manifests keep their S3 version ids, which a store without
/// versions ignores: the copy is intact, for cairn and for the independent verifier.
#[test]
fn a_local_copy_of_an_s3_vault_verifies_offline() {
    let sealed = sealed_bucket();
    let copy = sealed._tmp.path().join("downloaded");
    let origin = "v1/origin".to_string();
    for o in sealed
        .manifests
        .iter()
        .chain(&sealed.parquets)
        .chain([&origin])
    {
        let dest = copy.join(o);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        sealed
            .s3
            .admin(&["get", "audit", &sealed.key(o), dest.to_str().unwrap()]);
    }
    let first = std::fs::read_to_string(copy.join(&sealed.manifests[0])).unwrap();
    assert!(!first.contains("\"version_id\":null"), "{first}");
    let (code, report) = verify_both(&copy, &[&sealed.keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert!(findings(&report).is_empty(), "{report:#}");
    assert_eq!(report["events_checked"], 43);
}
