//! The `[query]` section of cairn.toml (docs/CONFIG.md). Every field has a default except the
//! store and the trusted keys; unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Address to serve on.
    pub listen: String,
    /// The store to serve (a directory or s3://bucket[/prefix]).
    pub store: Option<String>,
    /// Public keys (files written by `cairn keygen`) whose signatures are trusted.
    pub pubkeys: Vec<PathBuf>,
    /// How often the store is listed for new segments.
    pub refresh_secs: u64,
    pub tables: Vec<TableConfig>,
    pub policy: PolicyConfig,
    pub limits: LimitsConfig,
    /// Service accounts: the SHA-256 of each key, never the key.
    pub api_keys: Vec<ApiKeyConfig>,
    /// OIDC bearer tokens from this issuer (absent: API keys only).
    pub oidc: Option<crate::oidc::OidcConfig>,
    /// Where every decision is recorded before any data is read. Required: serving without
    /// one needs `off = true`, said explicitly.
    pub decision_log: Option<DecisionLogConfig>,
    /// The service's Ed25519 key (`cairn keygen`) for signed results (`"sign": true`);
    /// absent: signing is refused with 400.
    pub signing_key: Option<PathBuf>,
}

/// How much of the SQL a decision record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlText {
    /// The text and its SHA-256.
    Full,
    /// Only its SHA-256 (deployments where SQL text is itself sensitive).
    Sha256,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionLogConfig {
    /// Serve without a decision log: nothing is recorded (local development only).
    pub off: bool,
    /// Kafka bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The decisions topic (it must exist; seal it with `cairn ingest`).
    pub topic: String,
    /// Where alerts go (it must exist).
    pub alerts_topic: String,
    /// librdkafka properties for the producer (security, …).
    pub kafka: BTreeMap<String, String>,
    /// `full` or `sha256`.
    pub sql_text: SqlText,
    /// A decision record not acknowledged within this refuses its request (503).
    pub ack_timeout_ms: u64,
    /// Completion records and alerts waiting for acknowledgement; beyond it they are
    /// counted and lost.
    pub completion_queue: usize,
    pub alerts: crate::alerts::AlertsConfig,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            off: false,
            brokers: String::new(),
            topic: "cairn.decisions".into(),
            alerts_topic: "cairn.alerts".into(),
            kafka: BTreeMap::new(),
            sql_text: SqlText::Full,
            ack_timeout_ms: 5_000,
            completion_queue: 10_000,
            alerts: crate::alerts::AlertsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    pub name: String,
    /// Stream ids (Kafka topics): exact, or a prefix ending in `*`.
    pub streams: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// `regorus` (in-process, reloads `dir` on change) or `opa-wasm` (runs `bundle`).
    pub engine: String,
    /// Directory of `.rego` files (regorus).
    pub dir: PathBuf,
    /// Bundle from `opa build -t wasm -e <entrypoint>` (opa-wasm).
    pub bundle: Option<PathBuf>,
    pub entrypoint: String,
    /// A decision not made within this is a denial.
    pub timeout_ms: u64,
    /// How often regorus checks `dir` for changes.
    pub reload_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A query still running after this is cancelled.
    pub timeout_ms: u64,
    /// Memory one query may use (no spilling to disk).
    pub memory_mb: u64,
    /// Rows one response may hold (the policy may lower it).
    pub max_rows: u64,
    /// Bytes of result one response may hold.
    pub max_bytes: u64,
    /// Queries running at once; more are refused with 503 `busy`.
    pub max_concurrent: usize,
    /// Largest SQL text accepted.
    pub max_sql_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The subject of its requests.
    pub name: String,
    /// Lowercase hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            listen: "127.0.0.1:8080".into(),
            store: None,
            pubkeys: Vec::new(),
            refresh_secs: 10,
            tables: vec![TableConfig {
                name: "events".into(),
                streams: vec!["*".into()],
            }],
            policy: PolicyConfig::default(),
            limits: LimitsConfig::default(),
            api_keys: Vec::new(),
            oidc: None,
            decision_log: None,
            signing_key: None,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            engine: "regorus".into(),
            dir: PathBuf::from("policies"),
            bundle: None,
            entrypoint: cairn_policy::DEFAULT_ENTRYPOINT.into(),
            timeout_ms: 200,
            reload_secs: 2,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            timeout_ms: 30_000,
            memory_mb: 1024,
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_concurrent: 8,
            max_sql_bytes: 64 * 1024,
        }
    }
}

impl QueryConfig {
    /// Problems a user can fix, each naming the field.
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for t in &self.tables {
            if !names.insert(t.name.as_str()) {
                return Err(format!(
                    "[[query.tables]]: table `{}` is defined twice",
                    t.name
                ));
            }
            if t.streams.is_empty() {
                return Err(format!("[[query.tables]] `{}`: streams is empty", t.name));
            }
        }
        for k in &self.api_keys {
            if k.sha256.len() != 64
                || !k
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(format!(
                    "[[query.api_keys]] `{}`: sha256 must be 64 lowercase hex digits (printf %s \"$KEY\" | sha256sum)",
                    k.name
                ));
            }
        }
        match self.policy.engine.as_str() {
            "regorus" => {}
            "opa-wasm" if self.policy.bundle.is_some() => {}
            "opa-wasm" => {
                return Err(
                    "[query.policy] engine = \"opa-wasm\" needs bundle = \"path/to/bundle.tar.gz\""
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "[query.policy] engine = {other:?}: use \"regorus\" or \"opa-wasm\""
                ));
            }
        }
        if let Some(o) = &self.oidc {
            o.check()?;
        }
        if self.api_keys.is_empty() && self.oidc.is_none() {
            return Err(
                "no way to authenticate: configure [[query.api_keys]] or [query.oidc]".into(),
            );
        }
        match &self.decision_log {
            None => {
                return Err("no decision log: configure [query.decision_log] brokers = \"host:port\" (and topic), or set [query.decision_log] off = true to serve without recording decisions".into());
            }
            Some(d) if !d.off => {
                if d.brokers.trim().is_empty() {
                    return Err(
                        "[query.decision_log] brokers is empty (set it, or off = true)".into(),
                    );
                }
                if d.topic.trim().is_empty() || d.alerts_topic.trim().is_empty() {
                    return Err("[query.decision_log] topic and alerts_topic must be set".into());
                }
                if d.ack_timeout_ms == 0 {
                    return Err("[query.decision_log] ack_timeout_ms must be at least 1".into());
                }
                d.alerts.check()?;
            }
            Some(_) => {}
        }
        if self.limits.max_concurrent == 0 {
            return Err("[query.limits] max_concurrent must be at least 1".into());
        }
        Ok(())
    }
}
