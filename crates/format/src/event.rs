//! The audit event model and its validation from JSON.
//!
//! Field set and types follow `schemas/audit_event.avsc`. JSON input is strict: unknown
//! fields, wrong types, missing required fields, malformed UUIDs, timestamps or IPs are all
//! errors that name the field.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// A stream: a source id (file source) or Kafka topic, and a partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub source: String,
    pub partition: i32,
}

impl StreamId {
    /// Validates the source id against Kafka's topic-name rules (`[A-Za-z0-9._-]{1,249}`, not
    /// `.` or `..`) so every stream name is also a safe object-name component.
    pub fn new(source: impl Into<String>, partition: i32) -> Result<Self, EventError> {
        let source = source.into();
        let valid_chars = source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if source.is_empty()
            || source.len() > 249
            || !valid_chars
            || source == "."
            || source == ".."
        {
            return Err(EventError::InvalidStream(format!(
                "source id {source:?} is not valid: use 1 to 249 characters from [A-Za-z0-9._-] (Kafka topic rules)"
            )));
        }
        if partition < 0 {
            return Err(EventError::InvalidStream(format!(
                "partition {partition} is negative"
            )));
        }
        Ok(StreamId { source, partition })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.partition)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    Public,
    Internal,
    Confidential,
    Pii,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Public => "public",
            Sensitivity::Internal => "internal",
            Sensitivity::Confidential => "confidential",
            Sensitivity::Pii => "pii",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// One validated audit event. `occurred_at_us` is microseconds since the Unix epoch, UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub event_id: String,
    pub occurred_at_us: i64,
    pub tenant: String,
    pub actor: Actor,
    pub action: String,
    pub resource: Resource,
    pub outcome: Outcome,
    pub source: String,
    pub sensitivity: Sensitivity,
    /// Keys are unique and iterate in byte order.
    pub details: Option<BTreeMap<String, String>>,
}

/// A validated event borrowing its strings: from the JSON line it was parsed from
/// ([`AuditEvent::with_json`]: escape-free strings are not copied) or from an [`AuditEvent`]
/// ([`AuditEvent::view`]). The parser threads turn these into Arrow rows directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventView<'a> {
    pub event_id: &'a str,
    pub occurred_at_us: i64,
    pub tenant: &'a str,
    pub actor_id: &'a str,
    pub actor_type: &'a str,
    pub actor_ip: Option<&'a str>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub outcome: Outcome,
    pub source: &'a str,
    pub sensitivity: Sensitivity,
    /// Sorted by key bytes; keys are unique.
    pub details: Option<Vec<(&'a str, &'a str)>>,
}

impl AuditEvent {
    pub fn view(&self) -> EventView<'_> {
        EventView {
            event_id: &self.event_id,
            occurred_at_us: self.occurred_at_us,
            tenant: &self.tenant,
            actor_id: &self.actor.id,
            actor_type: &self.actor.kind,
            actor_ip: self.actor.ip.as_deref(),
            action: &self.action,
            resource_type: &self.resource.kind,
            resource_id: &self.resource.id,
            outcome: self.outcome,
            source: &self.source,
            sensitivity: self.sensitivity,
            details: self
                .details
                .as_ref()
                .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
        }
    }
}

impl EventView<'_> {
    pub fn to_owned_event(&self) -> AuditEvent {
        AuditEvent {
            event_id: self.event_id.to_string(),
            occurred_at_us: self.occurred_at_us,
            tenant: self.tenant.to_string(),
            actor: Actor {
                id: self.actor_id.to_string(),
                kind: self.actor_type.to_string(),
                ip: self.actor_ip.map(str::to_string),
            },
            action: self.action.to_string(),
            resource: Resource {
                kind: self.resource_type.to_string(),
                id: self.resource_id.to_string(),
            },
            outcome: self.outcome,
            source: self.source.to_string(),
            sensitivity: self.sensitivity,
            details: self.details.as_ref().map(|d| {
                d.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
        }
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug, PartialEq)]
struct JsonStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonStr<'de>;
            // The same words as `String`'s, so error messages did not change with borrowing.
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawActor<'a> {
    #[serde(borrow)]
    id: JsonStr<'a>,
    #[serde(rename = "type", borrow)]
    kind: JsonStr<'a>,
    #[serde(default, borrow)]
    ip: Option<JsonStr<'a>>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawResource<'a> {
    #[serde(rename = "type", borrow)]
    kind: JsonStr<'a>,
    #[serde(borrow)]
    id: JsonStr<'a>,
}

type RawDetails<'a> = Vec<(JsonStr<'a>, JsonStr<'a>)>;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    #[serde(borrow)]
    event_id: JsonStr<'a>,
    #[serde(borrow)]
    occurred_at: JsonStr<'a>,
    #[serde(borrow)]
    tenant: JsonStr<'a>,
    #[serde(borrow)]
    actor: RawActor<'a>,
    #[serde(borrow)]
    action: JsonStr<'a>,
    #[serde(borrow)]
    resource: RawResource<'a>,
    outcome: Outcome,
    #[serde(borrow)]
    source: JsonStr<'a>,
    sensitivity: Sensitivity,
    #[serde(default, borrow, deserialize_with = "unique_details")]
    details: Option<RawDetails<'a>>,
}

/// `details` as entries sorted by key, refusing duplicate keys (a plain map would silently
/// keep the last).
fn unique_details<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RawDetails<'a>>, D::Error> {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = Option<RawDetails<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of strings to strings, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut a: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out: RawDetails<'de> = Vec::new();
            while let Some((k, v)) = a.next_entry::<JsonStr<'de>, JsonStr<'de>>()? {
                out.push((k, v));
            }
            out.sort_by(|x, y| x.0.0.as_bytes().cmp(y.0.0.as_bytes()));
            if let Some(w) = out.windows(2).find(|w| w[0].0.0 == w[1].0.0) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{}`",
                    w[0].0.0
                )));
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(Unique)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The input is not a JSON object of the schema's shape; `field` is the JSON path.
    #[error("field `{field}`: {message}")]
    Field { field: String, message: String },
    /// The input is not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    InvalidStream(String),
}

fn field_err(field: &str, message: impl Into<String>) -> EventError {
    EventError::Field {
        field: field.to_string(),
        message: message.into(),
    }
}

impl AuditEvent {
    /// Parses and validates one JSON object (one line of a JSONL file).
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        Self::with_json(bytes, |v| v.to_owned_event())
    }

    /// Parses and validates one JSON object and hands `f` the event, borrowing the input's
    /// strings: no owned copy is made of what `f` does not keep.
    pub fn with_json<R>(
        bytes: &[u8],
        f: impl FnOnce(&EventView<'_>) -> R,
    ) -> Result<R, EventError> {
        // The scanner for the common shape, then serde without path tracking; re-parse with
        // it only to explain an error.
        if let Some(raw) = fast::parse(bytes) {
            return raw.validate(f);
        }
        if let Ok(raw) = serde_json::from_slice::<RawEvent<'_>>(bytes) {
            return raw.validate(f);
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: RawEvent<'_> = match serde_path_to_error::deserialize(de) {
            Ok(raw) => raw,
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(EventError::Json(inner.to_string()));
                }
                let msg = strip_position(&inner.to_string());
                // serde reports a missing field at the enclosing object: name the field itself.
                let names_field =
                    msg.starts_with("missing field") || msg.starts_with("duplicate field");
                let field = match named_field(&msg) {
                    Some(f) if names_field && path == "." => f,
                    Some(f) if names_field => format!("{path}.{f}"),
                    _ => path,
                };
                return Err(EventError::Field {
                    field,
                    message: msg,
                });
            }
        };
        raw.validate(f)
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn named_field(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(msg[start..end].to_string())
}

fn non_empty(field: &str, v: &str) -> Result<(), EventError> {
    if v.is_empty() {
        Err(field_err(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// The earliest instant a timestamp may denote: 0001-01-01T00:00:00.000000Z (docs/FORMAT.md §0:
/// four-digit years from 0001, which every verifier's date library can represent).
pub const MIN_TIMESTAMP_US: i64 = -62_135_596_800_000_000;
/// The latest: 9999-12-31T23:59:59.999999Z.
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999;

/// Parses an RFC 3339 timestamp into microseconds since the epoch, UTC. Sub-microsecond
/// digits are rejected rather than silently truncated, and so are instants outside the years
/// 0001–9999 (a manifest could not state them, docs/FORMAT.md §0).
pub fn parse_rfc3339_micros(s: &str) -> Result<i64, String> {
    let dt = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp ({e})"))?;
    if dt.timestamp_subsec_nanos() % 1000 != 0 {
        return Err(format!(
            "{s:?} has sub-microsecond precision; cairn stores microseconds"
        ));
    }
    let us = dt.timestamp_micros();
    if !(MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&us) {
        return Err(format!(
            "{s:?} is outside the years 0001 to 9999 (in UTC) that cairn can seal"
        ));
    }
    Ok(us)
}

/// Formats microseconds since the epoch in the canonical form of docs/FORMAT.md §0
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); `None` outside the years 0001–9999, which that form
/// cannot express.
pub fn format_micros(us: i64) -> Option<String> {
    if !(MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&us) {
        return None;
    }
    chrono::DateTime::from_timestamp_micros(us)
        .map(|dt| dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// Parses a timestamp in the canonical form of docs/FORMAT.md §0 and nothing else: exactly
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, a valid UTC date and time in the years 0001–9999.
pub fn parse_canonical_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..26];
    let shape = b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z'
        && digits
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit));
    if !shape {
        return None;
    }
    let dt = chrono::NaiveDateTime::parse_from_str(&s[..26], "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let us = dt.and_utc().timestamp_micros();
    // The round trip rejects what the parser tolerates (a leap second, year 0000).
    (format_micros(us).as_deref() == Some(s)).then_some(us)
}

impl RawEvent<'_> {
    fn validate<R>(&self, f: impl FnOnce(&EventView<'_>) -> R) -> Result<R, EventError> {
        let event_id: &str = &self.event_id.0;
        uuid::Uuid::try_parse(event_id)
            .map_err(|_| field_err("event_id", format!("{event_id:?} is not a UUID")))?;
        let occurred_at_us =
            parse_rfc3339_micros(&self.occurred_at.0).map_err(|m| field_err("occurred_at", m))?;
        let v = EventView {
            event_id,
            occurred_at_us,
            tenant: &self.tenant.0,
            actor_id: &self.actor.id.0,
            actor_type: &self.actor.kind.0,
            actor_ip: self.actor.ip.as_ref().map(|ip| &*ip.0),
            action: &self.action.0,
            resource_type: &self.resource.kind.0,
            resource_id: &self.resource.id.0,
            outcome: self.outcome,
            source: &self.source.0,
            sensitivity: self.sensitivity,
            details: self
                .details
                .as_ref()
                .map(|d| d.iter().map(|(k, v)| (&*k.0, &*v.0)).collect()),
        };
        non_empty("tenant", v.tenant)?;
        non_empty("actor.id", v.actor_id)?;
        non_empty("actor.type", v.actor_type)?;
        if let Some(ip) = v.actor_ip {
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| field_err("actor.ip", format!("{ip:?} is not an IP address")))?;
        }
        non_empty("action", v.action)?;
        non_empty("resource.type", v.resource_type)?;
        non_empty("resource.id", v.resource_id)?;
        non_empty("source", v.source)?;
        Ok(f(&v))
    }
}

mod fast;

#[cfg(test)]
mod tests;
