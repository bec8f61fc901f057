//! End to end on a local store: keygen, seal (with malformed lines), verify, resume, crash
//! recovery, and independent readers (DuckDB, pyarrow) opening the sealed Parquet files.

use cairn_tests::*;
use std::io::Write;

#[test]
fn seal_then_verify_accounts_for_every_line() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    let store_s = store.to_str().unwrap();
    let rejects = tmp.path().join("rejects.jsonl");
    let input = data("sample.jsonl");
    let (valid, bad) = valid_lines(&input);

    let out = seal(&input, store_s, &keys.key, 10, &rejects);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{valid} events, {bad} rejected lines")),
        "{stdout}"
    );

    // Every rejected line is in the rejects file with its line number and reason.
    let rejected: Vec<serde_json::Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<i64> = rejected
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [7, 14, 21, 28, 35, 42, 49]);
    let reasons: Vec<&str> = rejected
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].starts_with("line 7: not valid JSON"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[1],
        "line 14: field `extra`: unknown field `extra`, expected one of `event_id`, `occurred_at`, `tenant`, `actor`, `action`, `resource`, `outcome`, `source`, `sensitivity`, `details`"
    );
    assert_eq!(
        reasons[2],
        "line 21: field `tenant`: missing field `tenant`"
    );
    assert!(
        reasons[3].starts_with("line 28: field `outcome`"),
        "{reasons:?}"
    );
    assert!(
        reasons[4].starts_with("line 35: field `occurred_at`"),
        "{reasons:?}"
    );
    let original_text = std::fs::read_to_string(&input).unwrap();
    let original: Vec<&str> = original_text.lines().collect();
    assert_eq!(rejected[2]["raw"].as_str().unwrap(), original[20]);

    // 43 valid events at 10 per segment: segments end where the 10th event lands. Each has a
    // manifest, a Parquet file and the claim its writer made (FORMAT.md §7); the store has
    // its origin (§11), created by the first seal.
    let objs = objects(&store);
    assert_eq!(objs.len(), 16, "{objs:?}");
    assert_eq!(objs[0], "v1/origin");
    assert_eq!(
        objs[1],
        "v1/streams/billing/0/00000000000000000001-00000000000000000011.manifest"
    );

    let (code, report) = verify(store_s, &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["intact"], true);
    assert_eq!(report["events_checked"], valid);
    assert_eq!(report["segments_checked"], 5);
    let s = &report["streams"][0];
    assert_eq!(s["stream"], "billing/0");
    assert_eq!(s["first_offset"], 1);
    assert_eq!(s["last_offset"], 50);
    assert_eq!(s["rejected_offsets"], bad);
    assert_eq!(s["events"], valid);

    // Human report and exit code.
    let out = run_expect(&["verify", "--store", store_s, "--pubkey", &keys.public], 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("INTACT: 5 segments, 43 events"), "{text}");

    // Re-running on the same file seals nothing new; a grown file continues where it stopped.
    let again = seal(&input, store_s, &keys.key, 10, &rejects);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("sealed 0 segments"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let grown = tmp.path().join("grown.jsonl");
    std::fs::copy(&input, &grown).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&grown)
        .unwrap();
    for l in &original[..5] {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let out = seal(&grown, store_s, &keys.key, 10, &rejects);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming at line 51"), "{stderr}");
    let (code, report) = verify(store_s, &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["streams"][0]["last_offset"], 55);
    assert_eq!(report["events_checked"], valid + 5);
}

/// The sample sealed locally in segments of 10, then left as a crash after the last Parquet
/// write leaves it: no manifest for that range.
struct Crashed {
    tmp: tempfile::TempDir,
    keys: Keys,
    store: std::path::PathBuf,
    rejects: std::path::PathBuf,
    input: std::path::PathBuf,
    /// Every object of the uninterrupted run.
    before: Vec<String>,
    last_manifest: std::path::PathBuf,
    orphan: std::path::PathBuf,
}

fn crashed_after_last_parquet() -> Crashed {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    let rejects = tmp.path().join("rejects.jsonl");
    let input = data("sample.jsonl");
    seal(&input, store.to_str().unwrap(), &keys.key, 10, &rejects);
    let before = objects(&store);
    let last = before.iter().rfind(|o| o.ends_with(".manifest")).unwrap();
    let last_manifest = store.join(last);
    let orphan = store.join(last.replace(".manifest", ".parquet"));
    std::fs::remove_file(&last_manifest).unwrap();
    Crashed {
        tmp,
        keys,
        store,
        rejects,
        input,
        before,
        last_manifest,
        orphan,
    }
}

#[test]
fn crash_between_parquet_and_manifest_is_recovered_under_the_same_names() {
    let Crashed {
        tmp,
        keys,
        store,
        rejects,
        input,
        before,
        last_manifest,
        ..
    } = crashed_after_last_parquet();
    let store_s = store.to_str().unwrap();
    let (code, report) = verify(store_s, &[&keys.public]);
    assert_eq!(code, 0, "an orphan Parquet file is a warning: {report:#}");
    assert_eq!(kinds(&report), ["orphan_file".to_string()].into());

    let out = seal(&input, store_s, &keys.key, 10, &rejects);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("recovered v1/streams/billing/0/"),
        "{stderr}"
    );
    assert_eq!(
        objects(&store),
        before,
        "same names as the uninterrupted run"
    );
    let (code, report) = verify(store_s, &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );

    // If the input changed meanwhile, the stored Parquet file no longer matches: loud error.
    std::fs::remove_file(&last_manifest).unwrap();
    let text = std::fs::read_to_string(&input)
        .unwrap()
        .replace("invoice", "INVOICE");
    let changed = tmp.path().join("changed.jsonl");
    std::fs::write(&changed, text).unwrap();
    let out = cairn()
        .args([
            "seal",
            "--input",
            changed.to_str().unwrap(),
            "--source-id",
            "billing",
        ])
        .args([
            "--store",
            store_s,
            "--key",
            &keys.key,
            "--segment-events",
            "10",
        ])
        .args(["--rejects", rejects.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists with different bytes"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_are_clear_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    // keygen never overwrites a key.
    let out = run_expect(&["keygen", "--out", keys.dir.to_str().unwrap()], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    // A public key is not a signing key.
    let out = run_expect(
        &[
            "seal",
            "--input",
            data("sample.jsonl").to_str().unwrap(),
            "--source-id",
            "x",
            "--store",
            tmp.path().join("v").to_str().unwrap(),
            "--key",
            &keys.public,
        ],
        2,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a cairn secret key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_expect(
        &[
            "seal",
            "--input",
            data("sample.jsonl").to_str().unwrap(),
            "--source-id",
            "a/b",
            "--store",
            tmp.path().join("v").to_str().unwrap(),
            "--key",
            &keys.key,
        ],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("source id \"a/b\" is not valid"));
    let out = run_expect(
        &["verify", "--store", "ftp://x", "--pubkey", &keys.public],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not valid"));
    // Missing required flags: clap's usage error, also exit 2.
    run_expect(&["verify", "--store", "x"], 2);
}

#[test]
fn duckdb_and_pyarrow_read_sealed_segments_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    let rejects = tmp.path().join("rejects.jsonl");
    seal(
        &data("sample.jsonl"),
        store.to_str().unwrap(),
        &keys.key,
        10,
        &rejects,
    );
    let glob = format!("{}/v1/streams/billing/0/*.parquet", store.display());
    let script = format!(
        r#"
import duckdb, pyarrow.parquet as pq, glob
con = duckdb.connect()
n, tenants, acts, ips = con.execute("SELECT count(*), count(DISTINCT tenant), count(DISTINCT actor.id), count(actor.ip) FROM read_parquet('{glob}')").fetchone()
lo, hi = con.execute("SELECT min(stream_offset), max(stream_offset) FROM read_parquet('{glob}')").fetchone()
tz = con.execute("SELECT typeof(occurred_at) FROM read_parquet('{glob}') LIMIT 1").fetchone()[0]
d = con.execute("SELECT count(*) FROM read_parquet('{glob}') WHERE details IS NOT NULL AND cardinality(details) >= 2").fetchone()[0]
rows = sum(pq.read_table(f).num_rows for f in sorted(glob.glob('{glob}')))
t = pq.read_table(sorted(glob.glob('{glob}'))[0])
print(n, rows, lo, hi, tz, str(t.schema.field('occurred_at').type), d > 0, tenants >= 2)
"#
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "DuckDB/pyarrow failed (the test script installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "43 43 1 50 TIMESTAMP WITH TIME ZONE timestamp[us, tz=UTC] True True"
    );
}

/// tests/independent_verifier.py was written from docs/FORMAT.md alone (Python: pyarrow,
/// cryptography). It must accept what the sealer writes and reject a tampered copy.
#[test]
fn an_independent_verifier_written_from_format_md_agrees() {
    let script = data("../independent_verifier.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg("--self-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    seal(
        &data("sample.jsonl"),
        store.to_str().unwrap(),
        &keys.key,
        10,
        &tmp.path().join("r"),
    );
    let run = |dir: &std::path::Path| {
        std::process::Command::new("python3")
            .arg(&script)
            .args([dir.to_str().unwrap(), &keys.public])
            .output()
            .unwrap()
    };
    let out = run(&store);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("independent verifier: 5 segments, 43 events, OK"),
        "{stdout}"
    );

    let objs = objects(&store);
    let victim = store.join(objs.iter().find(|o| o.ends_with(".parquet")).unwrap());
    make_writable(&victim);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&victim, bytes).unwrap();
    let out = run(&store);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A crash left a Parquet file without its manifest, and the restarted sealer's Parquet writer
/// encodes differently (an upgrade in between): the file holds exactly the events, so it is
/// adopted and signed as it is, instead of wedging the stream on a conflict.
#[test]
fn an_orphan_encoded_by_another_writer_is_adopted_when_it_holds_the_same_events() {
    let Crashed {
        tmp: _tmp,
        keys,
        store,
        rejects,
        input,
        before,
        orphan,
        ..
    } = crashed_after_last_parquet();
    let store_s = store.to_str().unwrap();

    // Re-encode the orphan as another Parquet writer would (uncompressed, other created_by):
    // the same rows and columns, other bytes.
    let original = std::fs::read(&orphan).unwrap();
    make_writable(&orphan);
    std::fs::write(&orphan, reencode(&original)).unwrap();
    let reencoded = std::fs::read(&orphan).unwrap();
    assert_ne!(original, reencoded);

    let out = seal(&input, store_s, &keys.key, 10, &rejects);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("recovered v1/streams/billing/0/"),
        "{stderr}"
    );
    assert_eq!(
        objects(&store),
        before,
        "same names as the uninterrupted run"
    );
    assert_eq!(
        std::fs::read(&orphan).unwrap(),
        reencoded,
        "adopted as it is"
    );
    let (code, report) = verify(store_s, &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
}

/// Issue 7: `cairn seal --rejects /dev/null` failed ("syncing rejects file /dev/null: Invalid
/// argument"); a user discarding rejects must be able to.
#[test]
fn rejects_can_be_discarded_to_dev_null() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    let input = data("sample.jsonl");
    let out = seal(
        &input,
        store.to_str().unwrap(),
        &keys.key,
        10,
        std::path::Path::new("/dev/null"),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("43 events, 7 rejected lines"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (code, report) = verify(store.to_str().unwrap(), &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
}

/// FORMAT.md, Versions: a vault sealed by an earlier cairn (`cairn.segment.v1`, committed as a
/// fixture in tests/data/v1-vault with its test keys) still verifies, for cairn and for the
/// independent verifier, and today's sealer extends its chains with v3 manifests (naming the
/// store's origin, which it creates: the v1 segments name none).
#[test]
fn a_vault_of_an_earlier_format_version_verifies_and_is_extended() {
    let fixture = data("v1-vault");
    let pubkey = data("v1-vault.pub");
    let (code, report) = verify_both(&fixture, &[pubkey.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["segments_checked"], 5);
    let first = std::fs::read_to_string(
        fixture.join("v1/streams/billing/0/00000000000000000001-00000000000000000011.manifest"),
    )
    .unwrap();
    assert!(
        first.starts_with("{\"format\":\"cairn.segment.v1\""),
        "{first}"
    );

    // The same stream, grown by ten lines and sealed by this build with the same key.
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("vault");
    copy_dir(&fixture, &store);
    let input = tmp.path().join("grown.jsonl");
    let mut text = std::fs::read_to_string(data("sample.jsonl")).unwrap();
    for line in text.clone().lines().take(10) {
        text.push_str(&line.replace("\"event_id\":\"", "\"event_id\":\"f"));
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    let key = data("v1-vault.key");
    seal(
        &input,
        store.to_str().unwrap(),
        key.to_str().unwrap(),
        10,
        &tmp.path().join("r"),
    );
    let manifests: Vec<String> = objects(&store)
        .into_iter()
        .filter(|o| o.ends_with(".manifest"))
        .collect();
    let newest = std::fs::read_to_string(store.join(manifests.last().unwrap())).unwrap();
    assert!(
        newest.starts_with("{\"format\":\"cairn.segment.v3\",\"store\":\"cairn.store/"),
        "{newest}"
    );
    let (code, report) = verify_both(&store, &[pubkey.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["streams"][0]["last_offset"], 60);
    assert!(
        report["limitations"]
            .to_string()
            .contains("before format v3"),
        "{report:#}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for o in objects(from) {
        let dest = to.join(&o);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&o), dest).unwrap();
    }
}
