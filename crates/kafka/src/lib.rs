//! Kafka clients for cairn: client configuration ([`KafkaConfig`]) and a producer whose every
//! send is acknowledged by the brokers before it returns ([`AckedProducer`]).
//!
//! Ingest uses both (its consumer, its dead-letter topic); the query service's decision log
//! produces through [`AckedProducer`] too, so "delivered" means the same everywhere: the
//! idempotent producer (`enable.idempotence`, `acks=all`) had the record acknowledged by every
//! in-sync replica.
//!
//! Together with ingest, the only crate that touches rdkafka (the bundled librdkafka). It
//! depends on no other cairn crate.

use std::collections::BTreeMap;
use std::time::Duration;

pub use rdkafka;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// Brokers and librdkafka properties, shared by every client cairn creates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// librdkafka properties, passed through unchanged (security, timeouts, …).
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// A librdkafka configuration with the brokers and every property set.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// How often, and how patiently, a send is retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Sends in all, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long librdkafka may try one send (`message.timeout.ms`).
    pub send_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// One record to produce. Headers keep their order; a `None` value is a null header.
#[derive(Clone, Debug, Default)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// Where an acknowledged record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("creating the producer: {0}")]
    Create(#[source] KafkaError),
    #[error("topic {topic:?} is not usable: {reason}")]
    TopicUnavailable { topic: String, reason: String },
    #[error("topic {topic:?}: not acknowledged after {attempts} attempts: {source}")]
    NotAcknowledged {
        topic: String,
        attempts: u32,
        #[source]
        source: KafkaError,
    },
}

/// An idempotent producer (`acks=all`) whose [`AckedProducer::send`] returns only once the
/// record is acknowledged, retrying with backoff up to [`RetryPolicy::attempts`].
pub struct AckedProducer {
    inner: FutureProducer,
    retry: RetryPolicy,
}

impl AckedProducer {
    pub fn new(cfg: &KafkaConfig, retry: RetryPolicy) -> Result<Self, ProduceError> {
        let inner = cfg
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                retry.send_timeout.as_millis().to_string(),
            )
            .create()
            .map_err(ProduceError::Create)?;
        Ok(AckedProducer { inner, retry })
    }

    /// Whether `topic` exists and every partition has a leader, from the brokers' metadata
    /// (blocking for up to `timeout`; call it off the async runtime). A readiness probe that
    /// produces nothing.
    pub fn topic_ready(&self, topic: &str, timeout: Duration) -> Result<usize, ProduceError> {
        use rdkafka::producer::Producer;
        let unavailable = |reason: String| ProduceError::TopicUnavailable {
            topic: topic.to_string(),
            reason,
        };
        let md = self
            .inner
            .client()
            .fetch_metadata(Some(topic), Timeout::After(timeout))
            .map_err(|e| unavailable(e.to_string()))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| unavailable("not in the brokers' metadata".into()))?;
        if let Some(e) = t.error() {
            return Err(unavailable(format!(
                "{e:?} (create the topic, or check the producer's ACLs)"
            )));
        }
        if t.partitions().is_empty() {
            return Err(unavailable("it has no partitions".into()));
        }
        if let Some(p) = t.partitions().iter().find(|p| p.leader() < 0) {
            return Err(unavailable(format!("partition {} has no leader", p.id())));
        }
        Ok(t.partitions().len())
    }

    /// Produces `record` and waits for its acknowledgement.
    pub async fn send(&self, record: &Record<'_>) -> Result<Delivery, ProduceError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header { key, value: *value });
        }
        let mut backoff = self.retry.first_backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut r = FutureRecord::to(record.topic)
                .payload(record.payload)
                .headers(headers.clone());
            if let Some(k) = record.key {
                r = r.key(k);
            }
            match self
                .inner
                .send(r, Timeout::After(self.retry.send_timeout))
                .await
            {
                Ok(d) => {
                    return Ok(Delivery {
                        partition: d.partition,
                        offset: d.offset,
                    });
                }
                Err((e, _)) if attempts < self.retry.attempts => {
                    tracing::warn!(
                        topic = record.topic,
                        attempt = attempts,
                        error = %e,
                        "produce not acknowledged; retrying in {backoff:?}"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                }
                Err((source, _)) => {
                    return Err(ProduceError::NotAcknowledged {
                        topic: record.topic.to_string(),
                        attempts,
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_reaches_the_client_config() {
        let cfg = KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            properties: [("session.timeout.ms".to_string(), "6000".to_string())].into(),
        };
        let c = cfg.client_config();
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:9"));
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
    }

    /// Nothing listens on the port: the send is retried, then reported, never "delivered".
    #[tokio::test]
    async fn an_unacknowledged_send_is_an_error_after_the_retries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = KafkaConfig {
            brokers: format!("127.0.0.1:{port}"),
            properties: BTreeMap::new(),
        };
        let p = AckedProducer::new(
            &cfg,
            RetryPolicy {
                attempts: 2,
                first_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(10),
                send_timeout: Duration::from_millis(300),
            },
        )
        .unwrap();
        let e = p
            .send(&Record {
                topic: "t",
                payload: b"x",
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProduceError::NotAcknowledged { attempts: 2, .. }),
            "{e}"
        );
    }
}
