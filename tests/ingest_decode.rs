//! `cairn ingest` decoding against a real Kafka-protocol broker: JSON, Confluent-framed Avro,
//! Avro single-object and garbage across partitions, the dead-letter topic, metrics.

use cairn_tests::*;
use rdkafka::producer::Producer;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn valid_and_malformed_messages_across_three_partitions() {
    let (broker, _tmp, keys, store) = setup(3);
    let store_s = store.to_str().unwrap();

    let p = producer(&broker);
    let schema = schema();
    let fp = schema.fingerprint::<apache_avro::rabin::Rabin>().bytes;
    let sample = std::fs::read_to_string(data("sample.jsonl")).unwrap();
    let mut counts = [0i64; 3];
    let mut valid_ids = BTreeSet::new();
    let mut bad = 0;
    let mut put = |partition: usize, payload: &[u8]| {
        send(&p, "audit", partition as i32, payload);
        counts[partition] += 1;
    };
    for (i, line) in sample.lines().enumerate() {
        put(i % 3, line.as_bytes());
        if i % 7 == 6 {
            bad += 1;
        } else {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            valid_ids.insert(v["event_id"].as_str().unwrap().to_string());
        }
    }
    for i in 0..6u64 {
        let mut msg = vec![0u8, 0, 0, 0, 1]; // Confluent framing, schema id 1
        msg.extend(avro_event(&schema, 1000 + i));
        put(i as usize % 3, &msg);
        valid_ids.insert(format!("00000000-0000-4000-8000-{:012}", 1000 + i));
    }
    for i in 0..2u64 {
        let mut msg = vec![0xC3, 0x01];
        msg.extend(&fp);
        msg.extend(avro_event(&schema, 2000 + i));
        put(i as usize, &msg);
        valid_ids.insert(format!("00000000-0000-4000-8000-{:012}", 2000 + i));
    }
    let mut unknown_id = vec![0u8, 0, 0, 0, 99];
    unknown_id.extend(avro_event(&schema, 3000));
    put(2, &unknown_id);
    put(1, &[0xff, 0xfe, 0x00, 0x01]);
    bad += 2;
    p.flush(Duration::from_secs(10)).unwrap();
    let valid = valid_ids.len() as u64;
    assert_eq!((valid, bad), (51, 9));

    let metrics = format!("127.0.0.1:{}", free_port());
    let ingest = Ingester::start(
        &broker,
        store_s,
        &keys.key,
        &[
            "--segment-events",
            "7",
            "--metrics-addr",
            &metrics,
            "--kafka",
            "statistics.interval.ms=200",
        ],
    );
    let ends: Vec<i64> = counts.iter().map(|c| c - 1).collect();
    let report = wait_sealed(store_s, &keys.public, valid, &ends, Duration::from_secs(60));
    let segments: u64 = report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["segments"].as_u64().unwrap())
        .sum();
    let mut expected = vec![
        "cairn_events_sealed_total{topic=\"audit\"} 51".to_string(),
        "cairn_dead_lettered_total{topic=\"audit\"} 9".to_string(),
        format!("cairn_segments_sealed_total{{topic=\"audit\"}} {segments}"),
        format!("cairn_seal_latency_seconds_count {segments}"),
        format!("cairn_segment_size_bytes_count {segments}"),
        "cairn_store_failing 0".to_string(),
    ];
    for (partition, count) in counts.iter().enumerate() {
        expected.push(format!(
            "cairn_partition_sealed_offset{{topic=\"audit\",partition=\"{partition}\"}} {count}"
        ));
        expected.push(format!(
            "cairn_consumer_lag{{topic=\"audit\",partition=\"{partition}\"}} 0"
        ));
        expected.push(format!(
            "cairn_partition_high_watermark{{topic=\"audit\",partition=\"{partition}\"}} {count}"
        ));
    }
    wait_metrics(&metrics, &expected, Duration::from_secs(20));
    let stdout = ingest.terminate();
    assert!(stdout.contains("ingest stopped"), "{stdout}");

    assert_eq!(report["intact"], true, "{report:#}");
    let rejected: u64 = report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rejected_offsets"].as_u64().unwrap())
        .sum();
    assert_eq!(
        rejected, bad as u64,
        "every bad message is accounted for: {report:#}"
    );
    for s in report["streams"].as_array().unwrap() {
        assert_eq!(s["first_offset"], 0, "{s}");
    }
    let ids = sealed_event_ids(&store);
    assert_eq!(ids.len() as u64, valid, "no duplicates");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), valid_ids);

    let dlq = dead_letters(&broker, bad);
    assert_eq!(dlq.len(), bad, "{dlq:#?}");
    assert!(
        dlq.iter()
            .all(|(t, _, _, reason)| t == "audit" && !reason.is_empty())
    );
    let reasons: Vec<&str> = dlq.iter().map(|d| d.3.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("unknown schema id 99")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("missing field `tenant`")),
        "{reasons:?}"
    );
}
