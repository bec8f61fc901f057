//! The HTTP surface (docs/QUERY.md, docs/openapi.yaml): `POST /v1/query`, `GET /v1/tables`,
//! `/metrics`, `/healthz`, `/readyz`. Every error is JSON `{"error": {"code", "message", …}}`
//! with a stable code; a caller's mistake is a 4xx, never a 500.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_policy::{Input, RequestContext, Subject, TableAccess, decide};
use datafusion::arrow::array::RecordBatch;
use serde_json::{Value, json};

use crate::QueryError;
use crate::auth::Authenticator;
use crate::metrics::CONTENT_TYPE;
use crate::service::{Caller, QueryOutput, QueryRequest, QueryService};

pub struct App {
    pub service: QueryService,
    pub auth: Authenticator,
    pub max_body: usize,
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
    let mut body = json!({"code": e.code(), "message": e.to_string()});
    if let QueryError::Denied {
        decision_id,
        reasons,
    } = e
    {
        body["decision_id"] = json!(decision_id);
        body["reasons"] = json!(reasons);
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(json!({"error": body}))).into_response();
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
    let (code, resp) = match run_query(&app, &headers, addr, body).await {
        Ok(resp) => ("ok", resp),
        Err(e) => error(&e),
    };
    app.service.metrics.request(code);
    resp
}

async fn run_query(
    app: &App,
    headers: &HeaderMap,
    addr: SocketAddr,
    body: Body,
) -> Result<Response, QueryError> {
    let caller = caller(app, headers, addr).await?;
    let bytes = axum::body::to_bytes(body, app.max_body)
        .await
        .map_err(|_| {
            QueryError::TooLarge(format!("the request body is over {} bytes", app.max_body))
        })?;
    let req: QueryRequest = serde_json::from_slice(&bytes).map_err(|e| {
        QueryError::BadRequest(format!("the body must be JSON {{\"sql\": \"…\", \"justification\"?: \"…\", \"format\"?: \"json|csv|arrow\"}}: {e}"))
    })?;
    let format = format(&req, headers)?;
    let out = app.service.query(&caller, &req).await?;
    encode(&out, format)
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

fn encode(out: &QueryOutput, format: Format) -> Result<Response, QueryError> {
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
            let body = json!({
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
    Ok(resp)
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
    match app.service.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => error(&e).1,
    }
}
