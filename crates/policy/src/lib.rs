//! cairn-policy: one authorization decision per query, from Rego policies.
//!
//! Owns the decision contract ([`Input`] → [`Decision`], docs/POLICY.md), the [`Engine`]
//! trait and its two engines — [`RegorusEngine`] (in-process Rego, reloads `policies/*.rego`
//! when they change) and [`WasmEngine`] (a bundle from `opa build -t wasm`, on wasmtime) —
//! and [`decide`], which makes every failure a denial: an undefined result, an engine error,
//! a result that is not a decision, or a timeout all deny, with the reason.
//!
//! The only crate that touches a Rego engine. Depends on no other cairn crate: the query
//! service builds the [`Input`] from its plan and compiles the [`Decision`] into it.

mod decision;
mod rego;
mod wasm;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use decision::{
    Decision, Filter, Input, Limits, Mask, MaskKind, Op, RequestContext, Subject, TableAccess,
    TableGrant, TimeRange,
};
pub use rego::RegorusEngine;
pub use wasm::WasmEngine;

/// The entrypoint of the shipped policies (`policies/authz.rego`), in OPA's slash form.
pub const DEFAULT_ENTRYPOINT: &str = "cairn/authz/decision";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy files or bundle cannot be loaded; permanent until they are fixed.
    #[error("loading the policy from {path}: {message}")]
    Load { path: String, message: String },
    #[error("the policy's entrypoint {entrypoint} is undefined for this input (treated as deny)")]
    Undefined { entrypoint: String },
    #[error("evaluating the policy: {0}")]
    Evaluation(String),
    #[error("the policy did not decide within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    InvalidDecision(String),
}

impl PolicyError {
    /// Whether asking again can give another answer (a timeout under load can; a broken
    /// policy cannot until it is fixed).
    pub fn is_transient(&self) -> bool {
        matches!(self, PolicyError::Timeout(_))
    }
}

/// What an engine returned, before it is checked against the contract.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The entrypoint's value as JSON.
    pub result: serde_json::Value,
    /// The revision of the policy that produced it.
    pub revision: String,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A Rego engine. Implementations hold no per-caller state between evaluations.
pub trait Engine: Send + Sync {
    /// `regorus` or `opa-wasm`, for decision records.
    fn name(&self) -> &'static str;
    /// The revision in force: `sha256:` and the hash of the policy files or of the bundle.
    fn revision(&self) -> String;
    /// Evaluates the entrypoint for `input`.
    fn evaluate<'a>(&'a self, input: &'a Input) -> BoxFuture<'a, Result<Evaluated, PolicyError>>;
}

/// One decision, always made: [`Outcome::decision`] denies whenever the engine failed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    /// The engine's raw result when it gave one (decision logs carry it).
    pub result: Option<serde_json::Value>,
    pub revision: String,
    pub engine: &'static str,
    pub elapsed: Duration,
    /// Why the decision is a denial that the policy did not make itself.
    pub error: Option<String>,
}

/// Asks `engine` about `input`, bounded by `timeout`; fails closed.
pub async fn decide(engine: &dyn Engine, input: &Input, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let evaluated = match tokio::time::timeout(timeout, engine.evaluate(input)).await {
        Ok(r) => r,
        Err(_) => Err(PolicyError::Timeout(timeout)),
    };
    let elapsed = start.elapsed();
    let (decision, result, revision, error) = match evaluated {
        Ok(ev) => match Decision::from_result(&ev.result, input) {
            Ok(d) => (d, Some(ev.result), ev.revision, None),
            Err(e) => {
                let e = PolicyError::InvalidDecision(e).to_string();
                (
                    Decision::deny(e.clone()),
                    Some(ev.result),
                    ev.revision,
                    Some(e),
                )
            }
        },
        Err(e) => {
            let e = e.to_string();
            (Decision::deny(e.clone()), None, engine.revision(), Some(e))
        }
    };
    if let Some(e) = &error {
        tracing::warn!(engine = engine.name(), revision = %revision, error = %e, "policy failed; denying");
    }
    Outcome {
        decision,
        result,
        revision,
        engine: engine.name(),
        elapsed,
        error,
    }
}

/// `sha256:<hex>` over named parts, each framed by its name and length (so moving bytes
/// between files changes the revision).
pub(crate) fn revision_of<'a>(parts: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, bytes) in parts {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests;
