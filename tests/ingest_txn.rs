//! `cairn ingest` and what only a real Kafka does: transactions (commit markers, aborted
//! records), retention deleting records before they were sealed, a topic recreated under a
//! store that holds its old offsets.

use cairn_tests::*;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::BTreeSet;
use std::time::Duration;

/// Calls a transaction API again while librdkafka says the error is retriable (as its docs
/// ask; on a loaded machine the coordinator sometimes answers late).
fn retrying(mut call: impl FnMut() -> rdkafka::error::KafkaResult<()>) {
    for attempt in 1.. {
        match call() {
            Ok(()) => return,
            Err(rdkafka::error::KafkaError::Transaction(e)) if e.is_retriable() && attempt < 5 => {
                eprintln!("retrying a transaction call: {e}");
            }
            Err(e) => panic!("transaction call: {e}"),
        }
    }
}

/// The committed ids, in any order.
fn id(i: u64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// A transactional producer commits some transactions and aborts others, interleaved across
/// partitions. With read_committed, cairn seals exactly the committed records; every
/// transaction marker and aborted offset is absent; verify is intact.
#[test]
fn only_committed_transactional_records_are_sealed_and_markers_are_absent() {
    let (broker, _tmp, keys, store) = setup(3);
    let store_s = store.to_str().unwrap();
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("transactional.id", "cairn-test-txn")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    let mut committed = BTreeSet::new();
    let mut i = 0u64;
    for t in 0..12 {
        p.begin_transaction().unwrap();
        let mut ids = Vec::new();
        for _ in 0..(5 + t % 4) {
            let payload = json_event(i, "t");
            p.send(
                BaseRecord::<(), str>::to("audit")
                    .partition((i % 3) as i32)
                    .payload(&payload),
            )
            .unwrap();
            ids.push(id(i));
            i += 1;
        }
        if t % 3 == 1 {
            retrying(|| p.abort_transaction(Duration::from_secs(30)));
        } else {
            retrying(|| p.commit_transaction(Duration::from_secs(30)));
            committed.extend(ids);
        }
    }
    // Every offset up to each partition's high watermark (the last one is a marker).
    let ends: Vec<i64> = (0..3)
        .map(|part| broker.watermarks("audit", part).1 - 1)
        .collect();
    let ingest = Ingester::start(&broker, store_s, &keys.key, &["--segment-events", "7"]);
    let report = wait_sealed(
        store_s,
        &keys.public,
        committed.len() as u64,
        &ends,
        Duration::from_secs(60),
    );
    ingest.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
    let sealed: BTreeSet<String> = sealed_event_ids(&store).into_iter().collect();
    assert_eq!(sealed, committed, "exactly the committed records");
    for s in report["streams"].as_array().unwrap() {
        let events = s["events"].as_u64().unwrap();
        let absent = s["absent_offsets"].as_u64().unwrap();
        let last = s["last_offset"].as_u64().unwrap();
        assert_eq!(s["rejected_offsets"], 0, "{s:#}");
        assert_eq!(
            events + absent,
            last + 1,
            "every offset accounted for: {s:#}"
        );
        assert!(absent > 0, "markers and aborted records are absent: {s:#}");
    }
}

/// The stream's lost ranges, as `[first, last]` pairs, from every manifest of `audit/0`.
fn lost_ranges(store: &std::path::Path) -> Vec<(i64, i64)> {
    let mut lost = Vec::new();
    let dir = store.join("v1/streams/audit/0");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "manifest"))
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let m: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        for r in m["lost"].as_array().into_iter().flatten() {
            lost.push((r[0].as_i64().unwrap(), r[1].as_i64().unwrap()));
        }
    }
    lost
}

/// What an auditor sees of a store whose partition `audit/0` lost `first..=last`: verify
/// intact with a `lost_offsets` warning (the independent verifier agrees), `--deny
/// lost_offsets` fails it, and every other offset up to 199 holds its event.
fn assert_lost(store: &std::path::Path, public: &str, first: i64, last: i64) {
    let (code, report) = verify_both(store, &[public]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["intact"], true, "{report:#}");
    assert!(kinds(&report).contains("lost_offsets"), "{report:#}");
    let s = &report["streams"][0];
    assert_eq!(s["lost_offsets"], last - first + 1, "{s:#}");
    assert_eq!(lost_ranges(store), [(first, last)]);
    let denied = run_expect(
        &[
            "verify",
            "--store",
            store.to_str().unwrap(),
            "--pubkey",
            public,
            "--deny",
            "lost_offsets",
        ],
        1,
    );
    assert!(
        String::from_utf8_lossy(&denied.stdout).contains("lost_offsets"),
        "{}",
        String::from_utf8_lossy(&denied.stdout)
    );
    let expected: Vec<String> = (0..200u64)
        .filter(|&i| (i as i64) < first || (i as i64) > last)
        .map(id)
        .collect();
    assert_eq!(sealed_event_ids(store), expected);
}

/// Kafka deleted records cairn had not sealed while it was down (DeleteRecords here; retention
/// in production). On restart cairn records them as lost, says so, seals the rest, and
/// exits 0; nothing is silently skipped.
#[test]
fn records_kafka_deleted_while_ingest_was_down_are_recorded_as_lost() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let p = producer(&broker);
    produce_json(&p, 0..100, 1);
    let ingest = Ingester::start(&broker, store_s, &keys.key, &["--segment-events", "40"]);
    wait_sealed(store_s, &keys.public, 100, &[99], Duration::from_secs(60));
    ingest.terminate();

    produce_json(&p, 100..200, 1);
    broker.delete_records("audit", 0, 150);
    let ingest = Ingester::start(&broker, store_s, &keys.key, &["--segment-events", "40"]);
    wait_sealed(store_s, &keys.public, 150, &[199], Duration::from_secs(60));
    let out = ingest.terminate();
    assert!(
        out.contains("50 offsets were deleted by Kafka"),
        "the exit summary says so: {out}"
    );
    assert_lost(&store, &keys.public, 100, 149);
}

/// The same while ingest runs but cannot keep up (stopped here with SIGSTOP): its next fetch
/// finds the records gone and the gap it sees is recorded as lost, not absent.
#[test]
fn records_kafka_deleted_while_ingest_lagged_are_recorded_as_lost() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let p = producer(&broker);
    produce_json(&p, 0..100, 1);
    let ingest = Ingester::start(&broker, store_s, &keys.key, &["--segment-events", "40"]);
    wait_sealed(store_s, &keys.public, 100, &[99], Duration::from_secs(60));
    unsafe_kill(ingest.id(), "STOP");
    // Past fetch.wait.max.ms (500 ms), so a fetch in flight when it stopped has come back
    // empty instead of carrying the new records.
    std::thread::sleep(Duration::from_secs(2));
    produce_json(&p, 100..200, 1);
    broker.delete_records("audit", 0, 150);
    unsafe_kill(ingest.id(), "CONT");
    wait_sealed(store_s, &keys.public, 150, &[199], Duration::from_secs(60));
    let out = ingest.terminate();
    assert!(out.contains("50 offsets were deleted by Kafka"), "{out}");
    assert_lost(&store, &keys.public, 100, 149);
}

/// The topic was deleted and created again while the store holds its old offsets: the new
/// log's offsets start at 0, below what is sealed, so its records would be taken for sealed
/// ones and skipped without a trace. Ingest refuses: exit 2, naming the stream and both
/// offsets, and seals nothing.
#[test]
fn a_recreated_topic_stops_ingest_instead_of_being_skipped_as_sealed() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let p = producer(&broker);
    produce_json(&p, 0..100, 1);
    let ingest = Ingester::start(&broker, store_s, &keys.key, &[]);
    wait_sealed(store_s, &keys.public, 100, &[99], Duration::from_secs(60));
    ingest.terminate();

    broker.recreate_topic("audit", 1);
    produce_json(&p, 1000..1010, 1);
    let before = objects(&store);
    let mut ingest = Ingester::start(&broker, store_s, &keys.key, &[]);
    let status = ingest.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(2), "{:#?}", ingest.saw());
    let saw = ingest.saw().join("\n");
    assert!(
        saw.contains(
            "audit/0: Kafka's log ends at offset 10 but the store has sealed up to offset 99"
        ),
        "{saw}"
    );
    assert_eq!(objects(&store), before, "nothing sealed");
}
