//! How `cairn ingest` stops: a final seal that fails exits non-zero and loses nothing; a
//! permanent error stops it with the reason instead of retrying forever.

use cairn_tests::*;
use std::time::Duration;

/// Regression (99420cc): a failed final seal at shutdown used to exit 0.
#[test]
fn a_failed_seal_at_shutdown_exits_nonzero_and_the_next_start_seals_everything() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let p = producer(&broker);
    produce_json(&p, 0..50, 1);
    // Nothing is cut before shutdown: 50 events stay buffered.
    let ingest = Ingester::builder(&broker, store_s, &keys.key)
        .max_age(600)
        .args(&["--metrics-addr", &metrics])
        .start();
    ingest.wait_assigned(Duration::from_secs(30));
    wait_metrics(
        &metrics,
        &["cairn_consumer_lag{topic=\"audit\",partition=\"0\"} 50".to_string()],
        Duration::from_secs(30),
    );
    let away = store.with_extension("away");
    std::fs::rename(&store, &away).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    let (code, _) = ingest.stop();
    assert_ne!(code, Some(0), "a failed final seal must not exit 0");
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(&away, &store).unwrap();
    assert_eq!(sealed_through(&store), -1, "nothing was sealed");

    let again = Ingester::start(&broker, store_s, &keys.key, &[]);
    let report = wait_sealed(store_s, &keys.public, 50, &[49], Duration::from_secs(60));
    again.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
}

/// Issue 8: a permanent sealing error (here: the stream's chain is signed by another key, so
/// this key must not extend it) used to be retried forever while the partition stalled. Ingest
/// now stops with the reason and a hint, exit 2, and seals nothing.
#[test]
fn a_chain_signed_by_another_key_stops_ingest_instead_of_retrying_forever() {
    let (broker, tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    // Stream audit/0 already sealed by another key (a file source with the same stream name).
    let other = keygen(&tmp.path().join("other"));
    run_expect(
        &[
            "seal",
            "--input",
            data("sample.jsonl").to_str().unwrap(),
            "--source-id",
            "audit",
            "--store",
            store_s,
            "--key",
            &other.key,
            "--rejects",
            "/dev/null",
        ],
        0,
    );
    let before = objects(&store);
    let mut ingest = Ingester::start(&broker, store_s, &keys.key, &[]);
    let status = ingest.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(2));
    let saw = ingest.saw().join("\n");
    assert!(
        saw.contains("cannot resume stream audit/0")
            && saw.contains("is not validly signed by this signing key"),
        "{saw}"
    );
    assert!(saw.contains("hint: run `cairn verify"), "{saw}");
    assert_eq!(objects(&store), before, "nothing sealed");
}
