//! `cairn ingest` through outages: the store (local and S3, cut on the wire) and the broker
//! (`kill -9` under load, restarted on its log directories) go away and come back; nothing is
//! committed early, lost or sealed twice.

use cairn_tests::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[test]
fn a_store_outage_pauses_sealing_commits_nothing_early_and_loses_nothing() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let p = producer(&broker);
    produce_json(&p, 0..200, 1);
    let ingest = Ingester::start(&broker, store_s, &keys.key, &["--segment-events", "20"]);
    wait_sealed(store_s, &keys.public, 200, &[199], Duration::from_secs(60));

    // The store goes away: its directory is replaced by a plain file.
    let away = store.with_extension("away");
    std::fs::rename(&store, &away).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    produce_json(&p, 200..400, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ingest
        .events("sealing failed; rewinding to the last manifest")
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "no store error seen: {:#?}",
            ingest.saw()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let committed = committed_offset(&broker, "cairn-test");
    assert!(
        committed <= sealed_through(&away) + 1,
        "committed {committed} beyond the last manifest {}",
        sealed_through(&away)
    );
    assert_eq!(
        sealed_through(&away),
        199,
        "nothing sealed while the store is away"
    );

    // The store comes back: everything is sealed once.
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(&away, &store).unwrap();
    let report = wait_sealed(store_s, &keys.public, 400, &[399], Duration::from_secs(60));
    ingest.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
    let ids = sealed_event_ids(&store);
    assert_eq!(ids.len(), 400);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 400);
    assert_eq!(committed_offset(&broker, "cairn-test"), 400);
}

#[test]
fn an_s3_outage_pauses_sealing_commits_nothing_early_and_loses_nothing() {
    let (broker, tmp, keys, _) = setup(1);
    let s3 = S3Server::start();
    s3.admin(&[
        "create-bucket",
        "audit",
        "--lock",
        "--default-retention-days",
        "1",
    ]);
    // cairn reaches moto through a gate that can cut the network; verify goes direct.
    let gate = Gate::start(s3.endpoint.trim_start_matches("http://"));
    let mut env = s3.env();
    env[0].1 = format!("http://{}", gate.addr);
    let store = "s3://audit/vault";
    let metrics = format!("127.0.0.1:{}", free_port());
    let p = producer(&broker);
    produce_json(&p, 0..200, 1);
    let ingest = Ingester::builder(&broker, store, &keys.key)
        .max_age(1)
        .args(&["--segment-events", "20", "--metrics-addr", &metrics])
        .env(&env)
        .start();
    let direct = s3.env();
    wait_sealed_env(
        store,
        &keys.public,
        200,
        &[199],
        Duration::from_secs(60),
        &direct,
    );
    assert_eq!(committed_offset(&broker, "cairn-test"), 200);

    gate.close();
    produce_json(&p, 200..400, 1);
    wait_metrics(
        &metrics,
        &["cairn_store_failing 1".to_string()],
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        committed_offset(&broker, "cairn-test"),
        200,
        "nothing committed while the store is unreachable"
    );
    let (code, report) = s3.verify(store, &[&keys.public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        report["events_checked"], 200,
        "nothing sealed while away: {report:#}"
    );

    gate.open();
    let report = wait_sealed_env(
        store,
        &keys.public,
        400,
        &[399],
        Duration::from_secs(90),
        &direct,
    );
    assert_eq!(report["intact"], true, "{report:#}");
    let body = wait_metrics(
        &metrics,
        &["cairn_store_failing 0".to_string()],
        Duration::from_secs(30),
    );
    let errors: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("cairn_store_errors_total{topic=\"audit\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors > 0, "store errors are counted: {body}");
    ingest.terminate();
    assert_eq!(committed_offset(&broker, "cairn-test"), 400);
    drop(tmp);
}

/// `kill -9` of the broker while an application produces (idempotent, acks=all) and cairn
/// consumes, twice: cairn keeps running through the first outage, and is stopped and started
/// again during the second. Every acknowledged record is sealed exactly once, nothing else is,
/// and verify is intact.
#[test]
fn a_broker_crash_under_load_loses_and_duplicates_no_acknowledged_record() {
    let (mut broker, _tmp, keys, store) = setup(3);
    let store_s = store.to_str().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let start = |broker: &Broker| {
        Ingester::builder(broker, store_s, &keys.key)
            .args(&["--segment-events", "50", "--metrics-addr", &metrics])
            .start()
    };
    let ingest = start(&broker);
    let load = Load::start(&broker, 3, 300);
    let wait_acked = |load: &Load, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while load.acked() < n {
            assert!(
                Instant::now() < deadline,
                "producer stalled at {}",
                load.acked()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_acked(&load, 500);

    // 1. The broker dies mid-stream, records in flight; cairn keeps running.
    broker.kill();
    wait_metrics(
        &metrics,
        &["cairn_kafka_brokers_down 1".to_string()],
        Duration::from_secs(30),
    );
    broker.restart();
    let before = load.acked();
    wait_acked(&load, before + 500);

    // 2. It dies again; cairn is stopped during the outage (sealing what it holds) and started
    // again before the broker is back.
    broker.kill();
    std::thread::sleep(Duration::from_secs(1));
    let stopping = Instant::now();
    ingest.terminate();
    // Sealing takes milliseconds; the rest is the final commit and leaving the group, both
    // given up on while the broker is down (at most ~6 s and 10 s).
    assert!(
        stopping.elapsed() < Duration::from_secs(30),
        "{:?}",
        stopping.elapsed()
    );
    let ingest = start(&broker);
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    let before = load.acked();
    wait_acked(&load, before + 500);

    let produced = load.stop();
    assert!(produced.failed.is_empty(), "{:?}", produced.failed);
    assert_eq!(
        produced.acked.len() as u64,
        produced.sent,
        "every send acknowledged"
    );
    let ends: Vec<i64> = (0..3)
        .map(|p| broker.watermarks("audit", p).1 - 1)
        .collect();
    let report = wait_sealed(
        store_s,
        &keys.public,
        produced.sent,
        &ends,
        Duration::from_secs(120),
    );
    ingest.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
    let ids = sealed_event_ids(&store);
    assert_eq!(ids.len() as u64, produced.sent, "no duplicates");
    let expected: BTreeSet<String> = produced
        .acked
        .iter()
        .map(|&i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    for s in report["streams"].as_array().unwrap() {
        assert_eq!(s["absent_offsets"], 0, "{s:#}");
        assert_eq!(s["lost_offsets"], 0, "{s:#}");
    }
}
