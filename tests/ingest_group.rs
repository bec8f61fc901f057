//! `cairn ingest` in a consumer group: instances split the partitions (eager and
//! cooperative protocols), partitions added mid-run and a killed member are taken over, and a
//! member the group moved on from writes nothing more.

use cairn_tests::*;
use rdkafka::producer::Producer;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[test]
fn two_instances_in_one_group_split_partitions_and_seal_everything_once() {
    two_instances_seal_everything_once("range");
}

#[test]
fn two_instances_with_the_cooperative_protocol_seal_everything_once() {
    two_instances_seal_everything_once("cooperative-sticky");
}

fn two_instances_seal_everything_once(strategy: &str) {
    let (broker, _tmp, keys, store) = setup(3);
    let store_s = store.to_str().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let strategy = format!("partition.assignment.strategy={strategy}");
    let a = Ingester::start(
        &broker,
        store_s,
        &keys.key,
        &[
            "--segment-events",
            "25",
            "--metrics-addr",
            &metrics,
            "--kafka",
            &strategy,
        ],
    );
    a.wait_assigned(Duration::from_secs(30));
    let p = producer(&broker);
    for i in 0..300u64 {
        send(&p, "audit", (i % 3) as i32, json_event(i, "t").as_bytes());
        if i == 100 {
            p.flush(Duration::from_secs(10)).unwrap();
        }
    }
    let b = Ingester::start(
        &broker,
        store_s,
        &keys.key,
        &["--segment-events", "25", "--kafka", &strategy],
    );
    b.wait_assigned(Duration::from_secs(60));
    produce_json(&p, 300..600, 3);
    let report = wait_sealed(
        store_s,
        &keys.public,
        600,
        &[199, 199, 199],
        Duration::from_secs(90),
    );
    assert_eq!(report["intact"], true, "{report:#}");

    let body = http_get(&metrics, "/metrics");
    assert!(
        body.contains("cairn_events_sealed_total{topic=\"audit\"}"),
        "{body}"
    );
    assert!(http_get(&metrics, "/healthz").starts_with("HTTP/1.1 200"));
    let (a_got, b_got) = (
        a.events("partition assigned"),
        b.events("partition assigned"),
    );
    a.terminate();
    b.terminate();
    assert!(
        !a_got.is_empty() && !b_got.is_empty(),
        "both instances got partitions"
    );
    let ids = sealed_event_ids(&store);
    assert_eq!(ids.len(), 600, "each event sealed once");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 600);
}

/// Regression (f440131). An instance blocked on an unavailable dead-letter topic for longer than
/// `max.poll.interval.ms` loses its partition to another member. When its dead-letter write
/// finally succeeds it must not write what it still holds (here a cut segment, 10..=19, whose
/// write was pending): the new owner already sealed those offsets with other boundaries, and
/// a second, overlapping chain could never be removed from write-once storage.
#[test]
fn a_member_that_lost_its_assignment_while_blocked_seals_nothing_more() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let p = producer(&broker);
    produce_json(&p, 0..20, 1);
    send(&p, "audit", 0, b"not an event");
    produce_json(&p, 20..40, 1);

    // A (segments of 10) seals 0..=9, cuts 10..=19 (written at its next tick), then blocks on
    // the bad message at offset 20: its dead-letter topic does not exist yet.
    let poll = "max.poll.interval.ms=7000";
    let a = Ingester::builder(&broker, store_s, &keys.key)
        .max_age(600)
        .dlq("audit.dlq.late")
        .args(&["--segment-events", "10", "--kafka", poll])
        .start();
    a.wait_assigned(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sealed_through(&store), 9, "A is blocked at offset 20");

    // B (segments of 7) takes the partition over once A is out of the group.
    let b = Ingester::builder(&broker, store_s, &keys.key)
        .max_age(1)
        .args(&["--segment-events", "7", "--kafka", poll])
        .start();
    let report = wait_sealed(store_s, &keys.public, 40, &[40], Duration::from_secs(90));
    assert_eq!(report["intact"], true, "{report:#}");

    // A's dead-letter topic appears: its write succeeds, and A must drop what it holds.
    broker.create_topic("audit.dlq.late", 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while a
        .events("away from poll too long; rewinding every partition to its manifests before sealing more")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "A never noticed: {:#?}", a.saw());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    a.terminate();
    b.terminate();
    let (code, report) = verify(store_s, &[&keys.public]);
    assert_eq!(code, 0, "no overlapping segment from A: {report:#}");
    assert_eq!(report["events_checked"], 40, "{report:#}");
    assert_eq!(sealed_event_ids(&store).len(), 40);
}

/// Three instances in one group under a steady load; the topic grows from 3 to 6 partitions
/// mid-run and one instance is `kill -9`ed. Every acknowledged record of every partition, old
/// and new, is sealed exactly once.
#[test]
fn three_instances_survive_added_partitions_and_a_killed_member() {
    let (broker, _tmp, keys, store) = setup(3);
    let store_s = store.to_str().unwrap();
    let start = || {
        Ingester::start(
            &broker,
            store_s,
            &keys.key,
            &[
                "--segment-events",
                "100",
                // Notice the new partitions within seconds (librdkafka's default is 5 min).
                "--kafka",
                "topic.metadata.refresh.interval.ms=2000",
            ],
        )
    };
    let (a, b, c) = (start(), start(), start());
    for i in [&a, &b, &c] {
        i.wait_assigned(Duration::from_secs(60));
    }
    let load = Load::start(&broker, 3, 300);
    let wait_acked = |n: usize| {
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
    wait_acked(600);
    broker.add_partitions("audit", 6);
    load.set_partitions(6);
    wait_acked(1500);
    c.kill9();
    wait_acked(2400);
    let produced = load.stop();
    assert!(produced.failed.is_empty(), "{:?}", produced.failed);
    let ends: Vec<i64> = (0..6)
        .map(|p| broker.watermarks("audit", p).1 - 1)
        .collect();
    assert!(
        ends.iter().all(|&e| e > 0),
        "every partition got records: {ends:?}"
    );
    let report = wait_sealed(
        store_s,
        &keys.public,
        produced.sent,
        &ends,
        Duration::from_secs(120),
    );
    let assigned: BTreeSet<i64> = a
        .events("partition assigned")
        .iter()
        .chain(&b.events("partition assigned"))
        .filter_map(|f| f["partition"].as_i64())
        .collect();
    a.terminate();
    b.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
    assert!(
        assigned.is_superset(&(3..6).collect()),
        "the new partitions were consumed by the survivors: {assigned:?}"
    );
    let ids = sealed_event_ids(&store);
    assert_eq!(ids.len() as u64, produced.sent, "each record sealed once");
    let expected: BTreeSet<String> = produced
        .acked
        .iter()
        .map(|&i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
}

/// Issue 9.5, the stale-member window. A's store write hangs (its connection to S3 held open,
/// nothing passed on) longer than `max.poll.interval.ms`, so the group gives the partition to
/// B, which seals the same offsets with other boundaries. When A's write finally reaches the
/// store, its claim on the segment's first offset is refused (B's claim is there): A writes
/// nothing of the segment, and the store holds one chain, with no overlap and nothing lost.
/// Without claims A's segment 100..=149 would land beside B's 100..=129 and fork the stream.
#[test]
fn a_write_that_outlasts_a_rebalance_cannot_fork_the_stream() {
    let (broker, _tmp, keys, _) = setup(1);
    let s3 = S3Server::start();
    s3.admin(&[
        "create-bucket",
        "audit",
        "--lock",
        "--default-retention-days",
        "1",
    ]);
    let gate = Gate::start(s3.endpoint.trim_start_matches("http://"));
    let mut via_gate = s3.env();
    via_gate[0].1 = format!("http://{}", gate.addr);
    let direct = s3.env();
    let store = "s3://audit/vault";
    let p = producer(&broker);
    produce_json(&p, 0..100, 1);
    let poll = ["--kafka", "max.poll.interval.ms=8000"];
    let a = Ingester::builder(&broker, store, &keys.key)
        .args(&["--segment-events", "50"])
        .args(&poll)
        .env(&via_gate)
        .start();
    wait_sealed_env(
        store,
        &keys.public,
        100,
        &[99],
        Duration::from_secs(60),
        &direct,
    );

    gate.hold();
    produce_json(&p, 100..200, 1);
    std::thread::sleep(Duration::from_secs(3)); // A cuts 100..=149; its write hangs
    let b = Ingester::builder(&broker, store, &keys.key)
        .args(&["--segment-events", "30"])
        .args(&poll)
        .env(&direct)
        .start();
    let report = wait_sealed_env(
        store,
        &keys.public,
        200,
        &[199],
        Duration::from_secs(90),
        &direct,
    );
    assert_eq!(report["intact"], true, "{report:#}");
    gate.release();
    // A's poll thread comes back once its write is done (refused, or stored).
    let deadline = Instant::now() + Duration::from_secs(30);
    let back =
        "away from poll too long; rewinding every partition to its manifests before sealing more";
    while a.events(back).is_empty() {
        assert!(
            Instant::now() < deadline,
            "A's write never returned: {:#?}",
            a.saw()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (code, report) = s3.verify(store, &[&keys.public]);
    b.terminate();
    let a_saw = a.saw().join("\n");
    a.terminate();
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["events_checked"], 200);
    assert_eq!(
        report["segments_checked"],
        2 + 4,
        "0-49, 50-99 by A; 30-event segments by B"
    );
    assert!(
        a_saw.contains("another writer claimed the segment starting at offset 100 through 129"),
        "A's write met B's claim: {a_saw}"
    );
}
