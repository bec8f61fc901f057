//! Helpers shared by the integration tests: run the real `cairn` binary, read its reports.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// Runs `cairn args…`, returning the output; panics with stderr if the exit code differs.
pub fn run_expect(args: &[&str], code: i32) -> Output {
    let out = cairn().args(args).output().expect("run cairn");
    assert_eq!(
        out.status.code(),
        Some(code),
        "cairn {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Keys {
    pub dir: PathBuf,
    pub key: String,
    pub public: String,
}

pub fn keygen(dir: &Path) -> Keys {
    let kdir = dir.join("keys");
    run_expect(&["keygen", "--out", kdir.to_str().unwrap()], 0);
    Keys {
        key: kdir.join("signing.key").to_str().unwrap().into(),
        public: kdir.join("signing.pub").to_str().unwrap().into(),
        dir: kdir,
    }
}

pub fn seal(input: &Path, store: &str, key: &str, segment_events: u64, rejects: &Path) -> Output {
    run_expect(
        &[
            "seal",
            "--input",
            input.to_str().unwrap(),
            "--source-id",
            "billing",
            "--store",
            store,
            "--key",
            key,
            "--segment-events",
            &segment_events.to_string(),
            "--rejects",
            rejects.to_str().unwrap(),
        ],
        0,
    )
}

/// `cairn verify --json`: (exit code, report).
pub fn verify(store: &str, pubkeys: &[&str]) -> (i32, serde_json::Value) {
    verify_env(store, pubkeys, &[])
}

/// [`verify`] with extra environment (an S3 endpoint: [`S3Server::env`]).
pub fn verify_env(
    store: &str,
    pubkeys: &[&str],
    env: &[(&str, String)],
) -> (i32, serde_json::Value) {
    let mut cmd = cairn();
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.args(["verify", "--store", store, "--json"]);
    for k in pubkeys {
        cmd.args(["--pubkey", k]);
    }
    let out = cmd.output().expect("run cairn verify");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON report ({e})\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

/// The (kind, object) pairs of a report's findings.
pub fn findings(report: &serde_json::Value) -> BTreeSet<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn kinds(report: &serde_json::Value) -> BTreeSet<String> {
    findings(report).into_iter().map(|(k, _)| k).collect()
}

/// Sorted object names (relative to the store root) under `root`.
pub fn objects(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

pub fn make_writable(p: &Path) {
    let mut perms = std::fs::metadata(p).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(p, perms).unwrap();
}

pub fn valid_lines(path: &Path) -> (u64, u64) {
    // (valid, malformed) as produced by scripts/gen_events.py --malformed-every 7
    let text = std::fs::read_to_string(path).unwrap();
    let total = text.lines().count() as u64;
    let bad = total / 7;
    (total - bad, bad)
}

/// A real S3 server (moto_server, which enforces Object Lock) on 127.0.0.1, stopped on drop.
/// Fails the test when it cannot start: `scripts/test.sh` installs it.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    pub fn start() -> S3Server {
        let port = free_port();
        // `python3 -m moto.server` is moto_server without depending on PATH shims.
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "moto_server must be installed (scripts/test.sh installs tests/requirements.txt)",
            );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Environment for cairn and boto3 to talk to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// `cairn args…` against this server: (exit code, stdout, stderr).
    pub fn cairn(&self, args: &[&str]) -> (i32, String, String) {
        let out = cairn().args(args).envs(self.env()).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `cairn verify --json` of `store` on this server: (exit code, report).
    pub fn verify(&self, store: &str, pubkeys: &[&str]) -> (i32, serde_json::Value) {
        verify_env(store, pubkeys, &self.env())
    }

    /// tests/services/s3_admin.py (boto3): (exit code, stdout).
    pub fn admin(&self, args: &[&str]) -> (i32, String) {
        let script = data("../services/s3_admin.py");
        let out = Command::new("python3")
            .arg(script)
            .args(args)
            .envs(self.env())
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        assert!(
            code == 0 || code == 3,
            "s3_admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (code, String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// The rows of a sealed Parquet file written again as another Parquet writer would
/// (uncompressed, another `created_by`): the same columns and rows, other bytes.
pub fn reencode(file: &[u8]) -> Vec<u8> {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.to_vec()))
        .unwrap()
        .build()
        .unwrap();
    let props = WriterProperties::builder()
        .set_created_by("another writer".to_string())
        .build();
    let mut out = Vec::new();
    let mut w =
        ArrowWriter::try_new(&mut out, cairn_format::segment::arrow_schema(), Some(props)).unwrap();
    for batch in reader {
        w.write(&batch.unwrap()).unwrap();
    }
    w.close().unwrap();
    out
}

/// Replaces the body of the manifest at `path` by `edit(body)` and signs it again with the
/// secret key file `key` (a trusted signer producing that body).
pub fn resign(path: &Path, key: &str, edit: impl FnOnce(&str) -> String) {
    use base64::Engine;
    let key = cairn_format::SigningKey::parse(&std::fs::read_to_string(key).unwrap(), key).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let body = edit(text.lines().next().unwrap());
    let sig = key.sign(&cairn_format::manifest::signing_input(body.as_bytes()));
    make_writable(path);
    std::fs::write(
        path,
        format!(
            "{body}\ned25519 {} {}\n",
            key.key_id(),
            base64::engine::general_purpose::STANDARD.encode(sig)
        ),
    )
    .unwrap();
}

/// tests/independent_verifier.py (written from docs/FORMAT.md alone) on a local store:
/// (exit code, its (class, object) findings, its output).
pub fn independent_verify(
    store: &Path,
    pubkeys: &[&str],
) -> (i32, BTreeSet<(String, String)>, String) {
    let out = Command::new("python3")
        .arg(data("../independent_verifier.py"))
        .arg(store)
        .args(pubkeys)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let found = stdout
        .lines()
        .filter_map(|l| {
            let rest = l
                .strip_prefix("FAIL ")
                .or_else(|| l.strip_prefix("WARN "))
                .or_else(|| l.strip_prefix("INCOMPLETE "))?;
            let mut parts = rest.splitn(3, ' ');
            let class = parts.next()?.to_string();
            let object = parts.next()?.trim_end_matches(':').to_string();
            Some((class, object))
        })
        .collect();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), found, all)
}

/// `cairn verify` and the independent verifier reach the same verdict on `store`: the same
/// exit code and the same (class, object) findings. Returns cairn's report.
pub fn verify_both(store: &Path, pubkeys: &[&str]) -> (i32, serde_json::Value) {
    let (code, report) = verify(store.to_str().unwrap(), pubkeys);
    let (icode, ifound, iout) = independent_verify(store, pubkeys);
    assert_eq!(
        (icode, &ifound),
        (code, &findings(&report)),
        "the independent verifier disagrees with cairn verify\ncairn: {report:#}\nindependent:\n{iout}"
    );
    (code, report)
}
