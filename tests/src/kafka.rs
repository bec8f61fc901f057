//! A real Apache Kafka broker on 127.0.0.1, a network gate in front of any service, and
//! producing test messages with a real Kafka client.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::types::{Record, Value};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::cli::repo;
use crate::s3::free_port;

/// Apache Kafka's jars (`libs/`): `$CAIRN_KAFKA`, else where scripts/ensure-kafka.sh installs
/// them.
pub fn kafka_home() -> PathBuf {
    let home = std::env::var_os("CAIRN_KAFKA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cairn/tools/kafka-4.4.0")
        });
    assert!(
        home.join("libs").is_dir(),
        "Apache Kafka not found at {} (scripts/test.sh installs it with scripts/ensure-kafka.sh)",
        home.display()
    );
    home
}

/// A real Apache Kafka broker (single-node KRaft, 4.4.0) on 127.0.0.1, with its log
/// directories in a temporary directory that outlives a `kill`, so it can be restarted with its
/// data. Stopped on drop.
pub struct Broker {
    child: Option<std::process::Child>,
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker with extra `server.properties` lines (`key=value`).
    pub fn start_with(extra: &[&str]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let (port, cport) = (free_port(), free_port());
        let log = dir.path().join("broker.log");
        let props = format!(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{cport}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={}\n\
             offsets.topic.replication.factor=1\noffsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
             transaction.state.log.num.partitions=1\n\
             group.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\n{}\n",
            dir.path().join("data").display(),
            extra.join("\n")
        );
        std::fs::write(dir.path().join("server.properties"), props).unwrap();
        std::fs::write(
            dir.path().join("log4j2.properties"),
            format!(
                "appender.file.type = File\nappender.file.name = file\n\
                 appender.file.fileName = {}\nappender.file.layout.type = PatternLayout\n\
                 appender.file.layout.pattern = [%d] %p %m (%c)%n\n\
                 rootLogger.level = info\nrootLogger.appenderRef.file.ref = file\n",
                log.display()
            ),
        )
        .unwrap();
        let cluster_id = {
            let mut b = [0u8; 16];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
                .unwrap();
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let out = Command::new("java")
            .arg("-cp")
            .arg(kafka_home().join("libs/*"))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                dir.path().join("log4j2.properties").display()
            ))
            .args(["kafka.tools.StorageTool", "format"])
            .arg(format!("--cluster-id={cluster_id}"))
            .arg("-c")
            .arg(dir.path().join("server.properties"))
            .output()
            .expect("java must be installed (Java 17)");
        assert!(
            out.status.success(),
            "formatting Kafka storage: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut broker = Broker {
            child: None,
            addr: format!("127.0.0.1:{port}"),
            dir,
        };
        broker.spawn();
        broker
    }

    /// Starts the JVM on the configured ports and log directories; waits for metadata.
    fn spawn(&mut self) {
        let d = self.dir.path();
        let child = Command::new("java")
            .args([
                "-Xms128m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-Djava.awt.headless=true",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                d.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(kafka_home().join("libs/*"))
            .arg("kafka.Kafka")
            .arg(d.join("server.properties"))
            .stdout(std::fs::File::create(d.join("stdout.log")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start kafka");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()
            .unwrap();
        while probe
            .fetch_metadata(None, Duration::from_millis(500))
            .map_or(true, |m| m.brokers().is_empty())
        {
            assert!(
                Instant::now() < deadline,
                "Kafka did not answer on {} within 60 s; broker log:\n{}",
                self.addr,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of the broker's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `kill -9` of the broker process; its log directories stay.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same ports and log directories.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()
            .expect("admin client")
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(1));
        let results =
            futures::executor::block_on(self.admin().create_topics([&topic], &AdminOptions::new()))
                .expect("create topic");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
        self.wait_partitions(name, partitions as usize);
    }

    /// Deletes `name` and creates it again, empty, with `partitions` partitions (its offsets
    /// start at 0 again).
    pub fn recreate_topic(&self, name: &str, partitions: u32) {
        let results =
            futures::executor::block_on(self.admin().delete_topics(&[name], &AdminOptions::new()))
                .expect("delete topic");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("delete topic {t}: {e}"));
        }
        // Deletion completes asynchronously: creating fails until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(1));
            let results = futures::executor::block_on(
                self.admin().create_topics([&topic], &AdminOptions::new()),
            )
            .expect("create topic");
            match results.into_iter().next().unwrap() {
                Ok(_) => break,
                Err((t, e)) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "create topic {t} again: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        self.wait_partitions(name, partitions as usize);
    }

    /// Grows `name` to `total` partitions.
    pub fn add_partitions(&self, name: &str, total: u32) {
        let np = NewPartitions::new(name, total as usize);
        let results = futures::executor::block_on(
            self.admin().create_partitions([&np], &AdminOptions::new()),
        )
        .expect("create partitions");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("create partitions {t}: {e}"));
        }
        self.wait_partitions(name, total as usize);
    }

    /// DeleteRecords: removes every record of `topic`/`partition` before `before` (the log
    /// start offset becomes `before`), as retention would.
    pub fn delete_records(&self, topic: &str, partition: i32, before: i64) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(before))
            .unwrap();
        let out =
            futures::executor::block_on(self.admin().delete_records(&tpl, &AdminOptions::new()))
                .expect("delete records");
        for e in out.elements() {
            assert!(e.error().is_ok(), "delete records: {:?}", e.error());
        }
    }

    /// (log start offset, high watermark) of `topic`/`partition`.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()
            .unwrap();
        c.fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap()
    }

    fn wait_partitions(&self, name: &str, n: usize) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let md = c
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .unwrap();
            let ready = md.topics().first().is_some_and(|t| {
                t.partitions().len() == n && t.partitions().iter().all(|p| p.leader() >= 0)
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} never had {n} partitions"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP forwarder on 127.0.0.1 in front of a real service, to cut the network to it: while
/// closed, open connections are shut down and new ones are closed at once. The service itself
/// keeps running with its data (moto_server keeps everything in memory and loses it when
/// stopped, so an outage is simulated on the wire instead).
pub struct Gate {
    pub addr: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// While set, bytes are accepted from both sides but not passed on: requests in flight
    /// hang (a slow store) instead of failing.
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Gate {
    pub fn start(upstream: &str) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (o, h, c, up) = (
            open.clone(),
            held.clone(),
            conns.clone(),
            upstream.to_string(),
        );
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
                    let held = h.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            while held.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
                tracked.push(client);
                tracked.push(server);
            }
        });
        Gate {
            addr,
            open,
            held,
            conns,
        }
    }

    /// Stops passing bytes on (both ways) until [`Gate::release`]: requests hang, nothing fails.
    pub fn hold(&self) {
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
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

/// Every record of `topic` from the beginning, once at least `expect` have arrived (or 30 s
/// passed): (partition, offset, key, payload as JSON), in partition and offset order.
pub fn records(
    broker: &Broker,
    topic: &str,
    expect: usize,
) -> Vec<(i32, i64, String, serde_json::Value)> {
    raw_records(broker, topic, expect)
        .into_iter()
        .map(|(p, o, k, v)| (p, o, k, serde_json::from_slice(&v).expect("a JSON record")))
        .collect()
}

/// [`records`] with the payloads as bytes.
pub fn raw_records(
    broker: &Broker,
    topic: &str,
    expect: usize,
) -> Vec<(i32, i64, String, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let decode = |m: &rdkafka::message::BorrowedMessage<'_>| {
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let payload = m.payload().unwrap_or_default().to_vec();
        (m.partition(), m.offset(), key, payload)
    };
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(decode(&m));
        }
    }
    // Anything beyond `expect` that is already there.
    while let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        out.push(decode(&m));
    }
    out.sort_by_key(|r| (r.0, r.1));
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

/// What a [`Load`] producer did: ids handed to the client and ids whose delivery Kafka
/// acknowledged (acks=all) or failed.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub sent: u64,
    pub acked: std::collections::BTreeSet<u64>,
    pub failed: Vec<(u64, String)>,
}

struct Acks(std::sync::Arc<std::sync::Mutex<LoadResult>>);

impl rdkafka::ClientContext for Acks {}

impl rdkafka::producer::ProducerContext for Acks {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, id: Box<u64>) {
        let mut r = self.0.lock().unwrap();
        match result {
            Ok(_) => {
                r.acked.insert(*id);
            }
            Err((e, _)) => r.failed.push((*id, e.to_string())),
        }
    }
}

/// A producer running in the background as applications do (idempotent, acks=all, retrying
/// for up to two minutes): `json_event(i)` for i = 0, 1, … to partition `i % partitions` of
/// `audit`, `per_sec` a second, each acknowledgement recorded.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    partitions: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: std::thread::JoinHandle<u64>,
    result: std::sync::Arc<std::sync::Mutex<LoadResult>>,
}

impl Load {
    pub fn start(broker: &Broker, partitions: u64, per_sec: u64) -> Load {
        let result = std::sync::Arc::new(std::sync::Mutex::new(LoadResult::default()));
        let producer: ThreadedProducer<Acks> = ClientConfig::new()
            .set("bootstrap.servers", &broker.addr)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create_with_context(Acks(result.clone()))
            .expect("producer");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let partitions = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(partitions));
        let count = partitions.clone();
        let thread = std::thread::spawn(move || {
            use std::sync::atomic::Ordering::Relaxed;
            let pause = Duration::from_micros(1_000_000 / per_sec.max(1));
            let mut i = 0u64;
            while !flag.load(Relaxed) {
                let payload = json_event(i, "t");
                let partition = (i % count.load(Relaxed)) as i32;
                loop {
                    let record = BaseRecord::with_opaque_to("audit", Box::new(i))
                        .partition(partition)
                        .payload(payload.as_bytes())
                        .key("");
                    match producer.send::<str, [u8]>(record) {
                        Ok(()) => break,
                        // A partition just added, not yet in this client's metadata.
                        Err((e, _))
                            if e.rdkafka_error_code()
                                == Some(rdkafka::types::RDKafkaErrorCode::UnknownPartition) =>
                        {
                            std::thread::sleep(Duration::from_millis(100))
                        }
                        Err((e, _)) => panic!("enqueue {i}: {e}"),
                    }
                }
                i += 1;
                std::thread::sleep(pause);
            }
            producer
                .flush(Duration::from_secs(180))
                .expect("every message delivered or failed");
            i
        });
        Load {
            stop,
            partitions,
            thread,
            result,
        }
    }

    /// From now on spreads records over `n` partitions (after [`Broker::add_partitions`]).
    pub fn set_partitions(&self, n: u64) {
        self.partitions
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ids acknowledged so far.
    pub fn acked(&self) -> usize {
        self.result.lock().unwrap().acked.len()
    }

    /// Stops producing and waits for every outstanding delivery report.
    pub fn stop(self) -> LoadResult {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = self.thread.join().expect("producer thread");
        let mut r = std::mem::take(&mut *self.result.lock().unwrap());
        r.sent = sent;
        r
    }
}
