//! The records themselves: what is known about a request ([`Facts`], [`Completion`]) and the
//! audit events (`schemas/audit_event.avsc`) the decision log produces from it: decision,
//! completion and alert records. Pure: no Kafka here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{COMPLETION_ACTION, DECISION_ACTION, DecisionLog, NO_TENANT, SOURCE};
use crate::QueryError;
use crate::alerts::Alert;
use crate::config::SqlText;
use crate::service::{Identity, SegmentRead};

/// What is known about one request when its fate is decided. Fields stay empty when the
/// request was refused before they were learnt (no identity for a bad token, no tables for
/// bad SQL).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub decision_id: String,
    /// When the request arrived, µs since the epoch.
    pub at_us: i64,
    pub client_ip: String,
    pub identity: Option<Identity>,
    pub sql: Option<String>,
    pub justification: Option<String>,
    /// Tables the SQL reads (from its logical plan).
    pub tables: Vec<String>,
    /// The policy input and the engine's raw result, as OPA's decision log has them.
    pub input: Option<Value>,
    pub result: Option<Value>,
    pub revision: Option<String>,
    pub engine: Option<&'static str>,
    pub eval_us: Option<u64>,
    pub allow: bool,
    pub reasons: Vec<String>,
    pub flags: Vec<String>,
    /// Per table: the row filters and masks applied.
    pub filters: Option<Value>,
    pub masks: Option<Value>,
}

/// How an allowed query ended.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub code: String,
    pub message: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub duration: Duration,
    pub segments: Vec<SegmentRead>,
    /// Tenants whose rows the query could see (after the policy's row filters).
    pub tenants: Vec<String>,
    pub signed: bool,
}

impl DecisionLog {
    /// The decision record: an audit event whose details carry OPA's decision-log fields.
    pub fn decision_event(&self, f: &Facts, refusal: Option<&QueryError>) -> Value {
        let mut d: BTreeMap<&str, String> = BTreeMap::new();
        d.insert("record", "decision".into());
        d.insert("decision_id", f.decision_id.clone());
        d.insert("path", self.path.clone());
        d.insert("allow", (refusal.is_none() && f.allow).to_string());
        let code = refusal.map_or("ok", QueryError::code);
        d.insert("code", code.into());
        if let Some(e) = refusal {
            d.insert("message", e.to_string());
        }
        if let Some(v) = &f.input {
            d.insert("input", v.to_string());
        }
        if let Some(v) = &f.result {
            d.insert("result", v.to_string());
        }
        if let Some(v) = &f.revision {
            d.insert("policy_revision", v.clone());
        }
        if let Some(v) = f.engine {
            d.insert("policy_engine", v.into());
        }
        if let Some(v) = f.eval_us {
            d.insert("eval_us", v.to_string());
        }
        if !f.reasons.is_empty() {
            d.insert("reasons", json!(f.reasons).to_string());
        }
        if !f.flags.is_empty() {
            d.insert("flags", json!(f.flags).to_string());
        }
        if let Some(v) = &f.filters {
            d.insert("row_filters", v.to_string());
        }
        if let Some(v) = &f.masks {
            d.insert("masks", v.to_string());
        }
        if let Some(j) = f.justification.as_deref().filter(|j| !j.trim().is_empty()) {
            d.insert("justification", j.to_string());
        }
        if let Some(sql) = &f.sql {
            d.insert("sql_sha256", hex::encode(Sha256::digest(sql.as_bytes())));
            if self.sql_text == SqlText::Full {
                d.insert("sql", sql.clone());
            }
        }
        if let Some(id) = &f.identity {
            d.insert("roles", json!(id.roles).to_string());
        }
        let outcome = match refusal {
            None => "success",
            Some(QueryError::Denied { .. })
            | Some(QueryError::PolicyInvalid(_))
            | Some(QueryError::Unauthenticated(_)) => "denied",
            Some(_) => "error",
        };
        event(
            &f.decision_id,
            f.at_us,
            f,
            DECISION_ACTION,
            outcome,
            d.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )
    }

    /// The completion record: same decision id in its details, a fresh event id.
    pub fn completion_event(&self, f: &Facts, done: &Completion) -> Value {
        let mut d: BTreeMap<String, String> = BTreeMap::new();
        d.insert("record".into(), "completion".into());
        d.insert("decision_id".into(), f.decision_id.clone());
        d.insert("code".into(), done.code.clone());
        if let Some(m) = &done.message {
            d.insert("message".into(), m.clone());
        }
        d.insert("rows".into(), done.rows.to_string());
        d.insert("bytes".into(), done.bytes.to_string());
        d.insert("duration_ms".into(), done.duration.as_millis().to_string());
        d.insert("segments".into(), json!(done.segments).to_string());
        d.insert("tenants_read".into(), json!(done.tenants).to_string());
        d.insert("signed".into(), done.signed.to_string());
        let outcome = if done.code == "ok" {
            "success"
        } else {
            "error"
        };
        event(
            &uuid::Uuid::now_v7().to_string(),
            chrono::Utc::now().timestamp_micros(),
            f,
            COMPLETION_ACTION,
            outcome,
            d,
        )
    }
}

/// Records of one subject share a key, so one partition keeps them in order.
pub(super) fn record_key(f: &Facts) -> String {
    match &f.identity {
        Some(id) => id.subject.clone(),
        None => format!("anonymous@{}", f.client_ip),
    }
}

fn event(
    event_id: &str,
    at_us: i64,
    f: &Facts,
    action: &str,
    outcome: &str,
    details: BTreeMap<String, String>,
) -> Value {
    let (subject, kind, tenant) = match &f.identity {
        Some(id) => (
            id.subject.clone(),
            id.auth.as_str(),
            id.tenant.clone().unwrap_or_else(|| NO_TENANT.into()),
        ),
        None => ("anonymous".to_string(), "anonymous", NO_TENANT.to_string()),
    };
    let ip = f
        .client_ip
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string());
    let resource = if f.tables.is_empty() {
        "-".to_string()
    } else {
        f.tables.join(",")
    };
    json!({
        "event_id": event_id,
        "occurred_at": cairn_format::event::format_micros(at_us).unwrap_or_default(),
        "tenant": tenant,
        "actor": {"id": subject, "type": kind, "ip": ip},
        "action": action,
        "resource": {"type": "table", "id": resource},
        "outcome": outcome,
        "source": SOURCE,
        "sensitivity": "confidential",
        "details": details,
    })
}

pub(super) fn alert_event(a: &Alert) -> Value {
    let mut d: BTreeMap<String, String> = BTreeMap::new();
    d.insert("record".into(), "alert".into());
    d.insert("rule".into(), a.rule.into());
    d.insert("decision_ids".into(), json!(a.decision_ids).to_string());
    d.insert("message".into(), a.message.clone());
    d.insert("threshold".into(), a.threshold.to_string());
    d.insert("observed".into(), a.observed.to_string());
    json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "occurred_at": cairn_format::event::format_micros(chrono::Utc::now().timestamp_micros()).unwrap_or_default(),
        "tenant": a.tenant.clone().unwrap_or_else(|| NO_TENANT.into()),
        "actor": {"id": a.subject, "type": "subject", "ip": null},
        "action": format!("alert.{}", a.rule),
        "resource": {"type": "subject", "id": a.subject},
        "outcome": "success",
        "source": SOURCE,
        "sensitivity": "confidential",
        "details": d,
    })
}
