//! The auditor's toolkit end to end on a local store (issue 12): store identity, the log and
//! its checkpoints, `verify --checkpoint` and the tamper cases that an intact verdict could not
//! see before (tail truncation, whole-stream deletion, stream injection), event proofs and
//! malicious ones, consistency proofs, a racing or foreign checkpointer, and the independent
//! verifiers: tests/independent_verifier.py (Python, FORMAT.md) and tests/interop (Go,
//! golang.org/x/mod's sumdb `note` and `tlog`).

use std::path::{Path, PathBuf};

use cairn_tests::*;

fn events(dir: &Path, name: &str, count: u32, seed: u32) -> PathBuf {
    let out = dir.join(name);
    let st = std::process::Command::new("python3")
        .arg(repo().join("scripts/gen_events.py"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

fn seal_stream(input: &Path, stream: &str, store: &Path, key: &str, per_segment: u32) {
    run_expect(
        &[
            "seal",
            "--input",
            input.to_str().unwrap(),
            "--source-id",
            stream,
            "--store",
            store.to_str().unwrap(),
            "--key",
            key,
            "--segment-events",
            &per_segment.to_string(),
            "--rejects",
            "/dev/null",
        ],
        0,
    );
}

/// `cairn checkpoint`: the note, also saved as `dir/name`.
fn checkpoint(store: &Path, key: &str, dir: &Path, name: &str) -> PathBuf {
    let out = run_expect(
        &[
            "checkpoint",
            "--store",
            store.to_str().unwrap(),
            "--key",
            key,
        ],
        0,
    );
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn event_id(input: &Path, line: usize) -> String {
    let text = std::fs::read_to_string(input).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().nth(line - 1).unwrap()).unwrap();
    v["event_id"].as_str().unwrap().to_string()
}

struct Vault {
    tmp: tempfile::TempDir,
    keys: Keys,
    store: PathBuf,
    app: PathBuf,
}

/// Two streams (app: 5 segments, billing: 3), checkpointed once.
fn vault() -> (Vault, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    let app = events(tmp.path(), "app.jsonl", 500, 1);
    let billing = events(tmp.path(), "billing.jsonl", 300, 2);
    seal_stream(&app, "app", &store, &keys.key, 100);
    seal_stream(&billing, "billing", &store, &keys.key, 100);
    let cp = checkpoint(&store, &keys.key, tmp.path(), "cp1.txt");
    (
        Vault {
            tmp,
            keys,
            store,
            app,
        },
        cp,
    )
}

/// An edit that forges a proof.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

fn classes(report: &serde_json::Value) -> Vec<(String, String)> {
    findings(report).into_iter().collect()
}

#[test]
fn checkpoints_name_truncation_deletion_and_injection_and_both_verifiers_agree() {
    let (v, cp) = vault();
    let cp_s = cp.to_str().unwrap();
    let pubkey = v.keys.public.as_str();
    let with_cp = ["--checkpoint", cp_s];
    // The checkpoint is a C2SP signed note over the store's origin.
    let note = std::fs::read_to_string(&cp).unwrap();
    let origin = std::fs::read_to_string(v.store.join("v1/origin")).unwrap();
    assert!(note.starts_with(&format!("{origin}8\n")), "{note}");
    assert!(
        note.contains(&format!("\n\n\u{2014} {}", origin.trim())),
        "{note}"
    );

    let (code, report) = verify_both_with(&v.store, &[pubkey], &with_cp);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["checkpoint"]["size"], 8);
    assert_eq!(report["checkpoint"]["source"], "given");
    assert_eq!(report["origin"], origin.trim());
    assert_eq!(report["limitations"], serde_json::json!([]));
    // Without --checkpoint the store's own newest is used, and the report says what that
    // cannot rule out.
    let (code, report) = verify_both(&v.store, &[pubkey]);
    assert_eq!(code, 0);
    assert_eq!(report["checkpoint"]["source"], "store");
    assert!(
        report["limitations"][0]
            .as_str()
            .unwrap()
            .contains("own newest checkpoint")
    );

    let app0 = "v1/streams/app/0";
    // 1. Tail truncation: the newest segment of app (both objects) deleted. Before the log,
    //    this verified INTACT.
    let t1 = v.tmp.path().join("t1");
    copy_dir(&v.store, &t1);
    let newest = format!("{app0}/00000000000000000401-00000000000000000500");
    std::fs::remove_file(t1.join(format!("{newest}.manifest"))).unwrap();
    std::fs::remove_file(t1.join(format!("{newest}.parquet"))).unwrap();
    let (code, report) = verify_both_with(&t1, &[pubkey], &with_cp);
    assert_eq!(code, 1);
    assert!(classes(&report).contains(&("truncated_stream".into(), format!("{newest}.manifest"))));

    // 2. Whole-stream deletion: billing gone.
    let t2 = v.tmp.path().join("t2");
    copy_dir(&v.store, &t2);
    std::fs::remove_dir_all(t2.join("v1/streams/billing")).unwrap();
    let (code, report) = verify_both_with(&t2, &[pubkey], &with_cp);
    assert_eq!(code, 1);
    let deleted = kinds(&report);
    assert_eq!(
        deleted.iter().collect::<Vec<_>>(),
        ["deleted_stream"],
        "{report:#}"
    );
    assert_eq!(findings(&report).len(), 3);

    // 3. Stream injection: a stream sealed into another vault with the same key, copied in.
    let other = v.tmp.path().join("other");
    let inj = events(v.tmp.path(), "inj.jsonl", 50, 3);
    seal_stream(&inj, "injected", &other, &v.keys.key, 100);
    let t3 = v.tmp.path().join("t3");
    copy_dir(&v.store, &t3);
    copy_dir(
        &other.join("v1/streams/injected"),
        &t3.join("v1/streams/injected"),
    );
    let injected = "v1/streams/injected/0/00000000000000000001-00000000000000000050.manifest";
    let (code, report) = verify_both_with(&t3, &[pubkey], &with_cp);
    assert_eq!(code, 1);
    assert_eq!(
        classes(&report),
        [
            ("foreign_segment".to_string(), injected.to_string()),
            ("not_checkpointed".to_string(), injected.to_string())
        ]
    );
    // Even without any checkpoint, store identity alone names it.
    let (code, report) = verify_both(&t3, &[pubkey]);
    assert_eq!(code, 1);
    assert!(kinds(&report).contains("foreign_segment"));
    // The checkpointer refuses to log it.
    let out = run_expect(
        &[
            "checkpoint",
            "--store",
            t3.to_str().unwrap(),
            "--key",
            &v.keys.key,
        ],
        0,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sealed into another store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 4. A checkpoint of another store: foreign_store.
    let other_cp = checkpoint(&other, &v.keys.key, v.tmp.path(), "other.txt");
    let (code, report) = verify_both_with(
        &v.store,
        &[pubkey],
        &["--checkpoint", other_cp.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert_eq!(
        classes(&report),
        [("foreign_store".to_string(), "v1/origin".to_string())]
    );

    // 5. An altered hash tile: log_mismatch, and the Go verifier refuses it too.
    let t5 = v.tmp.path().join("t5");
    copy_dir(&v.store, &t5);
    let tile = t5.join("v1/log/tile/0/000.p/8");
    make_writable(&tile);
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let (code, report) = verify_both_with(&t5, &[pubkey], &with_cp);
    assert_eq!(code, 1);
    assert_eq!(
        classes(&report),
        [(
            "log_mismatch".to_string(),
            "v1/log/tile/0/000.p/8".to_string()
        )]
    );
    let go = run_go_interop(&["--store", t5.to_str().unwrap(), "--pubkey", pubkey]);
    assert_eq!(go.status.code(), Some(1), "{go:?}");

    // 6. Newer segments than the checkpoint: warnings, not errors; the next checkpoint covers
    //    them and is consistent with the first.
    let more = events(v.tmp.path(), "more.jsonl", 700, 1);
    seal_stream(&more, "app", &v.store, &v.keys.key, 100);
    let (code, report) = verify_both_with(&v.store, &[pubkey], &with_cp);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        kinds(&report).iter().collect::<Vec<_>>(),
        ["not_checkpointed"]
    );
    assert_eq!(findings(&report).len(), 2);
    let cp2 = checkpoint(&v.store, &v.keys.key, v.tmp.path(), "cp2.txt");
    let (code, report) = verify_both_with(
        &v.store,
        &[pubkey],
        &["--checkpoint", cp2.to_str().unwrap()],
    );
    assert_eq!((code, findings(&report).len()), (0, 0), "{report:#}");
    // The old checkpoint against a store whose log was cut back to it: the store's newest is
    // behind the witness's copy.
    let t7 = v.tmp.path().join("t7");
    copy_dir(&v.store, &t7);
    std::fs::remove_file(t7.join("v1/log/checkpoint/00000000000000000010")).unwrap();
    let (code, report) = verify_both_with(&t7, &[pubkey], &["--checkpoint", cp2.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        classes(&report),
        [(
            "log_mismatch".to_string(),
            "v1/log/checkpoint/00000000000000000008".to_string()
        )]
    );
}

#[test]
fn proofs_verify_offline_and_forged_ones_do_not() {
    let (v, _) = vault();
    let pubkey = v.keys.public.as_str();
    let store = v.store.to_str().unwrap();
    let id = event_id(&v.app, 321);
    let out = run_expect(
        &[
            "prove",
            "--store",
            store,
            "--event-id",
            &id,
            "--pubkey",
            pubkey,
        ],
        0,
    );
    let proof: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(proof["offset"], 321);
    assert_eq!(proof["leaf_index"], 20);
    assert_eq!(
        proof["manifest_name"],
        "v1/streams/app/0/00000000000000000301-00000000000000000400.manifest"
    );
    let file = v.tmp.path().join("proof.json");
    let write = |p: &serde_json::Value| {
        std::fs::write(&file, serde_json::to_vec(p).unwrap()).unwrap();
        file.to_str().unwrap().to_string()
    };
    let ok = run_expect(&["verify-proof", &write(&proof), "--pubkey", pubkey], 0);
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("PROVEN: event "));
    // Hints narrow the search and still find it; a wrong tenant does not.
    let tenant = proof["event"]["tenant"].as_str().unwrap();
    run_expect(
        &[
            "prove",
            "--store",
            store,
            "--event-id",
            &id,
            "--pubkey",
            pubkey,
            "--tenant",
            tenant,
        ],
        0,
    );
    let miss = run_expect(
        &[
            "prove",
            "--store",
            store,
            "--event-id",
            &id,
            "--pubkey",
            pubkey,
            "--tenant",
            "nobody",
        ],
        2,
    );
    assert!(String::from_utf8_lossy(&miss.stderr).contains("no event"));
    // The Go verifier (sumdb tlog.CheckRecord) accepts both audit paths.
    let go = run_go_interop(&[
        "--store",
        store,
        "--pubkey",
        pubkey,
        "--proof",
        &write(&proof),
    ]);
    assert_eq!(
        go.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&go.stderr)
    );

    // Forgeries: every one is NOT PROVEN (exit 1), with the reason.
    let forged: Vec<(&str, Edit)> = vec![
        (
            "edited event",
            Box::new(|p| p["event"]["outcome"] = "denied".into()),
        ),
        ("another offset", Box::new(|p| p["offset"] = 322.into())),
        ("wrong index", Box::new(|p| p["leaf_index"] = 21.into())),
        (
            "truncated path",
            Box::new(|p| {
                p["segment_path"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "extended path",
            Box::new(|p| {
                let first = p["segment_path"][0].clone();
                p["segment_path"].as_array_mut().unwrap().push(first);
            }),
        ),
        (
            "swapped siblings",
            Box::new(|p| p["segment_path"].as_array_mut().unwrap().swap(0, 1)),
        ),
        (
            "log index",
            Box::new(|p| p["log_index"] = ((p["log_index"].as_u64().unwrap() + 1) % 8).into()),
        ),
        (
            "log path",
            Box::new(|p| {
                p["log_path"].as_array_mut().unwrap().swap(0, 1);
            }),
        ),
        (
            "manifest name",
            Box::new(|p| {
                p["manifest_name"] =
                    "v1/streams/app/0/00000000000000000201-00000000000000000300.manifest".into()
            }),
        ),
        (
            "checkpoint for another tree size",
            Box::new(|p| {
                let cp = p["checkpoint"]
                    .as_str()
                    .unwrap()
                    .replacen("\n8\n", "\n9\n", 1);
                p["checkpoint"] = cp.into();
            }),
        ),
    ];
    for (what, edit) in &forged {
        let mut p = proof.clone();
        edit(&mut p);
        let out = run_expect(&["verify-proof", &write(&p), "--pubkey", pubkey], 1);
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("NOT PROVEN: "),
            "{what}"
        );
    }
    // A checkpoint signed by another key (an untrusted log), and one for another origin signed
    // by a trusted key.
    let other_keys = keygen(&v.tmp.path().join("other-keys"));
    let other = v.tmp.path().join("other");
    let inj = events(v.tmp.path(), "inj.jsonl", 10, 3);
    seal_stream(&inj, "x", &other, &other_keys.key, 100);
    let foreign_cp = checkpoint(&other, &other_keys.key, v.tmp.path(), "o.txt");
    let mut p = proof.clone();
    p["checkpoint"] = std::fs::read_to_string(&foreign_cp).unwrap().into();
    let out = run_expect(&["verify-proof", &write(&p), "--pubkey", pubkey], 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("trusted key"));
    let out = run_expect(
        &[
            "verify-proof",
            &write(&p),
            "--pubkey",
            pubkey,
            "--pubkey",
            &other_keys.public,
        ],
        1,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not entry"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without the sealing key the manifest is not trusted.
    let out = run_expect(
        &[
            "verify-proof",
            &write(&proof),
            "--pubkey",
            &other_keys.public,
        ],
        1,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("manifest"));

    // Many ids in one pass: JSON lines, checked together; an unknown id is reported (exit 1).
    let ids = v.tmp.path().join("ids.txt");
    let wanted: Vec<String> = [5, 150, 499].iter().map(|l| event_id(&v.app, *l)).collect();
    std::fs::write(
        &ids,
        format!(
            "{}\n00000000-0000-4000-8000-000000000000\n",
            wanted.join("\n")
        ),
    )
    .unwrap();
    let out = run_expect(
        &[
            "prove",
            "--store",
            store,
            "--event-ids",
            ids.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        1,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("not proven: no event 00000000-0000-4000-8000-000000000000")
    );
    let lines = v.tmp.path().join("proofs.jsonl");
    std::fs::write(&lines, &out.stdout).unwrap();
    let out = run_expect(
        &["verify-proof", lines.to_str().unwrap(), "--pubkey", pubkey],
        0,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("PROVEN: ")).count(),
        3,
        "{text}"
    );
    for id in &wanted {
        assert!(text.contains(id.as_str()), "{text}");
    }
    // One forged proof among good ones: that one fails, the run exits 1.
    let mut mixed = std::fs::read_to_string(&lines).unwrap();
    let mut bad = proof.clone();
    bad["event"]["tenant"] = "other".into();
    mixed.push_str(&serde_json::to_string(&bad).unwrap());
    std::fs::write(&lines, mixed).unwrap();
    let out = run_expect(
        &["verify-proof", lines.to_str().unwrap(), "--pubkey", pubkey],
        1,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("NOT PROVEN: "))
            .count(),
        1,
        "{text}"
    );

    // An event sealed after the newest checkpoint is found, and the user is told to checkpoint.
    let late = events(v.tmp.path(), "late.jsonl", 600, 1);
    seal_stream(&late, "app", &v.store, &v.keys.key, 100);
    let late_id = event_id(&late, 550);
    let out = run_expect(
        &[
            "prove",
            "--store",
            store,
            "--event-id",
            &late_id,
            "--pubkey",
            pubkey,
        ],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `cairn checkpoint`"));
}

#[test]
fn consistency_proofs_and_the_go_sumdb_verifier_agree_with_cairn() {
    let (v, cp1) = vault();
    let pubkey = v.keys.public.as_str();
    let store = v.store.to_str().unwrap();
    // Grow the log past one full tile (256 entries), checkpointing on the way.
    let big = events(v.tmp.path(), "big.jsonl", 3000, 4);
    seal_stream(&big, "many", &v.store, &v.keys.key, 10);
    let cp2 = checkpoint(&v.store, &v.keys.key, v.tmp.path(), "cp2.txt");
    assert!(std::fs::read_to_string(&cp2).unwrap().contains("\n308\n"));
    assert!(v.store.join("v1/log/tile/0/000").is_file());
    assert!(v.store.join("v1/log/tile/1/000.p/1").is_file());
    // Nothing new: the same checkpoint again, nothing written.
    let again = checkpoint(&v.store, &v.keys.key, v.tmp.path(), "cp2b.txt");
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&cp2).unwrap());

    let out = run_expect(
        &[
            "consistency",
            "--store",
            store,
            "--from",
            cp1.to_str().unwrap(),
            "--to",
            cp2.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        0,
    );
    let proof: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (proof["old_size"].as_u64(), proof["new_size"].as_u64()),
        (Some(8), Some(308))
    );
    let cons = v.tmp.path().join("cons.json");
    std::fs::write(&cons, &out.stdout).unwrap();
    // The reverse order is a usage error.
    run_expect(
        &[
            "consistency",
            "--store",
            store,
            "--from",
            cp2.to_str().unwrap(),
            "--to",
            cp1.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        2,
    );

    let go = run_go_interop(&[
        "--store",
        store,
        "--pubkey",
        pubkey,
        "--checkpoint",
        cp1.to_str().unwrap(),
        "--checkpoint",
        cp2.to_str().unwrap(),
        "--consistency",
        cons.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&go.stdout);
    assert_eq!(
        go.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&go.stderr)
    );
    assert!(
        stdout.contains("tlog.CheckTree accepts 8 → 308"),
        "{stdout}"
    );
    // A consistency proof with one hash changed: Go refuses it too.
    let mut bad = proof.clone();
    let h = bad["path"][0].as_str().unwrap().to_string();
    bad["path"][0] = format!("{}{}", if h.starts_with('0') { "1" } else { "0" }, &h[1..]).into();
    std::fs::write(&cons, serde_json::to_vec(&bad).unwrap()).unwrap();
    let go = run_go_interop(&[
        "--store",
        store,
        "--pubkey",
        pubkey,
        "--consistency",
        cons.to_str().unwrap(),
    ]);
    assert_eq!(go.status.code(), Some(1));
    let (code, report) = verify_both_with(
        &v.store,
        &[pubkey],
        &["--checkpoint", cp2.to_str().unwrap()],
    );
    assert_eq!((code, findings(&report).len()), (0, 0), "{report:#}");
}

#[test]
fn a_racing_foreign_or_altered_log_is_never_signed_over() {
    let (v, _) = vault();
    let store = v.store.to_str().unwrap();
    let more = events(v.tmp.path(), "more.jsonl", 600, 1);
    seal_stream(&more, "app", &v.store, &v.keys.key, 100);
    // Another checkpointer got to the next tile first, with another order of entries.
    let taken = v.store.join("v1/log/tile/entries/000.p/9");
    std::fs::write(&taken, b"\x00\x01x").unwrap();
    let out = run_expect(&["checkpoint", "--store", store, "--key", &v.keys.key], 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another checkpointer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !v.store
            .join("v1/log/checkpoint/00000000000000000009")
            .exists()
    );
    std::fs::remove_file(&taken).unwrap();
    // Another key than the log's: refused before anything is written.
    let other = keygen(&v.tmp.path().join("other"));
    let out = run_expect(&["checkpoint", "--store", store, "--key", &other.key], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to extend"));
    // An entry bundle altered under the newest checkpoint: refused.
    let bundle = v.store.join("v1/log/tile/entries/000.p/8");
    make_writable(&bundle);
    let mut bytes = std::fs::read(&bundle).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    std::fs::write(&bundle, &bytes).unwrap();
    let out = run_expect(&["checkpoint", "--store", store, "--key", &v.keys.key], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not reproduce"));
    bytes[n - 5] ^= 1;
    std::fs::write(&bundle, &bytes).unwrap();
    // Restored, it extends the log.
    run_expect(&["checkpoint", "--store", store, "--key", &v.keys.key], 0);
    assert!(
        v.store
            .join("v1/log/checkpoint/00000000000000000009")
            .is_file()
    );
    // `cairn init` names a store once.
    let fresh = v.tmp.path().join("fresh");
    let out = run_expect(
        &[
            "init",
            "--store",
            fresh.to_str().unwrap(),
            "--origin",
            "audit.example.com/vault",
        ],
        0,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "audit.example.com/vault\n"
    );
    run_expect(
        &[
            "init",
            "--store",
            fresh.to_str().unwrap(),
            "--origin",
            "other.example",
        ],
        2,
    );
    run_expect(&["init", "--store", store, "--origin", "bad origin"], 2);
}

/// Audit bundles (FORMAT.md §13): one tenant's segments with the checkpoint and log proofs,
/// verified with no store access; a byte changed inside, a foreign key, or a path escaping the
/// unpack directory are refused.
#[test]
fn a_tenants_bundle_verifies_offline_and_tampering_inside_it_is_found() {
    let (v, _) = vault();
    let pubkey = v.keys.public.as_str();
    let store = v.store.to_str().unwrap();
    let tar = v.tmp.path().join("acme.tar");
    let out = run_expect(
        &[
            "bundle",
            "--store",
            store,
            "--tenant",
            "acme",
            "--from",
            "2026-11-01T00:00:00Z",
            "--out",
            tar.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        0,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("segment(s) of tenant acme"));
    // Refuses to overwrite.
    run_expect(
        &[
            "bundle",
            "--store",
            store,
            "--tenant",
            "acme",
            "--out",
            tar.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        2,
    );
    let out = run_expect(
        &[
            "verify",
            "--bundle",
            tar.to_str().unwrap(),
            "--pubkey",
            pubkey,
            "--json",
        ],
        0,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true, "{report:#}");
    assert_eq!(
        report["segments_checked"], 8,
        "every segment holds acme: {report:#}"
    );
    assert_eq!(report["checkpoint_size"], 8);
    // A tenant nobody has: nothing to bundle, a clear error.
    let none = v.tmp.path().join("none.tar");
    let out = run_expect(
        &[
            "bundle",
            "--store",
            store,
            "--tenant",
            "nobody",
            "--out",
            none.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no checkpointed segment holds tenant"));

    // Inside the archive: one Parquet byte flipped, one manifest's log path altered.
    let tampered = v.tmp.path().join("tampered.tar");
    let py = r#"
import io, json, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as t:
    members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
out = tarfile.open(dst, "w")
flipped = False
for m, data in members:
    if m.name.endswith(".parquet") and not flipped:
        data = bytearray(data); data[100] ^= 1; data = bytes(data); flipped = True
        print(m.name)
    if m.name == "bundle.json":
        idx = json.loads(data)
        p = idx["segments"][-1]["log_path"]
        p[0], p[-1] = p[-1], p[0]
        print(idx["segments"][-1]["manifest"])
        data = json.dumps(idx).encode()
    m.size = len(data)
    out.addfile(m, io.BytesIO(data))
out.close()
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", py, tar.to_str().unwrap(), tampered.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    let out = run_expect(
        &[
            "verify",
            "--bundle",
            tampered.to_str().unwrap(),
            "--pubkey",
            pubkey,
            "--json",
        ],
        1,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: std::collections::BTreeSet<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: std::collections::BTreeSet<(String, String)> = names
        .iter()
        .map(|n| {
            if n.ends_with(".parquet") {
                ("modified_file".to_string(), n.clone())
            } else {
                ("log_mismatch".to_string(), n.clone())
            }
        })
        .collect();
    assert_eq!(got, want, "{report:#}");

    // Redacted disclosure: only acme's events, each with its proof; a forged one is named.
    let red = v.tmp.path().join("acme-redacted.tar");
    run_expect(
        &[
            "bundle",
            "--store",
            store,
            "--tenant",
            "acme",
            "--redacted",
            "--out",
            red.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        0,
    );
    let out = run_expect(
        &[
            "verify",
            "--bundle",
            red.to_str().unwrap(),
            "--pubkey",
            pubkey,
            "--json",
        ],
        0,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acme = std::fs::read_to_string(&v.app)
        .unwrap()
        .lines()
        .chain(
            std::fs::read_to_string(v.tmp.path().join("billing.jsonl"))
                .unwrap()
                .lines(),
        )
        .filter(|l| l.contains("\"tenant\":\"acme\""))
        .count() as u64;
    assert!(acme > 0);
    assert_eq!(report["events_checked"].as_u64(), Some(acme), "{report:#}");
    assert_eq!(report["segments_checked"], 0);
    let py = r#"
import io, json, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as t:
    members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
assert not any(m.name.endswith(".parquet") for m, _ in members)
out = tarfile.open(dst, "w")
for m, data in members:
    if m.name == "proofs.jsonl":
        lines = data.decode().splitlines()
        assert all(json.loads(l)["event"]["tenant"] == "acme" for l in lines)
        p = json.loads(lines[1]); p["event"]["action"] = "nothing.happened"
        lines[1] = json.dumps(p)
        data = ("\n".join(lines) + "\n").encode()
    m.size = len(data)
    out.addfile(m, io.BytesIO(data))
out.close()
"#;
    let forged = v.tmp.path().join("redacted-forged.tar");
    let o = std::process::Command::new("python3")
        .args(["-c", py, red.to_str().unwrap(), forged.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = run_expect(
        &[
            "verify",
            "--bundle",
            forged.to_str().unwrap(),
            "--pubkey",
            pubkey,
            "--json",
        ],
        1,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["findings"][0]["kind"], "unproven_event",
        "{report:#}"
    );
    assert_eq!(report["findings"][0]["object"], "proofs.jsonl#2");
    assert_eq!(report["findings"].as_array().unwrap().len(), 1);

    // Keys shipped inside are never trusted: with a stranger's key the checkpoint does not open.
    let stranger = keygen(&v.tmp.path().join("stranger"));
    run_expect(
        &[
            "verify",
            "--bundle",
            tar.to_str().unwrap(),
            "--pubkey",
            &stranger.public,
        ],
        2,
    );
    // An entry escaping the unpack directory is refused before anything is checked.
    let evil = v.tmp.path().join("evil.tar");
    let py = r#"
import io, sys, tarfile
out = tarfile.open(sys.argv[1], "w")
info = tarfile.TarInfo("../escape.txt"); info.size = 2
out.addfile(info, io.BytesIO(b"hi"))
out.close()
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", py, evil.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = run_expect(
        &[
            "verify",
            "--bundle",
            evil.to_str().unwrap(),
            "--pubkey",
            pubkey,
        ],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an audit bundle"));
}

/// Key sets (docs/AUDITING.md): keys with validity windows; a manifest signed outside its key's
/// window is `outside_key_window`, rotation needs no re-sealing, and a malformed key set is a
/// usage error.
#[test]
fn key_windows_report_signatures_outside_them() {
    let (v, _) = vault();
    let store = v.store.to_str().unwrap();
    let set = v.tmp.path().join("keys.toml");
    let write = |body: &str| std::fs::write(&set, body).unwrap();
    let verify_set = |code: i32| {
        let out = run_expect(
            &[
                "verify",
                "--store",
                store,
                "--keyset",
                set.to_str().unwrap(),
                "--json",
            ],
            code,
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    // A window around now: intact (the key file is found relative to the key set).
    write(
        "[[key]]\nfile = \"keys/signing.pub\"\nnot_before = \"2020-01-01T00:00:00Z\"\nnot_after = \"2100-01-01T00:00:00Z\"\n",
    );
    let report = verify_set(0);
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    // Revoked an hour ago: every segment sealed since is outside the window.
    let hour_ago = (chrono_like_now_minus_secs(3600)).to_string();
    write(&format!(
        "[[key]]\nfile = \"keys/signing.pub\"\nrevoked_at = \"{hour_ago}\"\n"
    ));
    let report = verify_set(1);
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["outside_key_window"; 8], "{report:#}");
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    // Not yet valid.
    write("[[key]]\nfile = \"keys/signing.pub\"\nnot_before = \"2100-01-01T00:00:00Z\"\n");
    let report = verify_set(1);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not yet valid")
    );
    // Mistakes are usage errors, with the file named.
    write("[[key]]\nfile = \"keys/signing.pub\"\nnot_after = \"soon\"\n");
    verify_set(2);
    write("[[key]]\nfile = \"keys/signing.pub\"\nexpires = \"2100-01-01T00:00:00Z\"\n");
    verify_set(2);
    write("[[key]]\nfile = \"keys/missing.pub\"\n");
    verify_set(2);
}

/// RFC 3339 for now minus `secs`, without a date library in the tests.
fn chrono_like_now_minus_secs(secs: u64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", now_secs() - secs),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Checkpoints are produced to a Kafka topic (Apache Kafka 4.4.0), acknowledged, so that
/// witnesses keep copies outside the store: the current one on the first run, then each new one.
#[test]
fn checkpoints_are_published_to_kafka_for_witnesses() {
    let (v, cp1) = vault();
    let broker = Broker::start();
    broker.create_topic("cairn.checkpoints", 1);
    let store = v.store.to_str().unwrap();
    let publish = |key: &str, code: i32| {
        run_expect(
            &[
                "checkpoint",
                "--store",
                store,
                "--key",
                key,
                "--publish-brokers",
                &broker.addr,
                "--publish-topic",
                "cairn.checkpoints",
            ],
            code,
        )
    };
    let first = publish(&v.keys.key, 0);
    assert_eq!(
        first.stdout,
        std::fs::read(&cp1).unwrap(),
        "nothing new: the same checkpoint"
    );
    let more = events(v.tmp.path(), "more.jsonl", 700, 1);
    seal_stream(&more, "app", &v.store, &v.keys.key, 100);
    let second = publish(&v.keys.key, 0);
    let origin = std::fs::read_to_string(v.store.join("v1/origin")).unwrap();
    let got = raw_records(&broker, "cairn.checkpoints", 2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].2, origin.trim());
    assert_eq!(got[0].3, first.stdout);
    assert_eq!(got[1].3, second.stdout);
    assert!(String::from_utf8_lossy(&got[1].3).contains("\n10\n"));
    // --publish-brokers without a topic is a usage error.
    run_expect(
        &[
            "checkpoint",
            "--store",
            store,
            "--key",
            &v.keys.key,
            "--publish-brokers",
            &broker.addr,
        ],
        2,
    );
}

/// A log signed by its own key: verifying with the sealing key alone is not a failure (the
/// report says the log was not checked); with the log key too, the log is checked. Both
/// verifiers agree (FORMAT.md §8.6 step 1).
#[test]
fn a_log_key_not_given_leaves_the_log_unchecked_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let log_keys = keygen(&tmp.path().join("log"));
    let store = tmp.path().join("vault");
    let app = events(tmp.path(), "app.jsonl", 300, 1);
    seal_stream(&app, "app", &store, &keys.key, 100);
    checkpoint(&store, &log_keys.key, tmp.path(), "cp.txt");
    let (code, report) = verify_both(&store, &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["checkpoint"], serde_json::Value::Null);
    assert!(
        report["limitations"][0]
            .as_str()
            .unwrap()
            .contains("not signed by any key given"),
        "{report:#}"
    );
    let (code, report) = verify_both(&store, &[&keys.public, &log_keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["checkpoint"]["size"], 3);
    // A checkpoint whose trusted signature does not verify is not ignored.
    let cp = store.join("v1/log/checkpoint/00000000000000000003");
    make_writable(&cp);
    let note = std::fs::read_to_string(&cp).unwrap();
    std::fs::write(&cp, note.replacen("\n3\n", "\n4\n", 1)).unwrap();
    let (code, report) = verify_both(&store, &[&keys.public, &log_keys.public]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        classes(&report),
        [(
            "log_mismatch".to_string(),
            "v1/log/checkpoint/00000000000000000003".to_string()
        )]
    );
}
