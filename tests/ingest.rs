//! `cairn ingest` against a real Kafka-protocol broker (tansu, memory storage, 127.0.0.1),
//! with real Kafka clients (rdkafka) producing JSON, Confluent-framed Avro, Avro single-object
//! and garbage, and `cairn verify` plus DuckDB checking the result.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::types::{Record, Value};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn producer(broker: &Broker) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, partition: i32, payload: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .partition(partition)
        .payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((e, r)) => {
                eprintln!("produce: {e}; retrying");
                std::thread::sleep(Duration::from_millis(50));
                record = r;
            }
        }
    }
}

/// Sends `json_event(i, "t")` for each `i` in `range` to partition `i % partitions` of
/// `audit`, then waits for every delivery.
fn produce_json(
    p: &ThreadedProducer<DefaultProducerContext>,
    range: std::ops::Range<u64>,
    partitions: u64,
) {
    for i in range {
        send(
            p,
            "audit",
            (i % partitions) as i32,
            json_event(i, "t").as_bytes(),
        );
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

fn json_event(i: u64, tenant: &str) -> String {
    format!(
        r#"{{"event_id":"00000000-0000-4000-8000-{i:012}","occurred_at":"2026-11-26T00:00:00.{:06}Z","tenant":"{tenant}","actor":{{"id":"u{i}","type":"user"}},"action":"read","resource":{{"type":"doc","id":"d{i}"}},"outcome":"success","source":"app","sensitivity":"internal","details":{{"n":"{i}"}}}}"#,
        i % 1_000_000
    )
}

fn avro_event(schema: &Schema, i: u64) -> Vec<u8> {
    let mut r = Record::new(schema).unwrap();
    r.put(
        "event_id",
        Value::Uuid(format!("00000000-0000-4000-8000-{i:012}").parse().unwrap()),
    );
    r.put(
        "occurred_at",
        Value::TimestampMicros(1_764_115_200_000_000 + i as i64),
    );
    r.put("tenant", "avro-tenant");
    r.put(
        "actor",
        Value::Record(vec![
            ("id".into(), Value::String(format!("svc{i}"))),
            ("type".into(), Value::String("service".into())),
            ("ip".into(), Value::Union(0, Box::new(Value::Null))),
        ]),
    );
    r.put("action", "write");
    r.put(
        "resource",
        Value::Record(vec![
            ("type".into(), Value::String("doc".into())),
            ("id".into(), Value::String(format!("d{i}"))),
        ]),
    );
    r.put("outcome", Value::Enum(0, "success".into()));
    r.put("source", "avro-app");
    r.put("sensitivity", Value::Enum(0, "public".into()));
    r.put("details", Value::Union(0, Box::new(Value::Null)));
    apache_avro::to_avro_datum(schema, r).unwrap()
}

fn schema() -> Schema {
    Schema::parse_str(&std::fs::read_to_string(repo().join("schemas/audit_event.avsc")).unwrap())
        .unwrap()
}

struct Ingester {
    child: Child,
    assigned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Ingester {
    fn drop(&mut self) {
        // Never leave an ingest process behind when a test fails.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ingester {
    fn start(broker: &Broker, store: &str, key: &str, extra: &[&str]) -> Ingester {
        Ingester::start_aged(broker, store, key, 1, extra)
    }

    fn start_aged(
        broker: &Broker,
        store: &str,
        key: &str,
        max_age_secs: u64,
        extra: &[&str],
    ) -> Ingester {
        Ingester::spawn(broker, store, key, max_age_secs, extra, &[])
    }

    fn spawn(
        broker: &Broker,
        store: &str,
        key: &str,
        max_age_secs: u64,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Ingester {
        let mut child = cairn()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args([
                "ingest",
                "--brokers",
                &broker.addr,
                "--topics",
                "audit",
                "--group",
                "cairn-test",
            ])
            .args(["--store", store, "--key", key])
            .args(if extra.contains(&"--dlq-topic") {
                &[][..]
            } else {
                &["--dlq-topic", "audit.dlq"][..]
            })
            .args(["--schema-dir", repo().join("schemas").to_str().unwrap()])
            .args(["--segment-max-age-secs", &max_age_secs.to_string()])
            // Structured events to wait on (stable messages and fields), not log prose.
            .args(["--log-format", "json"])
            // Fail over from a killed member in seconds, not the default 45 s.
            .args([
                "--kafka",
                "session.timeout.ms=6000",
                "--kafka",
                "heartbeat.interval.ms=1000",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let assigned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stderr = child.stderr.take().unwrap();
        let flag = assigned.clone();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if event(&line, "partition assigned").is_some_and(|f| f["topic"] == "audit") {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                eprintln!("[ingest] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        Ingester {
            child,
            assigned,
            log,
        }
    }

    /// Waits until the group gave this instance partitions.
    fn wait_assigned(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.assigned.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(
                Instant::now() < deadline,
                "no partitions assigned within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn saw(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The fields of every logged event with this message.
    fn events(&self, message: &str) -> Vec<serde_json::Value> {
        self.saw()
            .iter()
            .filter_map(|l| event(l, message))
            .collect()
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then expect a clean exit 0 and return stdout.
    fn terminate(self) -> String {
        let (code, stdout) = self.stop();
        assert_eq!(code, Some(0), "ingest exit after SIGTERM");
        stdout
    }

    /// SIGTERM, then (exit code, stdout).
    fn stop(mut self) -> (Option<i32>, String) {
        unsafe_kill(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        }
        (status.code(), stdout)
    }
}

/// The fields of a `--log-format json` line, if it is the event `message`.
fn event(line: &str, message: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["fields"]["message"] == message).then(|| v["fields"].clone())
}

fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
}

/// Polls `cairn verify --json` until the store holds `events` events with every partition's
/// offsets covered up to `ends[p]`.
fn wait_sealed(
    store: &str,
    public: &str,
    events: u64,
    ends: &[i64],
    timeout: Duration,
) -> serde_json::Value {
    wait_sealed_env(store, public, events, ends, timeout, &[])
}

/// [`wait_sealed`] with extra environment for `cairn verify` (an S3 endpoint).
fn wait_sealed_env(
    store: &str,
    public: &str,
    events: u64,
    ends: &[i64],
    timeout: Duration,
    env: &[(&str, String)],
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let out = cairn()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["verify", "--store", store, "--pubkey", public, "--json"])
            .output()
            .unwrap();
        if let Ok(report) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            let streams = report["streams"].as_array().cloned().unwrap_or_default();
            let covered = ends.iter().enumerate().all(|(p, end)| {
                streams.iter().any(|s| {
                    s["stream"] == format!("audit/{p}") && s["last_offset"].as_i64() == Some(*end)
                })
            });
            if covered && report["events_checked"] == events {
                return report;
            }
            if Instant::now() > deadline {
                panic!("not sealed in time: {report:#}");
            }
        } else if Instant::now() > deadline {
            panic!("verify: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Event ids in the store, via DuckDB (an independent reader), with duplicates kept.
fn sealed_event_ids(store: &Path) -> Vec<String> {
    let glob = format!("{}/v1/streams/audit/*/*.parquet", store.display());
    let out = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import duckdb\nfor (e,) in duckdb.sql(\"SELECT event_id FROM read_parquet('{glob}') ORDER BY 1\").fetchall(): print(e)"
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn dead_letters(broker: &Broker, expect: usize) -> Vec<(String, i32, i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["audit.dlq"]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let h = m.headers().expect("dead letters carry headers");
            let get = |k: &str| {
                h.iter()
                    .find(|x| x.key == k)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            out.push((
                get("cairn.original.topic"),
                get("cairn.original.partition").parse().unwrap(),
                get("cairn.original.offset").parse().unwrap(),
                get("cairn.reason"),
            ));
        }
    }
    out.sort();
    out
}

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

    let metrics = free_addr();
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

/// A broker with an `audit` topic of `partitions` partitions and `audit.dlq`, keys and a store
/// path (inside the returned temporary directory).
fn setup(partitions: u32) -> (Broker, tempfile::TempDir, Keys, std::path::PathBuf) {
    let broker = Broker::start();
    broker.create_topic("audit", partitions);
    broker.create_topic("audit.dlq", 1);
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    (broker, tmp, keys, store)
}

/// tansu answers a fetch in the middle of a record batch with the *next* batch. Resuming there
/// must re-read instead of recording the rest of the batch as absent (a silent loss).
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
    let first = Ingester::start_aged(&broker, store_s, &keys.key, 600, &["--segment-events", "7"]);
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

/// The same with a record batch larger than the re-read window: the consumer must keep
/// stepping back (the broker holds records past the resume offset but serves none).
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

    let first = Ingester::start_aged(
        &broker,
        store_s,
        &keys.key,
        600,
        &["--segment-events", "1500"],
    );
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
    let nudged = second.events("nothing received while resuming; re-reading from earlier");
    second.terminate();
    assert_eq!(report["streams"][0]["absent_offsets"], 0, "{report:#}");
    assert!(nudged.iter().any(|f| f["resume"] == 1500), "{nudged:#?}");
}

/// A loopback address with a free port.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Polls `/metrics` until every line in `expected` is present; returns the last body.
fn wait_metrics(addr: &str, expected: &[String], timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let body = http_get(addr, "/metrics");
        let missing: Vec<&String> = expected
            .iter()
            .filter(|e| !body.lines().any(|l| l == e.as_str()))
            .collect();
        if missing.is_empty() {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics never showed {missing:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

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
    let metrics = free_addr();
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

/// Committed group offset of `audit/0` (confluent-kafka, an independent client).
fn committed_offset(broker: &Broker, group: &str) -> i64 {
    let script = format!(
        "from confluent_kafka import Consumer, TopicPartition\nc = Consumer({{'bootstrap.servers': '{}', 'group.id': '{group}'}})\nprint(c.committed([TopicPartition('audit', 0)], timeout=10)[0].offset)",
        broker.addr
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Highest offset covered by a manifest in `store` (read directly, for the outage test).
fn sealed_through(store: &Path) -> i64 {
    let dir = store.join("v1/streams/audit/0");
    std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let range = name.strip_suffix(".manifest")?;
                range.split_once('-')?.1.parse::<i64>().ok()
            })
            .max()
            .unwrap_or(-1)
        })
        .unwrap_or(-1)
}

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
    let metrics = free_addr();
    let p = producer(&broker);
    produce_json(&p, 0..200, 1);
    let ingest = Ingester::spawn(
        &broker,
        store,
        &keys.key,
        1,
        &["--segment-events", "20", "--metrics-addr", &metrics],
        &env,
    );
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

/// Regression: a failed final seal at shutdown used to exit 0.
#[test]
fn a_failed_seal_at_shutdown_exits_nonzero_and_the_next_start_seals_everything() {
    let (broker, _tmp, keys, store) = setup(1);
    let store_s = store.to_str().unwrap();
    let metrics = free_addr();
    let p = producer(&broker);
    produce_json(&p, 0..50, 1);
    // Nothing is cut before shutdown: 50 events stay buffered.
    let ingest = Ingester::start_aged(
        &broker,
        store_s,
        &keys.key,
        600,
        &["--metrics-addr", &metrics],
    );
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

#[test]
fn a_broker_restart_mid_stream_loses_and_duplicates_nothing() {
    let s3 = S3Server::start();
    let mut broker = Broker::start_on_s3(&s3, "tansu");
    broker.create_topic("audit", 3);
    broker.create_topic("audit.dlq", 1);
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    let store_s = store.to_str().unwrap();
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let produce = |range| produce_json(&p, range, 3);
    produce(0..150);
    let metrics = free_addr();
    let ingest = Ingester::start_aged(
        &broker,
        store_s,
        &keys.key,
        3,
        &["--segment-events", "50", "--metrics-addr", &metrics],
    );
    wait_sealed(
        store_s,
        &keys.public,
        150,
        &[49, 49, 49],
        Duration::from_secs(60),
    );

    // 30 more are acknowledged and held unsealed (segments cut after 50 events or 3 s) when
    // the broker dies. It comes back on the same storage while cairn keeps running. (Records
    // are not produced *while* it is killed: tansu 0.6 can lose an acknowledged write then,
    // which cairn records as absent offsets, but this test is about cairn losing nothing.)
    produce(150..180);
    std::thread::sleep(Duration::from_millis(300));
    broker.kill();
    wait_metrics(
        &metrics,
        &["cairn_kafka_brokers_down 1".to_string()],
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    produce(180..600);

    let report = wait_sealed(
        store_s,
        &keys.public,
        600,
        &[199, 199, 199],
        Duration::from_secs(120),
    );
    wait_metrics(
        &metrics,
        &["cairn_kafka_brokers_down 0".to_string()],
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_secs(1));
    ingest.terminate();
    assert_eq!(report["intact"], true, "{report:#}");
    let ids = sealed_event_ids(&store);
    assert_eq!(ids.len(), 600, "no duplicates");
    let expected: BTreeSet<String> = (0..600u64)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    assert!(
        report["streams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["absent_offsets"] == 0),
        "no offsets recorded as absent: {report:#}"
    );
    assert_eq!(committed_offset(&broker, "cairn-test"), 200);
}

/// An instance blocked on an unavailable dead-letter topic for longer than
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
    let a = Ingester::start_aged(
        &broker,
        store_s,
        &keys.key,
        600,
        &[
            "--dlq-topic",
            "audit.dlq.late",
            "--segment-events",
            "10",
            "--kafka",
            poll,
        ],
    );
    a.wait_assigned(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sealed_through(&store), 9, "A is blocked at offset 20");

    // B (segments of 7) takes the partition over once A is out of the group.
    let b = Ingester::start_aged(
        &broker,
        store_s,
        &keys.key,
        1,
        &["--segment-events", "7", "--kafka", poll],
    );
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = ingest.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ingest kept retrying: {:#?}",
            ingest.saw()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
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
