//! Message decoding: Confluent wire format Avro, Avro single-object encoding, or JSON.
//!
//! | first bytes | format | writer schema |
//! |---|---|---|
//! | `0x00` + 4-byte big-endian id | Confluent wire format | `schema_ids[id]`, a file in the schema directory, else the schema registry's (learned by the caller, [`Decoder::learn`]) |
//! | `0xC3 0x01` + 8-byte fingerprint | Avro single-object encoding | the schema whose CRC-64-AVRO (Rabin) fingerprint matches |
//! | anything else | JSON, as `cairn seal` reads | — |
//!
//! Avro data is resolved against `audit_event.avsc` (the reader schema) and then validated by
//! exactly the same rules as JSON input, so every format yields the same [`AuditEvent`].

use std::collections::BTreeMap;
use std::path::Path;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use cairn_format::AuditEvent;
use cairn_format::event::format_micros;

/// Why a message could not become an event. The text goes into the dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("oversized: {size} bytes exceeds max_message_bytes {max}")]
    Oversized { size: usize, max: usize },
    #[error("empty message")]
    Empty,
    #[error(
        "unknown schema id {0} (map it in [schema_ids] of the config, or set schema_registry.url)"
    )]
    UnknownSchemaId(u32),
    /// The schema registry does not know the id, or its schema is not usable Avro.
    #[error("{0}")]
    Registry(String),
    #[error("unknown single-object schema fingerprint {0}")]
    UnknownFingerprint(String),
    #[error("undecodable Avro: {0}")]
    Avro(String),
    #[error("invalid event: {0}")]
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("schema {path} is not a valid Avro schema: {message}")]
    Parse { path: String, message: String },
}

pub struct Decoder {
    reader: Schema,
    by_id: BTreeMap<u32, Schema>,
    by_fingerprint: Vec<([u8; 8], Schema)>,
    max_message_bytes: usize,
}

fn load(path: &Path) -> Result<Schema, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Schema::parse_str(&text).map_err(|e| SchemaError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn fingerprint(s: &Schema) -> [u8; 8] {
    let fp = s.fingerprint::<Rabin>();
    let mut out = [0u8; 8];
    out.copy_from_slice(&fp.bytes[..8]);
    out
}

impl Decoder {
    /// Reader schema: `schema_dir/audit_event.avsc`. `schema_ids` maps Confluent schema ids to
    /// writer-schema file names in `schema_dir`.
    pub fn new(
        schema_dir: &Path,
        schema_ids: &BTreeMap<u32, String>,
        max_message_bytes: usize,
    ) -> Result<Self, SchemaError> {
        let reader = load(&schema_dir.join("audit_event.avsc"))?;
        let mut by_id = BTreeMap::new();
        let mut by_fingerprint = vec![(fingerprint(&reader), reader.clone())];
        for (id, file) in schema_ids {
            let s = load(&schema_dir.join(file))?;
            by_fingerprint.push((fingerprint(&s), s.clone()));
            by_id.insert(*id, s);
        }
        Ok(Decoder {
            reader,
            by_id,
            by_fingerprint,
            max_message_bytes,
        })
    }

    /// Adds the writer schema of Confluent id `id` (fetched from a schema registry).
    pub fn learn(&mut self, id: u32, schema: Schema) {
        self.by_fingerprint
            .push((fingerprint(&schema), schema.clone()));
        self.by_id.insert(id, schema);
    }

    pub fn decode(&self, payload: &[u8]) -> Result<AuditEvent, DecodeError> {
        if payload.len() > self.max_message_bytes {
            return Err(DecodeError::Oversized {
                size: payload.len(),
                max: self.max_message_bytes,
            });
        }
        match payload {
            [] => Err(DecodeError::Empty),
            [0x00, rest @ ..] => {
                let (id, body) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| DecodeError::Avro("truncated Confluent header".into()))?;
                let id = u32::from_be_bytes(*id);
                let writer = self
                    .by_id
                    .get(&id)
                    .ok_or(DecodeError::UnknownSchemaId(id))?;
                self.avro(writer, body)
            }
            [0xC3, 0x01, rest @ ..] => {
                let (fp, body) = rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| DecodeError::Avro("truncated single-object header".into()))?;
                let writer = self
                    .by_fingerprint
                    .iter()
                    .find(|(f, _)| f == fp)
                    .map(|(_, s)| s)
                    .ok_or_else(|| DecodeError::UnknownFingerprint(hex(fp)))?;
                self.avro(writer, body)
            }
            json => AuditEvent::from_json(json).map_err(|e| DecodeError::Invalid(e.to_string())),
        }
    }

    fn avro(&self, writer: &Schema, mut body: &[u8]) -> Result<AuditEvent, DecodeError> {
        let value = apache_avro::from_avro_datum(writer, &mut body, Some(&self.reader))
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        if !body.is_empty() {
            return Err(DecodeError::Avro(format!(
                "{} trailing bytes after the record",
                body.len()
            )));
        }
        let json = to_json(&value).map_err(DecodeError::Avro)?;
        let bytes = serde_json::to_vec(&json).expect("json serialisation");
        AuditEvent::from_json(&bytes).map_err(|e| DecodeError::Invalid(e.to_string()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn timestamp(us: i64) -> Result<String, String> {
    format_micros(us).ok_or_else(|| {
        format!("timestamp {us} µs since the epoch is outside the years 0001 to 9999")
    })
}

/// The JSON form `AuditEvent::from_json` validates (timestamps as RFC 3339).
fn to_json(v: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Long(i) => J::from(*i),
        Value::String(s) => J::String(s.clone()),
        Value::Uuid(u) => J::String(u.to_string()),
        Value::Enum(_, s) => J::String(s.clone()),
        Value::TimestampMicros(us) => J::String(timestamp(*us)?),
        Value::TimestampMillis(ms) => J::String(timestamp(ms.saturating_mul(1000))?),
        Value::Union(_, inner) => to_json(inner)?,
        Value::Map(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                out.insert(k.clone(), to_json(v)?);
            }
            J::Object(out)
        }
        Value::Record(fields) => {
            let mut out = serde_json::Map::new();
            for (k, v) in fields {
                // Optional fields the writer left null are simply absent in JSON.
                if matches!(v, Value::Null) || matches!(v, Value::Union(_, b) if **b == Value::Null)
                {
                    continue;
                }
                out.insert(k.clone(), to_json(v)?);
            }
            J::Object(out)
        }
        other => return Err(format!("unsupported Avro value {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;

    fn schema_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
    }

    fn decoder() -> Decoder {
        Decoder::new(
            &schema_dir(),
            &BTreeMap::from([(7, "audit_event.avsc".to_string())]),
            4096,
        )
        .unwrap()
    }

    fn avro_body(schema: &Schema, tenant: &str) -> Vec<u8> {
        let mut r = Record::new(schema).unwrap();
        r.put(
            "event_id",
            Value::Uuid("7f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6".parse().unwrap()),
        );
        r.put("occurred_at", Value::TimestampMicros(1_764_149_400_123_456));
        r.put("tenant", tenant);
        r.put(
            "actor",
            Value::Record(vec![
                ("id".into(), Value::String("u-1".into())),
                ("type".into(), Value::String("user".into())),
                (
                    "ip".into(),
                    Value::Union(1, Box::new(Value::String("10.1.2.3".into()))),
                ),
            ]),
        );
        r.put("action", "invoice.read");
        r.put(
            "resource",
            Value::Record(vec![
                ("type".into(), Value::String("invoice".into())),
                ("id".into(), Value::String("i-1".into())),
            ]),
        );
        r.put("outcome", Value::Enum(1, "denied".into()));
        r.put("source", "billing-api");
        r.put("sensitivity", Value::Enum(3, "pii".into()));
        r.put("details", Value::Union(0, Box::new(Value::Null)));
        apache_avro::to_avro_datum(schema, r).unwrap()
    }

    #[test]
    fn confluent_single_object_and_json_decode_to_the_same_event() {
        let d = decoder();
        let schema = d.reader.clone();
        let body = avro_body(&schema, "acme");
        let mut confluent = vec![0u8, 0, 0, 0, 7];
        confluent.extend(&body);
        let a = d.decode(&confluent).unwrap();
        let mut single = vec![0xC3, 0x01];
        single.extend(fingerprint(&schema));
        single.extend(&body);
        let b = d.decode(&single).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.tenant, "acme");
        assert_eq!(a.outcome.as_str(), "denied");
        assert_eq!(a.actor.ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(
            format_micros(a.occurred_at_us).unwrap(),
            "2025-11-26T09:30:00.123456Z"
        );
        assert_eq!(a.details, None);
        let json = r#"{"event_id":"7f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6","occurred_at":"2025-11-26T09:30:00.123456Z","tenant":"acme","actor":{"id":"u-1","type":"user","ip":"10.1.2.3"},"action":"invoice.read","resource":{"type":"invoice","id":"i-1"},"outcome":"denied","source":"billing-api","sensitivity":"pii"}"#;
        assert_eq!(d.decode(json.as_bytes()).unwrap(), a);
    }

    #[test]
    fn bad_messages_say_why() {
        let d = decoder();
        let body = avro_body(&d.reader, "acme");
        let mut unknown = vec![0u8, 0, 0, 0, 9];
        unknown.extend(&body);
        assert_eq!(d.decode(&unknown), Err(DecodeError::UnknownSchemaId(9)));
        let mut truncated = vec![0u8, 0, 0, 0, 7];
        truncated.extend(&body[..body.len() / 2]);
        assert!(matches!(d.decode(&truncated), Err(DecodeError::Avro(_))));
        let empty_tenant = {
            let mut v = vec![0u8, 0, 0, 0, 7];
            v.extend(avro_body(&d.reader, ""));
            v
        };
        assert!(
            matches!(d.decode(&empty_tenant), Err(DecodeError::Invalid(m)) if m.contains("tenant"))
        );
        assert!(matches!(
            d.decode(b"{\"x\":1}"),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            d.decode(&[0xC3, 0x01, 1, 2]),
            Err(DecodeError::Avro(_))
        ));
        assert_eq!(
            d.decode(&vec![b' '; 5000]),
            Err(DecodeError::Oversized {
                size: 5000,
                max: 4096
            })
        );
        assert_eq!(d.decode(b""), Err(DecodeError::Empty));
    }
}
