//! A Confluent-compatible schema registry client: writer schemas of Confluent-framed messages
//! fetched by id (`GET {url}/schemas/ids/{id}`), for the decoder to cache.
//!
//! Outcomes are classified for the caller: an id the registry does not know, or a schema that
//! is not usable Avro, dead-letters the message with that reason; an unreachable or failing
//! registry is transient (consumption pauses, nothing is dead-lettered); refused credentials or
//! a URL that is not a Confluent API stop ingest, since retrying cannot fix them.

use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;

use crate::ConfigError;
use crate::config::SchemaRegistryConfig;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema id {id} is unknown to the schema registry at {url}")]
    Unknown { id: u32, url: String },
    #[error("schema id {id} in the schema registry at {url} is a {kind} schema; cairn reads Avro")]
    NotAvro { id: u32, url: String, kind: String },
    #[error("schema id {id} from the schema registry at {url} is not usable: {message}")]
    Invalid {
        id: u32,
        url: String,
        message: String,
    },
    #[error("the schema registry at {url} is unavailable: {message}")]
    Unavailable { url: String, message: String },
    #[error("the schema registry at {url} refused the request ({message})")]
    Refused { url: String, message: String },
}

impl RegistryError {
    /// Retrying later can help (the registry is down, slow or failing).
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }

    /// The message itself is at fault: dead-letter it with this reason.
    pub fn dead_letters(&self) -> bool {
        matches!(
            self,
            RegistryError::Unknown { .. }
                | RegistryError::NotAvro { .. }
                | RegistryError::Invalid { .. }
        )
    }
}

pub struct SchemaRegistry {
    base: String,
    client: reqwest::Client,
    auth: Option<(String, Option<String>)>,
}

/// `GET /schemas/ids/{id}`: Confluent answers `{"schema": …}` (plus `schemaType` for non-Avro
/// schemas); some registries always add `schemaType` and `references`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaById {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

/// A Confluent error body.
#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

impl SchemaRegistry {
    /// `None` when no registry is configured.
    pub fn new(cfg: &SchemaRegistryConfig) -> Result<Option<Self>, ConfigError> {
        let Some(url) = &cfg.url else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "schema_registry.url = {url:?} is not an http:// or https:// URL"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.clamp(1, 10)));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                ConfigError::Invalid(format!("schema_registry.ca_file {}: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConfigError::Invalid(format!(
                    "schema_registry.ca_file {} holds no PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ConfigError::Invalid(format!("schema registry client for {url}: {e}")))?;
        if cfg.password.is_some() && cfg.username.is_none() {
            return Err(ConfigError::Invalid(
                "schema_registry.password is set without schema_registry.username".into(),
            ));
        }
        Ok(Some(SchemaRegistry {
            base: url.trim_end_matches('/').to_string(),
            client,
            auth: cfg.username.clone().map(|u| (u, cfg.password.clone())),
        }))
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// The writer schema registered under `id`.
    pub async fn writer_schema(&self, id: u32) -> Result<Schema, RegistryError> {
        let url = self.base.clone();
        let unavailable = |message: String| RegistryError::Unavailable {
            url: url.clone(),
            message,
        };
        let mut req = self.client.get(format!("{}/schemas/ids/{id}", self.base));
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, password.as_ref());
        }
        let resp = req.send().await.map_err(|e| unavailable(describe(&e)))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| unavailable(describe(&e)))?;
        if status.is_success() {
            let s: SchemaById = serde_json::from_slice(&body).map_err(|e| RegistryError::Refused {
                url: url.clone(),
                message: format!(
                    "its answer for schema id {id} is not a Confluent schema response ({e}); is the URL the Confluent API's base?"
                ),
            })?;
            return parse(id, &url, s);
        }
        let err: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let code = err.as_ref().and_then(|e| e.error_code);
        let message = err
            .and_then(|e| e.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        match status.as_u16() {
            404 if code == Some(40403) => Err(RegistryError::Unknown { id, url }),
            // 404 without Confluent's "schema not found" code: the path is not a Confluent API.
            404 => Err(RegistryError::Refused {
                url,
                message: format!(
                    "HTTP 404 without Confluent error code 40403 ({message}); is the URL the Confluent API's base (Apicurio: …/apis/ccompat/v7)?"
                ),
            }),
            401 | 403 => Err(RegistryError::Refused {
                url,
                message: format!(
                    "HTTP {status}: {message}; check schema_registry.username and password"
                ),
            }),
            408 | 429 | 500..=599 => Err(unavailable(format!("HTTP {status}: {message}"))),
            _ => Err(RegistryError::Refused {
                url,
                message: format!("HTTP {status}: {message}"),
            }),
        }
    }
}

fn parse(id: u32, url: &str, s: SchemaById) -> Result<Schema, RegistryError> {
    if let Some(kind) = s.schema_type.filter(|k| k != "AVRO") {
        return Err(RegistryError::NotAvro {
            id,
            url: url.to_string(),
            kind,
        });
    }
    if !s.references.is_empty() {
        return Err(RegistryError::Invalid {
            id,
            url: url.to_string(),
            message: "it references other schemas, which cairn does not resolve".into(),
        });
    }
    Schema::parse_str(&s.schema).map_err(|e| RegistryError::Invalid {
        id,
        url: url.to_string(),
        message: format!("not a valid Avro schema: {e}"),
    })
}

/// reqwest's error with its causes (the top level alone says only "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_id(json: &str) -> SchemaById {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_plain_avro_schemas_are_used_and_the_rest_dead_letters() {
        let url = "http://r";
        let avro = r#"{"type":"record","name":"A","fields":[]}"#;
        let plain = format!("{{\"schema\":{}}}", serde_json::to_string(avro).unwrap());
        assert!(parse(1, url, by_id(&plain)).is_ok());
        let apicurio = format!(
            "{{\"schema\":{},\"schemaType\":\"AVRO\",\"references\":[]}}",
            serde_json::to_string(avro).unwrap()
        );
        assert!(parse(1, url, by_id(&apicurio)).is_ok());
        let proto = r#"{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}"#;
        let e = parse(2, url, by_id(proto)).unwrap_err();
        assert!(e.dead_letters() && !e.is_transient());
        assert_eq!(
            e.to_string(),
            "schema id 2 in the schema registry at http://r is a PROTOBUF schema; cairn reads Avro"
        );
        let refs =
            r#"{"schema":"\"string\"","references":[{"name":"x","subject":"s","version":1}]}"#;
        assert!(parse(3, url, by_id(refs)).unwrap_err().dead_letters());
        let broken = r#"{"schema":"{\"type\":\"nonsense\"}"}"#;
        assert!(matches!(
            parse(4, url, by_id(broken)),
            Err(RegistryError::Invalid { .. })
        ));
    }

    #[test]
    fn configuration_mistakes_are_named() {
        let cfg = |url: &str| SchemaRegistryConfig {
            url: Some(url.into()),
            ..Default::default()
        };
        assert!(
            SchemaRegistry::new(&SchemaRegistryConfig::default())
                .unwrap()
                .is_none()
        );
        let e = SchemaRegistry::new(&cfg("registry:8081")).err().unwrap();
        assert!(
            e.to_string().contains("not an http:// or https:// URL"),
            "{e}"
        );
        let mut no_user = cfg("http://r");
        no_user.password = Some("p".into());
        assert!(SchemaRegistry::new(&no_user).is_err());
        let mut bad_ca = cfg("https://r");
        bad_ca.ca_file = Some("/nonexistent/ca.pem".into());
        let e = SchemaRegistry::new(&bad_ca).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let r = SchemaRegistry::new(&cfg("http://r/apis/ccompat/v7/"))
            .unwrap()
            .unwrap();
        assert_eq!(r.url(), "http://r/apis/ccompat/v7");
    }
}
