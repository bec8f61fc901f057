//! A real schema registry on 127.0.0.1: Apicurio Registry 3.0.9 (Confluent-compatible API
//! under `/apis/ccompat/v7`), installed by scripts/ensure-registry.sh, in-memory storage.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::s3::free_port;

/// Apicurio's install directory: `$CAIRN_REGISTRY`, else where scripts/ensure-registry.sh
/// puts it.
pub fn registry_home() -> PathBuf {
    let home = std::env::var_os("CAIRN_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cairn/tools/apicurio-3.0.9")
        });
    assert!(
        home.join(".complete").exists(),
        "Apicurio Registry not found at {} (scripts/test.sh installs it with scripts/ensure-registry.sh)",
        home.display()
    );
    home
}

pub struct Registry {
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// `user:password` required on every request, if any.
    pub basic_auth: Option<String>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the registry, requiring HTTP basic auth `user:password` when given; waits until
    /// its Confluent API answers.
    pub fn start(basic_auth: Option<&str>) -> Registry {
        let home = registry_home();
        let env = std::fs::read_to_string(home.join("registry.env")).unwrap();
        let var = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing from registry.env"))
                .to_string()
        };
        let java = var("REGISTRY_JAVA");
        let java = if java.starts_with('/') {
            PathBuf::from(java)
        } else {
            home.join(java)
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(java);
        cmd.args([
            "-Xmx256m",
            "-Xss512k",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
        ])
        .arg(format!("-Djava.io.tmpdir={}", dir.path().display()))
        .arg("-Dquarkus.http.host=127.0.0.1")
        .arg(format!("-Dquarkus.http.port={port}"))
        .args([
            "-Dapicurio.datasource.jdbc.initial-size=2",
            "-Dapicurio.datasource.jdbc.min-size=2",
        ]);
        if let Some(auth) = basic_auth {
            let (user, password) = auth.split_once(':').unwrap();
            cmd.args([
                "-Dquarkus.http.auth.basic=true",
                "-Dquarkus.security.users.embedded.enabled=true",
                "-Dquarkus.security.users.embedded.plain-text=true",
            ])
            .arg(format!(
                "-Dquarkus.security.users.embedded.users.{user}={password}"
            ));
        }
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = cmd
            .arg("-jar")
            .arg(home.join(var("REGISTRY_JAR")))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the registry (Java 17)");
        let r = Registry {
            child,
            addr: format!("127.0.0.1:{port}"),
            basic_auth: basic_auth.map(str::to_string),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        while r.get("/subjects").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "the registry did not answer within 90 s:\n{}",
                std::fs::read_to_string(r._dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        r
    }

    /// The Confluent API's base URL, as clients are given it.
    pub fn url(&self) -> String {
        format!("http://{}/apis/ccompat/v7", self.addr)
    }

    /// `GET {url}{path}` with the registry's credentials: (status, body); status 0 when it
    /// cannot be reached.
    pub fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut s) = std::net::TcpStream::connect(&self.addr) else {
            return (0, String::new());
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let auth = self.basic_auth.as_ref().map_or(String::new(), |a| {
            use base64::Engine;
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(a)
            )
        });
        let req = format!(
            "GET /apis/ccompat/v7{path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.addr
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let status = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_string())
    }

    /// Produces events `first..first+count` to `audit` (partition `i % partitions`) with the
    /// real Confluent Python client: `AvroSerializer` registers the writer schema (the
    /// reader schema, or with `evolved` one that adds a field) under `audit-value` and frames
    /// each message with its id. Returns that id.
    pub fn produce(
        &self,
        bootstrap: &str,
        first: u64,
        count: u64,
        partitions: u64,
        evolved: bool,
    ) -> u32 {
        self.produce_via(&self.url(), bootstrap, first, count, partitions, evolved)
    }

    pub fn produce_via(
        &self,
        url: &str,
        bootstrap: &str,
        first: u64,
        count: u64,
        partitions: u64,
        evolved: bool,
    ) -> u32 {
        let mut cmd = Command::new("python3");
        cmd.arg(crate::cli::repo().join("tests/services/produce_registry.py"))
            .args([bootstrap, url, "audit"])
            .args([first.to_string(), count.to_string(), partitions.to_string()])
            .arg(crate::cli::repo().join("schemas/audit_event.avsc"));
        if evolved {
            cmd.arg("--evolved");
        }
        if let Some(a) = &self.basic_auth {
            cmd.env("REGISTRY_BASIC_AUTH", a);
        }
        let out = cmd.output().expect("python3");
        assert!(
            out.status.success(),
            "produce_registry.py: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the schema id")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
