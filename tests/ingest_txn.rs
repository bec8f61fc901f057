//! `cairn ingest` and what only a real Kafka does: transactions (commit markers, aborted
//! records) and retention deleting records before they were sealed.

use cairn_tests::*;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::BTreeSet;
use std::time::Duration;

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
            p.abort_transaction(Duration::from_secs(30)).unwrap();
        } else {
            p.commit_transaction(Duration::from_secs(30)).unwrap();
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
