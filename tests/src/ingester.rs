//! `cairn ingest` as a child process the tests start, watch (structured log events, metrics)
//! and stop; waiting for what it sealed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{Keys, cairn, keygen, repo};
use crate::kafka::Broker;

pub struct Ingester {
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

/// How to start `cairn ingest` against a test broker: topic `audit`, group `cairn-test`,
/// dead-letter topic `audit.dlq`, segments sealed after 1 s, JSON logs, fast failover.
pub struct IngesterBuilder<'a> {
    broker: &'a Broker,
    store: String,
    key: String,
    max_age_secs: u64,
    topics: String,
    dlq: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl IngesterBuilder<'_> {
    /// `--segment-max-age-secs`.
    pub fn max_age(mut self, secs: u64) -> Self {
        self.max_age_secs = secs;
        self
    }

    /// Other topics (comma-separated) than `audit`.
    pub fn topics(mut self, topics: &str) -> Self {
        self.topics = topics.to_string();
        self
    }

    /// Another dead-letter topic.
    pub fn dlq(mut self, topic: &str) -> Self {
        self.dlq = topic.to_string();
        self
    }

    /// More command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Environment for the process (an S3 endpoint).
    pub fn env(mut self, env: &[(&str, String)]) -> Self {
        self.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self
    }

    pub fn start(self) -> Ingester {
        let mut child = cairn()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["ingest", "--brokers", &self.broker.addr])
            .args(["--topics", &self.topics, "--group", "cairn-test"])
            .args(["--store", &self.store, "--key", &self.key])
            .args(["--dlq-topic", &self.dlq])
            .args(["--schema-dir", repo().join("schemas").to_str().unwrap()])
            .args(["--segment-max-age-secs", &self.max_age_secs.to_string()])
            // Structured events to wait on (stable messages and fields), not log prose.
            .args(["--log-format", "json"])
            // Fail over from a killed member in seconds, not the default 45 s.
            .args(["--kafka", "session.timeout.ms=6000"])
            .args(["--kafka", "heartbeat.interval.ms=1000"])
            .args(&self.args)
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
}

impl Ingester {
    pub fn builder<'a>(broker: &'a Broker, store: &str, key: &str) -> IngesterBuilder<'a> {
        IngesterBuilder {
            broker,
            store: store.to_string(),
            key: key.to_string(),
            max_age_secs: 1,
            topics: "audit".into(),
            dlq: "audit.dlq".into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The defaults plus `extra` arguments.
    pub fn start(broker: &Broker, store: &str, key: &str, extra: &[&str]) -> Ingester {
        Ingester::builder(broker, store, key).args(extra).start()
    }

    /// Process id, for signals.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to exit on its own (a permanent error) and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ingest did not stop within {timeout:?}: {:#?}",
                self.saw()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the group gave this instance partitions.
    pub fn wait_assigned(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.assigned.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(
                Instant::now() < deadline,
                "no partitions assigned within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn saw(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The fields of every logged event with this message.
    pub fn events(&self, message: &str) -> Vec<serde_json::Value> {
        self.saw()
            .iter()
            .filter_map(|l| event(l, message))
            .collect()
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then expect a clean exit 0 and return stdout.
    pub fn terminate(self) -> String {
        let (code, stdout) = self.stop();
        assert_eq!(code, Some(0), "ingest exit after SIGTERM");
        stdout
    }

    /// SIGTERM, then (exit code, stdout). Ingest must exit within 60 s, whatever state the
    /// broker is in (regression: with the broker down, leaving the group hung forever).
    pub fn stop(mut self) -> (Option<i32>, String) {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "ingest did not exit within 60 s of SIGTERM: {:#?}",
                    self.saw()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        }
        (status.code(), stdout)
    }
}

/// The fields of a `--log-format json` line, if it is the event `message`.
pub fn event(line: &str, message: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["fields"]["message"] == message).then(|| v["fields"].clone())
}

pub fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
}

/// Polls `cairn verify --json` until the store holds `events` events with every partition's
/// offsets covered up to `ends[p]`.
pub fn wait_sealed(
    store: &str,
    public: &str,
    events: u64,
    ends: &[i64],
    timeout: Duration,
) -> serde_json::Value {
    wait_sealed_env(store, public, events, ends, timeout, &[])
}

/// [`wait_sealed`] with extra environment for `cairn verify` (an S3 endpoint).
pub fn wait_sealed_env(
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
pub fn sealed_event_ids(store: &Path) -> Vec<String> {
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

/// A broker with an `audit` topic of `partitions` partitions and `audit.dlq`, keys and a store
/// path (inside the returned temporary directory).
pub fn setup(partitions: u32) -> (Broker, tempfile::TempDir, Keys, std::path::PathBuf) {
    let broker = Broker::start();
    broker.create_topic("audit", partitions);
    broker.create_topic("audit.dlq", 1);
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    (broker, tmp, keys, store)
}

/// Polls `/metrics` until every line in `expected` is present; returns the last body.
pub fn wait_metrics(addr: &str, expected: &[String], timeout: Duration) -> String {
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

pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Highest offset of `audit/0` covered by a manifest in the local `store`, read from the object
/// names (for the outage tests, where the store is not where ingest thinks it is).
pub fn sealed_through(store: &Path) -> i64 {
    let dir = store.join("v1/streams/audit/0");
    if !dir.is_dir() {
        return -1;
    }
    crate::cli::objects(store)
        .iter()
        .filter_map(|o| cairn_format::names::parse_object_name(o))
        .filter(|n| n.kind == cairn_format::ObjectKind::Manifest)
        .map(|n| n.last)
        .max()
        .unwrap_or(-1)
}
