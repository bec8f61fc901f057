//! `cairn ingest` configuration: one TOML file (every field documented in
//! docs/CONFIG.md), then environment variables and command-line flags on top.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Kafka bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Or: a regex of topics to consume (librdkafka `^` subscription), instead of `topics`.
    pub topic_regex: Option<String>,
    /// Consumer group id.
    pub group: String,
    /// Store URL: a directory or `s3://bucket[/prefix]`.
    pub store: String,
    /// Secret signing key file.
    pub key: PathBuf,
    /// Dead-letter topic for messages that cannot be sealed.
    pub dlq_topic: String,
    /// Directory with `audit_event.avsc` and the writer schemas named in `schema_ids`.
    pub schema_dir: PathBuf,
    /// Confluent schema id → writer schema file in `schema_dir` (air-gapped use; ids mapped
    /// here are never fetched from the registry).
    pub schema_ids: BTreeMap<u32, String>,
    /// A Confluent-compatible schema registry for the writer schemas of Confluent-framed
    /// messages whose id `schema_ids` does not map.
    pub schema_registry: SchemaRegistryConfig,
    /// Messages larger than this go to the dead-letter topic.
    pub max_message_bytes: usize,
    /// S3 only: per-object COMPLIANCE retention days instead of the bucket default.
    pub retention_days: Option<u32>,
    /// `host:port` for Prometheus metrics, `/healthz` and `/readyz`; none when unset.
    pub metrics_addr: Option<String>,
    pub segment: SegmentConfig,
    /// Passed to librdkafka as is (consumer and producer), e.g. `"security.protocol" = "ssl"`.
    pub kafka: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    /// Base URL of the Confluent REST API (`https://registry:8081`; Apicurio:
    /// `https://host/apis/ccompat/v7`). Unset: no registry.
    pub url: Option<String>,
    /// HTTP basic auth user.
    pub username: Option<String>,
    /// HTTP basic auth password (better: the `CAIRN_SCHEMA_REGISTRY_PASSWORD` environment
    /// variable, which overrides it).
    pub password: Option<String>,
    /// PEM file of CA certificates to trust for an https URL, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout.
    pub timeout_secs: u64,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        SchemaRegistryConfig {
            url: None,
            username: None,
            password: None,
            ca_file: None,
            timeout_secs: 10,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    /// Cut a segment after this many events.
    pub max_events: u64,
    /// Cut a segment after this many message bytes.
    pub max_bytes: u64,
    /// Seal a segment at most this many seconds after its first offset arrived.
    pub max_age_secs: u64,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            max_events: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_age_secs: 60,
        }
    }
}

impl SegmentConfig {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            brokers: "127.0.0.1:9092".into(),
            topics: Vec::new(),
            topic_regex: None,
            group: "cairn".into(),
            store: "./vault".into(),
            key: PathBuf::from("keys/signing.key"),
            dlq_topic: String::new(),
            schema_dir: PathBuf::from("schemas"),
            schema_ids: BTreeMap::from([(1, "audit_event.avsc".to_string())]),
            schema_registry: SchemaRegistryConfig::default(),
            max_message_bytes: 1024 * 1024,
            retention_days: None,
            metrics_addr: None,
            segment: SegmentConfig::default(),
            kafka: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("no topics: set `topics` or `topic_regex`")]
    NoTopics,
    #[error("no dead-letter topic: set `dlq_topic` (bad messages must go somewhere)")]
    NoDeadLetterTopic,
}

impl IngestConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Checks what can be checked before connecting anywhere.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.topics.is_empty() && self.topic_regex.is_none() {
            return Err(ConfigError::NoTopics);
        }
        if !self.topics.is_empty() && self.topic_regex.is_some() {
            return bad("set either `topics` or `topic_regex`, not both".into());
        }
        if self.dlq_topic.is_empty() {
            return Err(ConfigError::NoDeadLetterTopic);
        }
        if self.topics.contains(&self.dlq_topic) {
            return bad(format!(
                "dead-letter topic {:?} is also a consumed topic",
                self.dlq_topic
            ));
        }
        if self.group.is_empty() {
            return bad("`group` must not be empty".into());
        }
        if self.segment.max_events == 0
            || self.segment.max_bytes == 0
            || self.segment.max_age_secs == 0
        {
            return bad("segment limits must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_fields_and_rejects_unknown_ones() {
        let c: IngestConfig = toml::from_str(
            r#"
            brokers = "k:9092"
            topics = ["audit"]
            group = "g"
            store = "s3://b/p"
            key = "k.key"
            dlq_topic = "audit.dlq"
            schema_ids = { 3 = "v3.avsc" }
            [segment]
            max_events = 10
            [kafka]
            "fetch.min.bytes" = "1"
            "#,
        )
        .unwrap();
        assert_eq!(c.segment.max_events, 10);
        assert_eq!(c.segment.max_age_secs, 60);
        assert_eq!(c.schema_ids[&3], "v3.avsc");
        assert_eq!(c.kafka["fetch.min.bytes"], "1");
        c.validate().unwrap();
        let err = toml::from_str::<IngestConfig>("brokerz = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `brokerz`"), "{err}");
        let no_dlq = IngestConfig {
            topics: vec!["a".into()],
            ..Default::default()
        };
        assert!(
            no_dlq
                .validate()
                .unwrap_err()
                .to_string()
                .contains("dead-letter")
        );
    }
}
