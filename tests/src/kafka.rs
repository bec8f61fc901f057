//! A real Kafka-protocol broker on 127.0.0.1, a network gate in front of any service, and
//! producing test messages with a real Kafka client.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::types::{Record, Value};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::cli::repo;
use crate::s3::{S3Server, free_port};

/// The tansu binary: `$CAIRN_TANSU`, else where scripts/ensure-tansu.sh installs it.
pub fn tansu_bin() -> PathBuf {
    let bin = std::env::var_os("CAIRN_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cairn/tools/bin/tansu")
        });
    assert!(
        bin.exists(),
        "tansu not found at {} (scripts/test.sh installs it with scripts/ensure-tansu.sh)",
        bin.display()
    );
    bin
}

/// A real Kafka-protocol broker (tansu) on 127.0.0.1, stopped on drop. In-memory storage, or
/// S3 storage on a moto server for tests that restart the broker.
pub struct Broker {
    child: std::process::Child,
    pub addr: String,
    url: String,
    storage: String,
    env: Vec<(&'static str, String)>,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::spawn(free_port(), "memory://tansu/".into(), Vec::new())
    }

    /// tansu keeping its topics, records and group offsets in `bucket` on `s3` (which must
    /// outlive it), so that it can be restarted with its data.
    pub fn start_on_s3(s3: &S3Server, bucket: &str) -> Broker {
        s3.admin(&["create-bucket", bucket]);
        let env = vec![
            ("AWS_ENDPOINT", s3.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ];
        Broker::spawn(free_port(), format!("s3://{bucket}/"), env)
    }

    fn spawn(port: u16, storage: String, env: Vec<(&'static str, String)>) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &storage])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not start on {url}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Broker {
            child,
            addr: format!("127.0.0.1:{port}"),
            url,
            storage,
            env,
        }
    }

    /// `kill -9` of the broker process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        let fresh = Broker::spawn(port, self.storage.clone(), std::mem::take(&mut self.env));
        *self = fresh;
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &self.url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP forwarder on 127.0.0.1 in front of a real service, to cut the network to it: while
/// closed, open connections are shut down and new ones are closed at once. The service itself
/// keeps running with its data (moto_server and tansu's memory engine lose everything when
/// stopped, so an outage is simulated on the wire instead).
pub struct Gate {
    pub addr: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Gate {
    pub fn start(upstream: &str) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (o, c, up) = (open.clone(), conns.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let mut tracked = c.lock().unwrap();
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = std::net::TcpStream::connect(&up) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
                tracked.push(client);
                tracked.push(server);
            }
        });
        Gate { addr, open, conns }
    }

    /// Cuts every connection and refuses new ones until [`Gate::open`].
    pub fn close(&self) {
        let mut conns = self.conns.lock().unwrap();
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in conns.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn producer(broker: &Broker) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

pub fn send(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    payload: &[u8],
) {
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
pub fn produce_json(
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

pub fn json_event(i: u64, tenant: &str) -> String {
    format!(
        r#"{{"event_id":"00000000-0000-4000-8000-{i:012}","occurred_at":"2026-11-26T00:00:00.{:06}Z","tenant":"{tenant}","actor":{{"id":"u{i}","type":"user"}},"action":"read","resource":{{"type":"doc","id":"d{i}"}},"outcome":"success","source":"app","sensitivity":"internal","details":{{"n":"{i}"}}}}"#,
        i % 1_000_000
    )
}

pub fn avro_event(schema: &Schema, i: u64) -> Vec<u8> {
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

pub fn schema() -> Schema {
    Schema::parse_str(&std::fs::read_to_string(repo().join("schemas/audit_event.avsc")).unwrap())
        .unwrap()
}

pub fn dead_letters(broker: &Broker, expect: usize) -> Vec<(String, i32, i64, String)> {
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

/// Committed group offset of `audit/0` (confluent-kafka, an independent client).
pub fn committed_offset(broker: &Broker, group: &str) -> i64 {
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
