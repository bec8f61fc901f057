//! The decision contract (docs/POLICY.md): what cairn asks a policy, and the only shape of
//! answer it accepts. Anything else from a policy is an error, and an error is a denial.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one query asks: who, which tables and columns, and in what context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub subject: Subject,
    /// Every table the query reads, with the columns it touches (from the logical plan).
    pub tables: BTreeMap<String, TableAccess>,
    /// The time bounds the query states on `occurred_at`, when it states them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<TimeRange>,
    pub request: RequestContext,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub id: String,
    pub roles: Vec<String>,
    /// `None` when the identity carries no tenant (an auditor's usually does not).
    pub tenant: Option<String>,
    /// How the caller authenticated: `oidc` or `api_key`.
    pub auth: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableAccess {
    pub columns: Vec<String>,
}

/// Microseconds since the Unix epoch, UTC; either bound may be open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestContext {
    /// The time of the request, microseconds since the Unix epoch (policies compute windows
    /// from it; they never read a clock).
    pub now_us: i64,
    pub client: String,
    /// The caller's stated reason, `""` when none was given.
    pub justification: String,
}

/// A policy's answer. `deny_unknown_fields` throughout: a misspelt key in a policy is an
/// error (and so a denial), never a silently ignored restriction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub allow: bool,
    pub reasons: Vec<String>,
    pub flags: Vec<String>,
    /// One entry per table the query reads when `allow`; empty when denied.
    pub tables: BTreeMap<String, TableGrant>,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableGrant {
    /// Every row the query may see satisfies all of these.
    pub row_filters: Vec<Filter>,
    /// Column (dotted path for nested fields, e.g. `actor.ip`) → how it is masked.
    pub masks: BTreeMap<String, Mask>,
}

/// `column op values`, as data: cairn compiles it into an expression; no policy text is SQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub column: String,
    pub op: Op,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    pub kind: MaskKind,
    /// The replacement, for `replace` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Mask only the rows matching this filter; every row when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// The value becomes NULL.
    Null,
    /// The value becomes `value`.
    Replace,
    /// The value becomes the lowercase hex SHA-256 of its text.
    Hash,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
}

impl Decision {
    /// The decision cairn acts on when a policy gives none it can use.
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision {
            allow: false,
            reasons: vec![reason.into()],
            flags: Vec::new(),
            tables: BTreeMap::new(),
            limits: Limits::default(),
        }
    }

    /// Parses a policy's result and checks it against the input it answers. Errors name what
    /// is wrong, for the policy author.
    pub fn from_result(result: &Value, input: &Input) -> Result<Decision, String> {
        let decision: Decision = serde_json::from_value(result.clone())
            .map_err(|e| format!("the policy's result is not a decision (docs/POLICY.md): {e}"))?;
        decision.check(input)?;
        Ok(decision)
    }

    fn check(&self, input: &Input) -> Result<(), String> {
        if !self.allow {
            return Ok(());
        }
        for name in input.tables.keys() {
            if !self.tables.contains_key(name) {
                return Err(format!(
                    "the policy allowed the query but gave no grant for table `{name}`"
                ));
            }
        }
        for (name, grant) in &self.tables {
            for f in grant
                .row_filters
                .iter()
                .chain(grant.masks.values().filter_map(|m| m.when.as_ref()))
            {
                f.check().map_err(|e| format!("table `{name}`: {e}"))?;
            }
            for (column, mask) in &grant.masks {
                match (mask.kind, &mask.value) {
                    (MaskKind::Replace, None) => {
                        return Err(format!(
                            "table `{name}`: the replace mask of `{column}` has no value"
                        ));
                    }
                    (MaskKind::Null | MaskKind::Hash, Some(_)) => {
                        return Err(format!(
                            "table `{name}`: the mask of `{column}` has a value but is not `replace`"
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl Filter {
    fn check(&self) -> Result<(), String> {
        let n = self.values.len();
        let ok = match self.op {
            Op::In | Op::NotIn => n >= 1,
            _ => n == 1,
        };
        if !ok {
            return Err(format!(
                "the filter on `{}` has {n} values; `{:?}` takes {}",
                self.column,
                self.op,
                if matches!(self.op, Op::In | Op::NotIn) {
                    "one or more"
                } else {
                    "exactly one"
                }
            ));
        }
        if let Some(v) = self
            .values
            .iter()
            .find(|v| !(v.is_string() || v.is_number() || v.is_boolean()))
        {
            return Err(format!(
                "the filter on `{}` has the value {v}; values are strings, numbers or booleans",
                self.column
            ));
        }
        Ok(())
    }
}
