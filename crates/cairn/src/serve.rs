//! `cairn serve`: the query service. Flags and CAIRN_* environment over the `[query]`
//! section of the config file; the catalog refresher and the policy reloader; signals.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_policy::{Engine, RegorusEngine, WasmEngine};
use cairn_query::auth::Authenticator;
use cairn_query::catalog::{Catalog, TableDef};
use cairn_query::http::App;
use cairn_query::metrics::Metrics;
use cairn_query::oidc::Oidc;
use cairn_query::{QueryConfig, QueryService};
use cairn_store::StoreReader;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file; its `[query]` section (docs/CONFIG.md) configures the service.
    /// Flags and CAIRN_* environment variables override it.
    #[arg(long, value_name = "FILE", env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to serve HTTP on.
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<String>,
    /// Store to serve: a directory (write-once vault) or s3://bucket[/prefix].
    #[arg(long, env = "CAIRN_STORE")]
    store: Option<String>,
    /// Trusted public key file (repeatable; replaces the file's pubkeys). Only segments whose
    /// manifests these keys signed, and whose files hash as signed, are served.
    #[arg(long = "pubkey", value_name = "FILE")]
    pubkeys: Vec<PathBuf>,
    /// Policy engine: regorus (in-process, reloads --policy-dir on change) or opa-wasm.
    #[arg(long, env = "CAIRN_POLICY_ENGINE")]
    policy_engine: Option<String>,
    /// Directory of .rego files (regorus).
    #[arg(long, env = "CAIRN_POLICY_DIR")]
    policy_dir: Option<PathBuf>,
    /// Bundle built by `opa build -t wasm -e cairn/authz/decision` (opa-wasm).
    #[arg(long, env = "CAIRN_POLICY_BUNDLE")]
    policy_bundle: Option<PathBuf>,
    /// Kafka brokers of the decision log ([query.decision_log] brokers). Every decision is
    /// recorded there, and acknowledged, before any data is read.
    #[arg(long, env = "CAIRN_DECISION_LOG_BROKERS", value_name = "HOST:PORT")]
    decision_log_brokers: Option<String>,
    /// The decisions topic ([query.decision_log] topic; default cairn.decisions).
    #[arg(long, env = "CAIRN_DECISION_LOG_TOPIC")]
    decision_log_topic: Option<String>,
    /// The service's Ed25519 key (`cairn keygen`) for signed results ([query] signing_key).
    #[arg(long, env = "CAIRN_SIGNING_KEY", value_name = "FILE")]
    signing_key: Option<PathBuf>,
}

#[derive(serde::Deserialize, Default)]
struct File {
    #[serde(default)]
    query: QueryConfig,
}

fn load(args: &ServeArgs) -> anyhow::Result<QueryConfig> {
    let mut cfg = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str::<File>(&text)
                .with_context(|| format!("{}: [query]", p.display()))?
                .query
        }
        None => QueryConfig::default(),
    };
    if let Some(v) = &args.listen {
        cfg.listen = v.clone();
    }
    if let Some(v) = &args.store {
        cfg.store = Some(v.clone());
    }
    if !args.pubkeys.is_empty() {
        cfg.pubkeys = args.pubkeys.clone();
    }
    if let Some(v) = &args.policy_engine {
        cfg.policy.engine = v.clone();
    }
    if let Some(v) = &args.policy_dir {
        cfg.policy.dir = v.clone();
    }
    if let Some(v) = &args.policy_bundle {
        cfg.policy.bundle = Some(v.clone());
    }
    if let Some(v) = &args.decision_log_brokers {
        cfg.decision_log
            .get_or_insert_with(Default::default)
            .brokers = v.clone();
    }
    if let Some(v) = &args.decision_log_topic {
        cfg.decision_log.get_or_insert_with(Default::default).topic = v.clone();
    }
    if let Some(v) = &args.signing_key {
        cfg.signing_key = Some(v.clone());
    }
    cfg.check().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let cfg = load(&args)?;
    let store_url = cfg
        .store
        .clone()
        .context("no store: set --store, CAIRN_STORE or [query] store")?;
    anyhow::ensure!(
        !cfg.pubkeys.is_empty(),
        "no trusted key: set --pubkey FILE or [query] pubkeys (from `cairn keygen`)"
    );
    let keys = cfg
        .pubkeys
        .iter()
        .map(|p| crate::keyfile::load_public_key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = StoreReader::open(&store_url)
        .await
        .with_context(|| format!("opening store {store_url}"))?;
    let defs = cfg
        .tables
        .iter()
        .map(|t| TableDef {
            name: t.name.clone(),
            streams: t.streams.clone(),
        })
        .collect();
    let catalog = Arc::new(Catalog::new(store, keys, defs)?);
    let metrics = Metrics::default();

    let timeout = Duration::from_millis(cfg.policy.timeout_ms);
    let engine: Arc<dyn Engine> = match cfg.policy.engine.as_str() {
        "opa-wasm" => {
            let bundle = cfg.policy.bundle.clone().context("[query.policy] bundle")?;
            Arc::new(WasmEngine::load(&bundle, &cfg.policy.entrypoint).await?)
        }
        _ => {
            let engine = Arc::new(RegorusEngine::load(
                &cfg.policy.dir,
                &cfg.policy.entrypoint,
                timeout,
            )?);
            engine.watch(Duration::from_secs(cfg.policy.reload_secs.max(1)));
            let (weak, m) = (Arc::downgrade(&engine), metrics.clone());
            tokio::spawn(async move {
                while let Some(e) = weak.upgrade() {
                    m.policy_reload_failures(e.reload_failures());
                    drop(e);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            engine
        }
    };
    tracing::info!(engine = engine.name(), revision = %engine.revision(), "policy loaded");

    // The first listing before serving; then one every refresh_secs.
    match catalog.refresh().await {
        Ok(r) => {
            tracing::info!(added = r.added, excluded = r.excluded, store = %store_url, "segments admitted")
        }
        Err(e) => {
            tracing::error!(error = %e, "listing the store failed; /readyz stays 503 until it succeeds")
        }
    }
    {
        let catalog = catalog.clone();
        let every = Duration::from_secs(cfg.refresh_secs.max(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match catalog.refresh().await {
                    Ok(r) if r.added + r.excluded > 0 => {
                        tracing::info!(added = r.added, excluded = r.excluded, "segments admitted")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "listing the store failed; serving what was admitted")
                    }
                }
            }
        });
    }

    let oidc = match cfg.oidc.clone() {
        Some(o) => {
            let issuer = o.issuer.clone();
            let oidc = Oidc::new(o).map_err(anyhow::Error::msg)?;
            match oidc.refresh().await {
                Ok(n) => tracing::info!(issuer = %issuer, keys = n, "OIDC issuer's keys fetched"),
                Err(e) => {
                    tracing::error!(issuer = %issuer, error = %e, "fetching the OIDC issuer's keys failed; retried on the first token")
                }
            }
            Some(oidc)
        }
        None => None,
    };
    let signer = match &cfg.signing_key {
        Some(p) => Some(crate::keyfile::load_signing_key(p)?),
        None => None,
    };
    let log_cfg = cfg
        .decision_log
        .clone()
        .context("[query.decision_log] is required")?;
    let log = cairn_query::decision_log::DecisionLog::start(
        &log_cfg,
        &cfg.policy.entrypoint,
        metrics.clone(),
    )
    .await?;
    if let Err(why) = log.ready() {
        tracing::error!(error = %why, "the decision log is not usable yet; /readyz stays 503 and queries are refused until it is");
    }
    let service = QueryService::new(catalog, engine, cfg.limits.clone(), timeout, metrics);
    let app = Arc::new(App {
        service,
        auth: Authenticator::new(&cfg.api_keys, oidc),
        max_body: cfg.limits.max_sql_bytes + 4096,
        log,
        signer,
    });
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, "serving");
    println!("serving on http://{addr}");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received; stopping");
    };
    cairn_query::http::serve(listener, app, shutdown).await?;
    Ok(0)
}
