//! The HTTP surface (docs/QUERY.md, docs/openapi.yaml): `POST /v1/query`, `GET /v1/tables`,
//! `/metrics`, `/healthz`, `/readyz`. Every error is JSON `{"error": {"code", "message", …}}`
//! with a stable code; a caller's mistake is a 4xx, never a 500.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_format::{Digest, ResultSegment, ResultStatement, SigningKey};
use cairn_policy::{Input, RequestContext, Subject, TableAccess, decide};
use datafusion::arrow::array::RecordBatch;
use serde_json::{Value, json};

use crate::QueryError;
use crate::auth::Authenticator;
use crate::decision_log::{Completion, DecisionLog, Facts};
use crate::metrics::CONTENT_TYPE;
use crate::service::{Caller, Decided, QueryOutput, QueryRequest, QueryService};

pub struct App {
    pub service: QueryService,
    pub auth: Authenticator,
    pub max_body: usize,
    /// Every request's decision is recorded here before any data is read.
    pub log: Arc<DecisionLog>,
    /// Signs results on request (`"sign": true`).
    pub signer: Option<SigningKey>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/query", post(query))
        .route("/v1/tables", get(tables))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(|| async {
            error(&QueryError::NotFound(
                "no such endpoint (see docs/openapi.yaml)".into(),
            ))
            .1
        })
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

fn error(e: &QueryError) -> (&'static str, Response) {
    error_for(e, None)
}

/// An error response; `decision_id` when the request's decision record was acknowledged.
fn error_for(e: &QueryError, decision_id: Option<&str>) -> (&'static str, Response) {
    let mut body = json!({"code": e.code(), "message": e.to_string()});
    if let Some(id) = decision_id {
        body["decision_id"] = json!(id);
    }
    if let QueryError::Denied {
        decision_id,
        reasons,
    } = e
    {
        body["decision_id"] = json!(decision_id);
        body["reasons"] = json!(reasons);
    }
    if let QueryError::BadSql {
        position: Some(p), ..
    } = e
    {
        body["position"] = json!(p);
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(json!({"error": body}))).into_response();
    if let Some(v) = decision_id.and_then(|id| header::HeaderValue::from_str(id).ok()) {
        resp.headers_mut().insert("x-cairn-decision-id", v);
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    (e.code(), resp)
}

async fn caller(app: &App, headers: &HeaderMap, addr: SocketAddr) -> Result<Caller, QueryError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = text("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    let identity = app.auth.authenticate(text("x-api-key"), bearer).await?;
    Ok(Caller {
        identity,
        client: addr.ip().to_string(),
    })
}

async fn query(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut facts = Facts {
        decision_id: uuid::Uuid::now_v7().to_string(),
        at_us: chrono::Utc::now().timestamp_micros(),
        client_ip: addr.ip().to_string(),
        ..Facts::default()
    };
    let (code, resp) = match run_query(&app, &headers, addr, body, &mut facts).await {
        Ok(resp) => ("ok", resp),
        // Not recorded, so no decision id to cite.
        Err(e @ QueryError::DecisionLogUnavailable(_)) => error_for(&e, None),
        Err(e) => error_for(&e, Some(&facts.decision_id)),
    };
    app.service.metrics.request(code);
    resp
}

/// One request: decide (reading no data), record the decision and wait for its
/// acknowledgement, and only then run the query and queue its completion record.
async fn run_query(
    app: &App,
    headers: &HeaderMap,
    addr: SocketAddr,
    body: Body,
    facts: &mut Facts,
) -> Result<Response, QueryError> {
    let t0 = Instant::now();
    let prepared = prepare(app, headers, addr, body, facts).await;
    let t1 = Instant::now();
    app.log.decision(facts, prepared.as_ref().err()).await?;
    let (req, format, decided) = prepared?;
    let started = Instant::now();
    let result = match app.service.run(decided, &req, &facts.decision_id).await {
        Ok(out) => encode(&out, format, &req, app.signer.as_ref()).map(|r| (out, r)),
        Err(e) => Err(e),
    };
    let done = match &result {
        Ok((out, (_, bytes))) => Completion {
            code: "ok".into(),
            message: None,
            rows: out.rows as u64,
            bytes: bytes.len() as u64,
            duration: started.elapsed(),
            segments: out.segments.clone(),
            tenants: out.tenants.clone(),
            signed: req.sign,
        },
        Err(e) => Completion {
            code: e.code().into(),
            message: Some(e.to_string()),
            duration: started.elapsed(),
            ..Completion::default()
        },
    };
    app.log.completion(facts, &done);
    let (out, (content_type, body)) = result?;
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&out.decision_id) {
        h.insert("x-cairn-decision-id", v);
    }
    h.insert(
        "x-cairn-segments-read",
        header::HeaderValue::from(out.segments.len()),
    );
    h.insert(
        "x-cairn-segments-excluded",
        header::HeaderValue::from(out.excluded.len()),
    );
    // Where the time went (ms): authentication and the policy decision, the decision record's
    // acknowledgement, execution and encoding. The benchmark reads it.
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let timing = format!(
        "decide;dur={:.3}, log;dur={:.3}, run;dur={:.3}",
        ms(t1 - t0),
        ms(started - t1),
        ms(started.elapsed())
    );
    if let Ok(v) = header::HeaderValue::from_str(&timing) {
        h.insert("server-timing", v);
    }
    Ok(resp)
}

/// Authentication, the body, and the decision: everything before the record is written.
async fn prepare<'a>(
    app: &'a App,
    headers: &HeaderMap,
    addr: SocketAddr,
    body: Body,
    facts: &mut Facts,
) -> Result<(QueryRequest, Format, Decided<'a>), QueryError> {
    let caller = caller(app, headers, addr).await?;
    facts.identity = Some(caller.identity.clone());
    let bytes = axum::body::to_bytes(body, app.max_body)
        .await
        .map_err(|_| {
            QueryError::TooLarge(format!("the request body is over {} bytes", app.max_body))
        })?;
    let req: QueryRequest = serde_json::from_slice(&bytes).map_err(|e| {
        QueryError::BadRequest(format!("the body must be JSON {{\"sql\": \"…\", \"justification\"?: \"…\", \"format\"?: \"json|csv|arrow\", \"sign\"?: bool}}: {e}"))
    })?;
    facts.sql = Some(req.sql.clone());
    facts.justification = req.justification.clone();
    let format = format(&req, headers)?;
    if req.sign && format != Format::Json {
        return Err(QueryError::BadRequest(
            "\"sign\": true needs the JSON format (the signature covers the rows as JSON)".into(),
        ));
    }
    if req.sign && app.signer.is_none() {
        return Err(QueryError::BadRequest(
            "this service signs no results (set [query] signing_key)".into(),
        ));
    }
    let decided = app.service.decide(&caller, &req, facts).await?;
    Ok((req, format, decided))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

fn format(req: &QueryRequest, headers: &HeaderMap) -> Result<Format, QueryError> {
    if let Some(f) = &req.format {
        return match f.as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" => Ok(Format::Arrow),
            other => Err(QueryError::BadRequest(format!(
                "format {other:?}: use \"json\", \"csv\" or \"arrow\""
            ))),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains(ARROW_STREAM) {
        Format::Arrow
    } else if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Json
    })
}

/// The response body in `format`: (content type, bytes). JSON results are signed on request.
fn encode(
    out: &QueryOutput,
    format: Format,
    req: &QueryRequest,
    signer: Option<&SigningKey>,
) -> Result<(&'static str, Vec<u8>), QueryError> {
    let batches: Vec<&RecordBatch> = out.batches.iter().collect();
    let internal = |e: datafusion::arrow::error::ArrowError| {
        QueryError::Internal(format!("encoding the result: {e}"))
    };
    let (content_type, body) = match format {
        Format::Json => {
            // Explicit nulls: every row has every column (a masked value is null, not absent).
            let mut w = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
            w.write_batches(&batches).map_err(internal)?;
            w.finish().map_err(internal)?;
            let raw = w.into_inner();
            let rows: Value = if raw.is_empty() {
                json!([])
            } else {
                serde_json::from_slice(&raw).map_err(|e| QueryError::Internal(e.to_string()))?
            };
            let columns: Vec<Value> = out
                .schema
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            let signature = match signer.filter(|_| req.sign) {
                Some(key) => Some(sign(out, &rows, &req.sql, key)?),
                None => None,
            };
            let mut body = json!({
                "decision_id": out.decision_id,
                "columns": columns,
                "rows": rows,
                "row_count": out.rows,
                "segments": out.segments,
                "excluded_segments": out.excluded,
                "policy": {
                    "engine": out.policy_engine,
                    "revision": out.policy_revision,
                    "reasons": out.decision.reasons,
                    "flags": out.decision.flags,
                    "tables": out.decision.tables,
                },
            });
            if let Some(sig) = signature {
                body["signature"] = sig;
            }
            (
                "application/json",
                serde_json::to_vec(&body).map_err(|e| QueryError::Internal(e.to_string()))?,
            )
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            for b in &batches {
                w.write(b).map_err(internal)?;
            }
            ("text/csv; charset=utf-8", w.into_inner())
        }
        Format::Arrow => {
            let mut w =
                datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &out.schema)
                    .map_err(internal)?;
            for b in &batches {
                w.write(b).map_err(internal)?;
            }
            w.finish().map_err(internal)?;
            (ARROW_STREAM, w.into_inner().map_err(internal)?)
        }
    };
    Ok((content_type, body))
}

/// The signature of a JSON result (FORMAT.md §10): Ed25519 over a statement naming the
/// decision, the SQL, the SHA-256 of `rows` exactly as serialised in the response, and the
/// segments read with their manifest hashes.
fn sign(out: &QueryOutput, rows: &Value, sql: &str, key: &SigningKey) -> Result<Value, QueryError> {
    let rows_bytes = serde_json::to_vec(rows).map_err(|e| QueryError::Internal(e.to_string()))?;
    let statement = ResultStatement {
        decision_id: out.decision_id.clone(),
        signed_at: cairn_format::event::format_micros(chrono::Utc::now().timestamp_micros())
            .unwrap_or_default(),
        sql: sql.to_string(),
        rows_sha256: Digest::of(&rows_bytes),
        row_count: out.rows as u64,
        segments: out
            .segments
            .iter()
            .map(|s| ResultSegment {
                table: s.table.clone(),
                manifest: s.manifest.clone(),
                manifest_sha256: s.manifest_sha256.clone(),
                merkle_root: s.merkle_root.clone(),
            })
            .collect(),
    };
    let bytes = statement
        .to_bytes()
        .ok_or_else(|| QueryError::Internal("a segment or table name cannot be signed".into()))?;
    let text = String::from_utf8(bytes).map_err(|e| QueryError::Internal(e.to_string()))?;
    Ok(json!({
        "statement": text,
        "key_id": key.key_id().to_string(),
        "ed25519": hex::encode(key.sign(text.as_bytes())),
    }))
}

/// What the caller may query: one decision per table, asking for every column.
async fn tables(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (code, resp) = match list_tables(&app, &headers, addr).await {
        Ok(v) => ("ok", axum::Json(v).into_response()),
        Err(e) => error(&e),
    };
    app.service.metrics.request(code);
    resp
}

async fn list_tables(
    app: &App,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<Value, QueryError> {
    let caller = caller(app, headers, addr).await?;
    app.service.ready()?;
    let schema = app.service.catalog().schema();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut out = Vec::new();
    for table in app.service.catalog().table_names() {
        let id = &caller.identity;
        let input = Input {
            subject: Subject {
                id: id.subject.clone(),
                roles: id.roles.clone(),
                tenant: id.tenant.clone(),
                auth: id.auth.as_str().into(),
            },
            tables: [(
                table.clone(),
                TableAccess {
                    columns: columns.clone(),
                },
            )]
            .into(),
            time_range: None,
            request: RequestContext {
                now_us: chrono::Utc::now().timestamp_micros(),
                client: caller.client.clone(),
                justification: String::new(),
            },
        };
        let outcome = decide(
            app.service.engine().as_ref(),
            &input,
            app.service.policy_timeout(),
        )
        .await;
        let Some(grant) = outcome
            .decision
            .allow
            .then(|| outcome.decision.tables.get(&table).cloned())
            .flatten()
        else {
            continue;
        };
        let cols: Vec<Value> = schema
            .fields()
            .iter()
            .map(|f| {
                let masked: Vec<&String> = grant
                    .masks
                    .keys()
                    .filter(|k| *k == f.name() || k.starts_with(&format!("{}.", f.name())))
                    .collect();
                json!({"name": f.name(), "type": f.data_type().to_string(), "masked": masked})
            })
            .collect();
        out.push(json!({"name": table, "columns": cols, "row_filters": grant.row_filters}));
    }
    Ok(json!({"tables": out}))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let c = app.service.catalog();
    app.service
        .metrics
        .catalog(c.counts().values().sum(), c.excluded().len());
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        app.service.metrics.render(),
    )
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    match app
        .service
        .ready()
        .and_then(|()| app.log.ready().map_err(QueryError::NotReady))
    {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => error(&e).1,
    }
}
