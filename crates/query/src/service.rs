//! One request's path: limits → analysis (what the SQL reads) → one policy decision →
//! views that enforce it → execution under a timeout, a memory limit and result limits.
//! No data is read before the decision allows the query.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_policy::{
    Decision, Engine, Input, Op, RequestContext, Subject, TableAccess, TimeRange, decide,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::QueryError;
use crate::catalog::{Catalog, Excluded, Segment};
use crate::config::LimitsConfig;
use crate::decision_log::Facts;
use crate::metrics::Metrics;
use crate::sql::{allow_listed, analyze, read_only, sql_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    Oidc,
    ApiKey,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Oidc => "oidc",
            AuthKind::ApiKey => "api_key",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
    pub auth: AuthKind,
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub client: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default)]
    pub justification: Option<String>,
    /// `json` (default), `csv` or `arrow` (Arrow IPC stream); the Accept header also chooses.
    #[serde(default)]
    pub format: Option<String>,
    /// Sign the result with the service's key (JSON results only; FORMAT.md §10).
    #[serde(default)]
    pub sign: bool,
}

/// A segment a query read, as an auditor cites it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentRead {
    pub table: String,
    pub manifest: String,
    pub manifest_sha256: String,
    pub merkle_root: String,
}

#[derive(Debug)]
pub struct QueryOutput {
    pub decision_id: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    pub segments: Vec<SegmentRead>,
    /// Tenants whose rows the query could see (after the row filters).
    pub tenants: Vec<String>,
    pub excluded: Vec<Excluded>,
    pub decision: Decision,
    pub policy_revision: String,
    pub policy_engine: &'static str,
}

/// A query the policy allowed, holding its concurrency slot until it has run.
pub struct Decided<'a> {
    _slot: tokio::sync::SemaphorePermit<'a>,
    analysis: crate::sql::Analysis,
    decision: Decision,
    revision: String,
    engine: &'static str,
}

pub struct QueryService {
    catalog: Arc<Catalog>,
    engine: Arc<dyn Engine>,
    limits: LimitsConfig,
    policy_timeout: Duration,
    slots: Semaphore,
    pub metrics: Metrics,
}

impl QueryService {
    pub fn new(
        catalog: Arc<Catalog>,
        engine: Arc<dyn Engine>,
        limits: LimitsConfig,
        policy_timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        let slots = Semaphore::new(limits.max_concurrent);
        QueryService {
            catalog,
            engine,
            limits,
            policy_timeout,
            slots,
            metrics,
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn policy_timeout(&self) -> Duration {
        self.policy_timeout
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    pub fn ready(&self) -> Result<(), QueryError> {
        if self.catalog.refreshes() == 0 {
            return Err(QueryError::NotReady(
                "the store has not been listed yet".into(),
            ));
        }
        Ok(())
    }

    fn input(
        &self,
        caller: &Caller,
        tables: BTreeMap<String, TableAccess>,
        range: Option<TimeRange>,
        justification: &str,
    ) -> Input {
        let id = &caller.identity;
        Input {
            subject: Subject {
                id: id.subject.clone(),
                roles: id.roles.clone(),
                tenant: id.tenant.clone(),
                auth: id.auth.as_str().into(),
            },
            tables,
            time_range: range,
            request: RequestContext {
                now_us: chrono::Utc::now().timestamp_micros(),
                client: caller.client.clone(),
                justification: justification.trim().to_string(),
            },
        }
    }

    /// Everything up to and including the one policy decision: limits, analysis (what the
    /// SQL reads), the decision. Reads no data. Fills `facts` with what the decision record
    /// needs, also when it refuses.
    pub async fn decide<'a>(
        &'a self,
        caller: &Caller,
        req: &QueryRequest,
        facts: &mut Facts,
    ) -> Result<Decided<'a>, QueryError> {
        self.ready()?;
        let slot = self
            .slots
            .try_acquire()
            .map_err(|_| QueryError::Busy(self.limits.max_concurrent))?;
        if req.sql.len() > self.limits.max_sql_bytes {
            return Err(QueryError::TooLarge(format!(
                "the SQL text is {} bytes; the limit is {} (limits.max_sql_bytes)",
                req.sql.len(),
                self.limits.max_sql_bytes
            )));
        }
        let schema = self.catalog.schema();
        let analysis = analyze(&req.sql, &self.catalog.table_names(), &schema).await?;
        facts.tables = analysis.tables.keys().cloned().collect();
        let tables = analysis
            .tables
            .iter()
            .map(|(t, cols)| {
                (
                    t.clone(),
                    TableAccess {
                        columns: cols.iter().cloned().collect(),
                    },
                )
            })
            .collect();
        let range = (analysis.from_us.is_some() || analysis.to_us.is_some()).then_some(TimeRange {
            from_us: analysis.from_us,
            to_us: analysis.to_us,
        });
        let input = self.input(
            caller,
            tables,
            range,
            req.justification.as_deref().unwrap_or(""),
        );
        let outcome = decide(self.engine.as_ref(), &input, self.policy_timeout).await;
        self.metrics
            .decision(outcome.decision.allow, outcome.elapsed);
        facts.input = serde_json::to_value(&input).ok();
        facts.result = outcome.result.clone();
        facts.revision = Some(outcome.revision.clone());
        facts.engine = Some(outcome.engine);
        facts.eval_us = Some(outcome.elapsed.as_micros() as u64);
        facts.allow = outcome.decision.allow;
        facts.reasons = outcome.decision.reasons.clone();
        facts.flags = outcome.decision.flags.clone();
        if let Some(e) = &outcome.error {
            facts.reasons.push(e.clone());
        }
        if outcome.decision.allow {
            let per_table = |f: &dyn Fn(&cairn_policy::TableGrant) -> serde_json::Value| {
                serde_json::Value::Object(
                    outcome
                        .decision
                        .tables
                        .iter()
                        .map(|(t, g)| (t.clone(), f(g)))
                        .collect(),
                )
            };
            facts.filters = Some(per_table(&|g| serde_json::json!(g.row_filters)));
            facts.masks = Some(per_table(&|g| serde_json::json!(g.masks)));
        }
        tracing::info!(
            decision_id = %facts.decision_id,
            subject = %caller.identity.subject,
            allow = outcome.decision.allow,
            revision = %outcome.revision,
            reasons = ?outcome.decision.reasons,
            "policy decision"
        );
        if !outcome.decision.allow {
            return Err(QueryError::Denied {
                decision_id: facts.decision_id.clone(),
                reasons: outcome.decision.reasons,
            });
        }
        Ok(Decided {
            _slot: slot,
            analysis,
            decision: outcome.decision,
            revision: outcome.revision,
            engine: outcome.engine,
        })
    }

    /// Runs a query the policy allowed (call only once its decision record is acknowledged).
    pub async fn run(
        &self,
        decided: Decided<'_>,
        req: &QueryRequest,
        decision_id: &str,
    ) -> Result<QueryOutput, QueryError> {
        let Decided {
            _slot,
            analysis,
            decision,
            revision,
            engine,
        } = decided;
        let max_rows = decision
            .limits
            .max_rows
            .map_or(self.limits.max_rows, |p| p.min(self.limits.max_rows));
        // One timeout over the policy's filtering and the caller's query.
        let start = Instant::now();
        let work = async {
            let (ctx, segments, tenants) =
                self.enforced_session(&analysis.tables, &decision).await?;
            let out = self.execute(&ctx, &req.sql, max_rows).await?;
            Ok::<_, QueryError>((segments, tenants, out))
        };
        let (segments, tenants, (out_schema, batches, rows)) =
            tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), work)
                .await
                .map_err(|_| QueryError::Timeout(self.limits.timeout_ms))??;
        self.metrics.query_time(start.elapsed());
        self.metrics.segments_read(segments.len());
        Ok(QueryOutput {
            decision_id: decision_id.to_string(),
            schema: out_schema,
            batches,
            rows,
            segments,
            tenants,
            excluded: self.catalog.excluded(),
            decision,
            policy_revision: revision,
            policy_engine: engine,
        })
    }

    /// A session for this request only, holding the policy's view of each table read.
    async fn enforced_session(
        &self,
        tables: &BTreeMap<String, std::collections::BTreeSet<String>>,
        decision: &Decision,
    ) -> Result<(SessionContext, Vec<SegmentRead>, Vec<String>), QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_mb as usize * 1024 * 1024, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(2);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let schema = self.catalog.schema();
        let mut read = Vec::new();
        let mut tenants = std::collections::BTreeSet::new();
        for table in tables.keys() {
            let grant = decision.tables.get(table).ok_or_else(|| {
                QueryError::PolicyInvalid(format!("no grant for table `{table}`"))
            })?;
            let (segments, allowed) = self.prune(table, grant);
            crate::enforce::register_view(&ctx, table, &schema, &segments, grant).await?;
            read.extend(segments.iter().map(|s| segment_read(table, s)));
            // The tenants whose rows the query can see: those in the segments read that the
            // row filters let through.
            for s in &segments {
                for t in &s.manifest.manifest.tenants {
                    if allowed.as_ref().is_none_or(|a| a.contains(t)) {
                        tenants.insert(t.clone());
                    }
                }
            }
        }
        Ok((ctx, read, tenants.into_iter().collect()))
    }

    /// Segments that can hold rows the policy's filters let through (manifest tenants and
    /// time bounds): a tenant-scoped caller's query never touches another tenant's segments.
    /// Also returns the tenants the filters allow (`None`: every tenant).
    fn prune(
        &self,
        table: &str,
        grant: &cairn_policy::TableGrant,
    ) -> (Vec<Arc<Segment>>, Option<Vec<String>>) {
        let mut tenants: Option<Vec<String>> = None;
        let mut from = None;
        for f in &grant.row_filters {
            match (f.column.as_str(), f.op) {
                ("tenant", Op::Eq | Op::In) => {
                    let vals: Vec<String> = f
                        .values
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect();
                    tenants = Some(match tenants {
                        Some(prev) => prev.into_iter().filter(|t| vals.contains(t)).collect(),
                        None => vals,
                    });
                }
                ("occurred_at", Op::Gte | Op::Gt) => {
                    from = f.values.first().and_then(|v| v.as_i64())
                }
                _ => {}
            }
        }
        let segments = self.catalog.segments(table, tenants.as_deref(), from, None);
        (segments, tenants)
    }

    async fn execute(
        &self,
        ctx: &SessionContext,
        sql: &str,
        max_rows: u64,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, usize), QueryError> {
        let max_bytes = self.limits.max_bytes;
        let work = async {
            let df = ctx
                .sql_with_options(sql, read_only())
                .await
                .map_err(sql_error)?;
            allow_listed(df.logical_plan())?;
            let limit = usize::try_from(max_rows.saturating_add(1)).unwrap_or(usize::MAX);
            let df = df.limit(0, Some(limit)).map_err(sql_error)?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(sql_error)?;
            let (mut batches, mut rows, mut bytes) = (Vec::new(), 0usize, 0u64);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(sql_error)?;
                rows += batch.num_rows();
                bytes += slice_bytes(&batch);
                if rows as u64 > max_rows {
                    return Err(QueryError::RowLimit(max_rows));
                }
                if bytes > max_bytes {
                    return Err(QueryError::ByteLimit(max_bytes));
                }
                batches.push(batch);
            }
            Ok((schema, batches, rows))
        };
        work.await
    }
}

/// The bytes a batch's rows occupy (not the shared buffers a slice points into).
fn slice_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
        .sum()
}

fn segment_read(table: &str, s: &Segment) -> SegmentRead {
    SegmentRead {
        table: table.to_string(),
        manifest: s.object.clone(),
        manifest_sha256: s.manifest_sha256.clone(),
        merkle_root: s.manifest.manifest.merkle_root.as_str().to_string(),
    }
}
