//! cairn-query: the query service. Every request is authenticated ([`auth`]), planned
//! read-only against empty tables to learn what it reads ([`sql`]), decided once by the
//! policy (cairn-policy), and only then run — over views that apply the decision's row
//! filters and masks beneath the user's SQL ([`enforce`]), on segments admitted only after
//! verification ([`catalog`]). [`service`] is that path; [`http`] serves it. Every decision
//! is recorded by [`decision_log`] on Kafka and acknowledged before any data is read;
//! [`alerts`] watches those decisions.
//!
//! A reader: never depends on the sealer or ingest, never writes to a store, and builds no
//! object_store client (cairn-store hands it a read-only [`cairn_store::StoreReader`]).
//! Policy engines are cairn-policy's; this crate only builds their input and compiles their
//! output.

pub mod alerts;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod decision_log;
pub mod enforce;
pub mod http;
pub mod metrics;
pub mod oidc;
pub mod service;
pub mod sql;

pub use config::QueryConfig;
pub use service::{Caller, QueryOutput, QueryRequest, QueryService};

/// Where in the SQL text an error is, 1-based as DataFusion and sqlparser report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SqlPosition {
    pub line: u64,
    pub column: u64,
}

/// Every way a request can fail, each with a stable code and HTTP status (docs/QUERY.md).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    BadRequest(String),
    /// SQL that does not parse or plan; `position` is where DataFusion located the problem
    /// (1-based line and column), when it did.
    #[error("{message}")]
    BadSql {
        message: String,
        position: Option<SqlPosition>,
    },
    #[error("{0}")]
    NotAllowed(String),
    #[error("denied by policy: {}", reasons.join("; "))]
    Denied {
        decision_id: String,
        reasons: Vec<String>,
    },
    #[error("the policy's decision cannot be enforced, so the query is denied: {0}")]
    PolicyInvalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("the result has more than {0} rows; narrow the query or aggregate")]
    RowLimit(u64),
    #[error("the result is larger than {0} bytes; select fewer columns or rows")]
    ByteLimit(u64),
    #[error("the query needs more memory than its limit: {0}")]
    MemoryLimit(String),
    #[error("the query did not finish within {0} ms and was cancelled")]
    Timeout(u64),
    #[error("the query failed: {0}")]
    Execution(String),
    #[error("{0} queries are already running; retry shortly")]
    Busy(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("not ready: {0}")]
    NotReady(String),
    /// The decision record was not acknowledged, so nothing was read (fail closed).
    #[error("{0}; retry when /readyz reports ready")]
    DecisionLogUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Unauthenticated(_) => "unauthenticated",
            QueryError::BadRequest(_) => "bad_request",
            QueryError::BadSql { .. } => "bad_sql",
            QueryError::NotAllowed(_) => "not_allowed",
            QueryError::Denied { .. } => "denied",
            QueryError::PolicyInvalid(_) => "policy_error",
            QueryError::TooLarge(_) => "request_too_large",
            QueryError::RowLimit(_) => "row_limit",
            QueryError::ByteLimit(_) => "byte_limit",
            QueryError::MemoryLimit(_) => "memory_limit",
            QueryError::Timeout(_) => "timeout",
            QueryError::Execution(_) => "query_failed",
            QueryError::Busy(_) => "busy",
            QueryError::NotReady(_) => "not_ready",
            QueryError::DecisionLogUnavailable(_) => "decision_log_unavailable",
            QueryError::NotFound(_) => "not_found",
            QueryError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            QueryError::Unauthenticated(_) => 401,
            QueryError::BadRequest(_)
            | QueryError::BadSql { .. }
            | QueryError::NotAllowed(_)
            | QueryError::Execution(_) => 400,
            QueryError::Denied { .. } | QueryError::PolicyInvalid(_) => 403,
            QueryError::TooLarge(_) => 413,
            QueryError::NotFound(_) => 404,
            QueryError::RowLimit(_)
            | QueryError::ByteLimit(_)
            | QueryError::MemoryLimit(_)
            | QueryError::Timeout(_) => 422,
            QueryError::Busy(_)
            | QueryError::NotReady(_)
            | QueryError::DecisionLogUnavailable(_) => 503,
            QueryError::Internal(_) => 500,
        }
    }
}
