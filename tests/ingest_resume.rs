//! `cairn ingest` resuming from the store after crashes: `kill -9` at random moments, and
//! resuming in the middle of a record batch.

use cairn_tests::*;
use rdkafka::ClientConfig;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let (broker, _tmp, keys, store) = setup(3);
    let store_s = store.to_str().unwrap().to_string();

    // A producer writing steadily (~50 s) while ingest is killed and restarted.
    const TOTAL: u64 = 3000;
    let addr = broker.addr.clone();
    let producing = std::thread::spawn(move || {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("acks", "all")
            .create()
            .unwrap();
        for i in 0..TOTAL {
            send(
                &p,
                "audit",
                (i % 3) as i32,
                json_event(i, ["a", "b", "c", "d"][(i % 4) as usize]).as_bytes(),
            );
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(170));
            }
        }
        p.flush(Duration::from_secs(10)).unwrap();
    });

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rand = move |lo: u64, hi: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (seed >> 33) % (hi - lo)
    };
    for cycle in 0..10 {
        let ingest = Ingester::start(&broker, &store_s, &keys.key, &["--segment-events", "40"]);
        ingest.wait_assigned(Duration::from_secs(30));
        let ms = rand(200, 1500);
        std::thread::sleep(Duration::from_millis(ms));
        eprintln!("cycle {cycle}: kill -9 after {ms} ms");
        ingest.kill9();
    }
    producing.join().unwrap();

    let ingest = Ingester::start(&broker, &store_s, &keys.key, &["--segment-events", "40"]);
    let ends = [999, 999, 999];
    let report = wait_sealed(
        &store_s,
        &keys.public,
        TOTAL,
        &ends,
        Duration::from_secs(90),
    );
    ingest.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
    // Orphan Parquet files from kills between the two writes are reused, not left behind.
    let ids = sealed_event_ids(&store);
    assert_eq!(ids.len() as u64, TOTAL, "no duplicates, no losses");
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len() as u64, TOTAL);
}

/// Resuming in the middle of a record batch must re-read the rest of the batch, never record it
/// as absent (a silent loss). Some Kafka-protocol brokers (tansu 0.6) answer such a fetch with
/// the *next* batch; the consumer is positioned before the resume offset to confirm it.
#[test]
fn resuming_in_the_middle_of_a_record_batch_loses_nothing() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    // 20 records in one batch.
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("linger.ms", "500")
        .create()
        .unwrap();
    for i in 0..20 {
        send(&p, "audit", 0, json_event(i, "t").as_bytes());
    }
    p.flush(Duration::from_secs(10)).unwrap();

    // Segments of 7 events, no age cut: offsets 0..=13 sealed, 14..=19 buffered when killed.
    let first = Ingester::builder(&broker, store_s, &keys.key)
        .max_age(600)
        .args(&["--segment-events", "7"])
        .start();
    wait_sealed(store_s, &keys.public, 14, &[13], Duration::from_secs(30));
    first.kill9();

    let second = Ingester::start(&broker, store_s, &keys.key, &[]);
    let report = wait_sealed(store_s, &keys.public, 20, &[19], Duration::from_secs(60));
    let assigned = second.events("partition assigned");
    second.terminate();
    assert_eq!(report["streams"][0]["absent_offsets"], 0, "{report:#}");
    assert!(
        assigned
            .iter()
            .any(|f| f["resume"] == "offset 14"
                && f["reading_from"] == "the beginning of the partition"),
        "{assigned:#?}"
    );
    assert_eq!(sealed_event_ids(&store).len(), 20);
}

/// The same with a record batch larger than the re-read window (512 records).
#[test]
fn resuming_in_the_middle_of_a_large_record_batch_loses_nothing() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("linger.ms", "2000")
        .set("batch.size", "10000000")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    for i in 0..2000 {
        send(&p, "audit", 0, json_event(i, "t").as_bytes());
    }
    p.flush(Duration::from_secs(10)).unwrap();

    let first = Ingester::builder(&broker, store_s, &keys.key)
        .max_age(600)
        .args(&["--segment-events", "1500"])
        .start();
    wait_sealed(
        store_s,
        &keys.public,
        1500,
        &[1499],
        Duration::from_secs(60),
    );
    first.kill9();

    let second = Ingester::start(&broker, store_s, &keys.key, &[]);
    let report = wait_sealed(
        store_s,
        &keys.public,
        2000,
        &[1999],
        Duration::from_secs(60),
    );
    let assigned = second.events("partition assigned");
    second.terminate();
    assert_eq!(report["streams"][0]["absent_offsets"], 0, "{report:#}");
    assert!(
        assigned.iter().any(|f| f["resume"] == "offset 1500"),
        "{assigned:#?}"
    );
}
