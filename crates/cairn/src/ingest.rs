//! `cairn ingest`: flags and environment over the config file, signals, the metrics endpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use cairn_ingest::{Ingest, IngestConfig, Metrics};

#[derive(clap::Args)]
pub struct IngestArgs {
    /// TOML config file (docs/CONFIG.md documents every field). Flags and CAIRN_* environment
    /// variables override it.
    #[arg(long, value_name = "FILE", env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long, env = "CAIRN_BROKERS")]
    brokers: Option<String>,
    /// Topics to consume, comma-separated; each partition is sealed as its own stream.
    #[arg(long, env = "CAIRN_TOPICS", value_delimiter = ',')]
    topics: Option<Vec<String>>,
    /// Consumer group id.
    #[arg(long, env = "CAIRN_GROUP")]
    group: Option<String>,
    /// Store: a directory (write-once vault) or s3://bucket[/prefix].
    #[arg(long, env = "CAIRN_STORE")]
    store: Option<String>,
    /// Secret signing key file (from `cairn keygen`).
    #[arg(long, env = "CAIRN_KEY")]
    key: Option<PathBuf>,
    /// Dead-letter topic: undecodable or invalid messages go there with the reason and their
    /// original topic/partition/offset/timestamp in headers, bytes unchanged.
    #[arg(long, env = "CAIRN_DLQ_TOPIC")]
    dlq_topic: Option<String>,
    /// Directory with audit_event.avsc and the writer schemas named in [schema_ids].
    #[arg(long, env = "CAIRN_SCHEMA_DIR")]
    schema_dir: Option<PathBuf>,
    /// Confluent-compatible schema registry base URL (Apicurio: …/apis/ccompat/v7): writer
    /// schemas of Confluent-framed messages whose id [schema_ids] does not map are fetched
    /// from it. Credentials and TLS: [schema_registry] in the config file.
    #[arg(long, env = "CAIRN_SCHEMA_REGISTRY_URL")]
    schema_registry_url: Option<String>,

    /// Cut a segment after this many events.
    #[arg(long, env = "CAIRN_SEGMENT_EVENTS")]
    segment_events: Option<u64>,
    /// Seal a segment at most this many seconds after its first offset arrived (quiet
    /// partitions still seal).
    #[arg(long, env = "CAIRN_SEGMENT_MAX_AGE_SECS")]
    segment_max_age_secs: Option<u64>,
    /// Serve /metrics (Prometheus), /healthz and /readyz on this host:port.
    #[arg(long, env = "CAIRN_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// A librdkafka property, KEY=VALUE (repeatable), e.g. --kafka session.timeout.ms=10000.
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = parse_kv)]
    kafka: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

pub fn run(args: IngestArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<u8> {
    let mut cfg = match &args.config {
        Some(p) => IngestConfig::load(p)?,
        None => IngestConfig::default(),
    };
    if let Some(v) = args.brokers {
        cfg.brokers = v;
    }
    if let Some(v) = args.topics {
        cfg.topics = v;
        cfg.topic_regex = None;
    }
    if let Some(v) = args.group {
        cfg.group = v;
    }
    if let Some(v) = args.store {
        cfg.store = v;
    }
    if let Some(v) = args.key {
        cfg.key = v;
    }
    if let Some(v) = args.dlq_topic {
        cfg.dlq_topic = v;
    }
    if let Some(v) = args.schema_dir {
        cfg.schema_dir = v;
    }
    if let Some(v) = args.schema_registry_url {
        cfg.schema_registry.url = Some(v);
    }
    // A secret: from the environment only, never a flag (visible in `ps`).
    if let Ok(v) = std::env::var("CAIRN_SCHEMA_REGISTRY_PASSWORD") {
        cfg.schema_registry.password = Some(v);
    }
    if let Some(v) = args.segment_events {
        cfg.segment.max_events = v;
    }
    if let Some(v) = args.segment_max_age_secs {
        cfg.segment.max_age_secs = v;
    }
    if let Some(v) = args.metrics_addr {
        cfg.metrics_addr = Some(v);
    }
    cfg.kafka.extend(args.kafka);
    let shutdown = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::default());
    {
        let shutdown = shutdown.clone();
        rt.spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("signal received; stopping");
            shutdown.store(true, Ordering::Relaxed);
        });
    }
    if let Some(addr) = cfg.metrics_addr.clone() {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(&addr))
            .with_context(|| format!("binding metrics address {addr}"))?;
        rt.spawn(crate::http::serve(listener, metrics.clone()));
    }
    let ingest = Ingest::new(cfg, rt.handle().clone(), shutdown, metrics)?;
    let summary = std::thread::Builder::new()
        .name("cairn-ingest".into())
        .spawn(move || ingest.run())
        .context("starting the ingest thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("ingest thread panicked"))??;
    println!(
        "ingest stopped: sealed {} segments, {} events; {} messages dead-lettered",
        summary.segments, summary.events, summary.dead_lettered
    );
    if summary.lost > 0 {
        println!(
            "warning: {} offsets were deleted by Kafka (retention or DeleteRecords) before they could be sealed; the manifests record them as lost",
            summary.lost
        );
    }
    Ok(0)
}
