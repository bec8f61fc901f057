//! `cairn ingest` with a real schema registry: Apicurio Registry 3.0.9 serving the Confluent
//! API, messages produced by the Confluent Python client's `AvroSerializer` through it.

use cairn_tests::*;
use rdkafka::producer::Producer;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A config file with no `[schema_ids]` (so every id comes from the registry) and the registry.
fn config(dir: &Path, url: &str, username: Option<&str>) -> PathBuf {
    let path = dir.join("cairn.toml");
    let user = username.map_or(String::new(), |u| format!("username = \"{u}\"\n"));
    std::fs::write(
        &path,
        format!("schema_ids = {{}}\n\n[schema_registry]\nurl = \"{url}\"\n{user}"),
    )
    .unwrap();
    path
}

/// Two writer schemas (the reader schema, and an evolved one with an extra field) registered by
/// a real Confluent client, each fetched once and cached; a message framed with an id the
/// registry never issued is dead-lettered with that reason; wrong credentials stop ingest
/// (exit 2) without dead-lettering anything.
#[test]
fn messages_framed_through_a_real_registry_are_sealed() {
    let (broker, tmp, keys, store) = setup(2);
    let store_s = store.to_str().unwrap();
    let reg = Registry::start(Some("cairn:s3cret"));
    let v1 = reg.produce(&broker.addr, 0, 30, 2, false);
    let v2 = reg.produce(&broker.addr, 30, 30, 2, true);
    assert_ne!(v1, v2, "the evolved schema has its own id");
    let p = producer(&broker);
    let mut unknown = vec![0u8];
    unknown.extend(4242u32.to_be_bytes());
    unknown.extend(b"\x02");
    send(&p, "audit", 0, &unknown);
    p.flush(Duration::from_secs(10)).unwrap();
    let cfg = config(tmp.path(), &reg.url(), Some("cairn"));
    let cfg_s = cfg.to_str().unwrap();

    let mut refused = Ingester::builder(&broker, store_s, &keys.key)
        .args(&["--config", cfg_s])
        .env(&[("CAIRN_SCHEMA_REGISTRY_PASSWORD", "wrong".to_string())])
        .start();
    let status = refused.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(2), "{:#?}", refused.saw());
    let saw = refused.saw().join("\n");
    assert!(saw.contains("refused the request (HTTP 401"), "{saw}");
    assert_eq!(
        broker.watermarks("audit.dlq", 0).1,
        0,
        "nothing dead-lettered"
    );

    let ingest = Ingester::builder(&broker, store_s, &keys.key)
        .args(&["--config", cfg_s])
        .env(&[("CAIRN_SCHEMA_REGISTRY_PASSWORD", "s3cret".to_string())])
        .start();
    let ends: Vec<i64> = (0..2)
        .map(|p| broker.watermarks("audit", p).1 - 1)
        .collect();
    let report = wait_sealed(store_s, &keys.public, 60, &ends, Duration::from_secs(60));
    assert_eq!(report["intact"], true, "{report:#}");
    let dl = dead_letters(&broker, 1);
    assert!(
        dl[0].3.starts_with(&format!(
            "schema id 4242 is unknown to the schema registry at {}",
            reg.url()
        )),
        "{dl:?}"
    );
    let fetched = ingest.events("writer schema fetched from the schema registry");
    ingest.terminate();
    let ids: Vec<i64> = fetched
        .iter()
        .filter_map(|f| f["schema_id"].as_i64())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "each id fetched once, then cached: {fetched:?}"
    );
    let expected: Vec<String> = (0..60u64)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(sealed_event_ids(&store), expected);
}

/// The registry cannot be reached (the network to it cut): consumption pauses and rewinds, and
/// nothing is dead-lettered; once it is back every message is sealed.
#[test]
fn an_unreachable_registry_pauses_ingest_and_dead_letters_nothing() {
    let (broker, tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let reg = Registry::start(None);
    reg.produce(&broker.addr, 0, 20, 1, false);
    let gate = Gate::start(&reg.addr);
    gate.close();
    let cfg = config(
        tmp.path(),
        &format!("http://{}/apis/ccompat/v7", gate.addr),
        None,
    );
    let metrics = format!("127.0.0.1:{}", free_port());
    let ingest = Ingester::builder(&broker, store_s, &keys.key)
        .args(&[
            "--config",
            cfg.to_str().unwrap(),
            "--metrics-addr",
            &metrics,
        ])
        .start();
    let paused = "the schema registry is unavailable; pausing this partition; rewinding to the last manifest";
    let deadline = Instant::now() + Duration::from_secs(60);
    while ingest.events(paused).len() < 2 {
        assert!(Instant::now() < deadline, "{:#?}", ingest.saw());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        broker.watermarks("audit.dlq", 0).1,
        0,
        "nothing dead-lettered"
    );
    // Only the store's origin (created when the partition's stream opened), no segment.
    assert!(
        !store.exists()
            || objects(&store)
                .iter()
                .all(|o| !o.starts_with("v1/streams/")),
        "nothing sealed"
    );
    let body = http_get(&metrics, "/metrics");
    assert!(
        body.lines()
            .any(|l| l.starts_with("cairn_schema_registry_errors_total ") && !l.ends_with(" 0")),
        "{body}"
    );
    gate.open();
    let report = wait_sealed(store_s, &keys.public, 20, &[19], Duration::from_secs(60));
    ingest.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
    assert_eq!(
        broker.watermarks("audit.dlq", 0).1,
        0,
        "nothing dead-lettered"
    );
}
