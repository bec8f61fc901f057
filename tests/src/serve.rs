//! `cairn serve` as a process on 127.0.0.1 with a vault sealed for the test, API keys per
//! role, and a plain HTTP/1.1 client.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{Keys, cairn, keygen, repo, run_expect};

pub const NOW_DAYS_AGO_OLD: i64 = 200;

/// A caller: the API key and what the config grants it.
pub struct Key {
    pub name: &'static str,
    pub key: &'static str,
    pub roles: &'static [&'static str],
    pub tenant: Option<&'static str>,
}

pub const KEYS: &[Key] = &[
    Key {
        name: "ann",
        key: "key-analyst-acme",
        roles: &["analyst"],
        tenant: Some("acme"),
    },
    Key {
        name: "gus",
        key: "key-analyst-globex",
        roles: &["analyst"],
        tenant: Some("globex"),
    },
    Key {
        name: "sue",
        key: "key-security-acme",
        roles: &["security"],
        tenant: Some("acme"),
    },
    Key {
        name: "tad",
        key: "key-tenant-admin-acme",
        roles: &["tenant-admin"],
        tenant: Some("acme"),
    },
    Key {
        name: "aud",
        key: "key-auditor",
        roles: &["auditor"],
        tenant: None,
    },
    Key {
        name: "bob",
        key: "key-break-glass",
        roles: &["break-glass"],
        tenant: Some("acme"),
    },
    Key {
        name: "nob",
        key: "key-nobody",
        roles: &[],
        tenant: Some("acme"),
    },
];

/// The test's events: `n` per tenant (acme, globex), sensitivities cycling through
/// public/internal/confidential/pii, every 5th one older than the analyst window.
pub fn events(n: usize) -> Vec<Value> {
    let now = chrono_like_now_secs();
    let sens = ["public", "internal", "confidential", "pii"];
    let mut out = Vec::new();
    for i in 0..n * 2 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let age_days = if i % 5 == 0 {
            NOW_DAYS_AGO_OLD
        } else {
            1 + (i as i64 % 30)
        };
        let t = now - age_days * 86_400 - i as i64;
        let action = ["invoice.read", "report.export", "login"][i % 3];
        out.push(json!({
            "event_id": format!("00000000-0000-4000-8000-{:012}", i),
            "occurred_at": rfc3339(t),
            "tenant": tenant,
            "actor": {"id": format!("user-{}", i % 7), "type": "user", "ip": format!("10.0.{}.{}", i % 3, i % 250)},
            "action": action,
            "resource": {"type": "invoice", "id": format!("inv-{i}")},
            "outcome": "success",
            "source": "billing-api",
            "sensitivity": sens[i % 4],
            "details": {"request_id": format!("req-{i}"), "card_last4": format!("{:04}", i % 10000)},
        }));
    }
    out
}

fn chrono_like_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Seconds since the epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A sealed vault with `events` in stream `source` (several segments).
pub fn seal_vault(dir: &Path, source: &str, events: &[Value], keys: &Keys) -> PathBuf {
    let input = dir.join(format!("{source}.jsonl"));
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let store = dir.join("vault");
    run_expect(
        &[
            "seal",
            "--input",
            input.to_str().unwrap(),
            "--source-id",
            source,
            "--store",
            store.to_str().unwrap(),
            "--key",
            &keys.key,
            "--segment-events",
            "16",
            "--rejects",
            dir.join("rejects.jsonl").to_str().unwrap(),
        ],
        0,
    );
    store
}

pub struct Server {
    pub addr: String,
    child: Child,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `cairn serve` on `store` trusting `keys`, with the shipped policies unless
    /// `extra` (TOML inside `[query]`, e.g. `[query.policy]`) says otherwise. Waits for
    /// /readyz; panics with the server's log if it does not come up.
    pub fn start(dir: &Path, store: &Path, keys: &Keys, extra: &str) -> Server {
        Server::start_with(dir, store, keys, "", extra)
    }

    /// [`Server::start`] with `top` (keys of `[query]` itself, e.g. `signing_key = "…"`).
    pub fn start_with(dir: &Path, store: &Path, keys: &Keys, top: &str, extra: &str) -> Server {
        let port = free_port();
        let mut toml = format!(
            "[query]\nlisten = \"127.0.0.1:{port}\"\nstore = \"{}\"\npubkeys = [\"{}\"]\nrefresh_secs = 1\n{top}",
            store.display(),
            keys.public
        );
        toml.push_str("tables = [{ name = \"events\", streams = [\"billing\", \"audit*\"] }, { name = \"access_log\", streams = [\"cairn.decisions\"] }]\n");
        for k in KEYS {
            let roles: Vec<String> = k.roles.iter().map(|r| format!("\"{r}\"")).collect();
            toml.push_str(&format!(
                "[[query.api_keys]]\nname = \"{}\"\nsha256 = \"{}\"\nroles = [{}]\n{}",
                k.name,
                sha256_hex(k.key),
                roles.join(", "),
                k.tenant
                    .map(|t| format!("tenant = \"{t}\"\n"))
                    .unwrap_or_default()
            ));
        }
        if !extra.contains("[query.policy]") {
            toml.push_str(&format!(
                "[query.policy]\ndir = \"{}\"\n",
                repo().join("policies").display()
            ));
        }
        if !extra.contains("[query.decision_log]") {
            // Tests of the decision log configure it (tests/query_decision_log.rs); the rest
            // serve without one, which must be said explicitly.
            toml.push_str("[query.decision_log]\noff = true\n");
        }
        toml.push_str(extra);
        let config = dir.join(format!("serve-{port}.toml"));
        std::fs::write(&config, toml).unwrap();
        let log = dir.join(format!("serve-{port}.log"));
        let child = cairn()
            .args([
                "--log-format",
                "json",
                "serve",
                "--config",
                config.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting cairn serve");
        let server = Server {
            addr: format!("127.0.0.1:{port}"),
            child,
            log,
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _, _)) = server.try_request("GET", "/readyz", &[], b"") {
                return server;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "cairn serve did not become ready:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String, Vec<u8>)> {
        let mut s = std::net::TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        Ok((status, head, body))
    }

    /// (status, response head, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        self.try_request(method, path, headers, body)
            .expect("request to cairn serve")
    }

    /// POST /v1/query as the caller with `api_key`: (status, JSON body).
    pub fn query(&self, api_key: &str, sql: &str) -> (u16, Value) {
        self.query_body(api_key, &json!({"sql": sql}))
    }

    pub fn query_body(&self, api_key: &str, body: &Value) -> (u16, Value) {
        let (status, _, body) = self.request(
            "POST",
            "/v1/query",
            &[("x-api-key", api_key), ("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
        (status, v)
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
}

/// A fresh vault of `events(n)` in stream `billing`, and its keys.
pub fn vault(dir: &Path, n: usize) -> (Keys, PathBuf, Vec<Value>) {
    let keys = keygen(dir);
    let evs = events(n);
    let store = seal_vault(dir, "billing", &evs, &keys);
    (keys, store, evs)
}
