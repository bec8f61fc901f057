//! `cairn seal`: arguments, the store and sealer, progress on a TTY and the summary; the file
//! source itself is `cairn_ingest::file`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_format::event::StreamId;
use cairn_ingest::file::{FileProgress, RejectsTarget, seal_file};
use cairn_sealer::{SegmentLimits, StreamSealer};
use cairn_store::{StoreWriter, WriterOptions};

#[derive(clap::Args)]
pub struct SealArgs {
    /// JSONL file of events, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Stream name for this source ([A-Za-z0-9._-], as Kafka topic names).
    #[arg(long, value_name = "ID")]
    source_id: String,
    /// Partition number of the stream.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// Store to write to: a directory (write-once local vault) or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    store: String,
    /// Secret signing key file (from `cairn keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Cut a segment after this many events.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    segment_events: u64,
    /// Cut a segment after this many input bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    segment_bytes: u64,
    /// Where rejected lines go, as JSON lines with the line number and reason
    /// (`-` for stdout, `/dev/null` to discard). Appended to. Default: INPUT.rejects.jsonl.
    #[arg(long, value_name = "FILE")]
    rejects: Option<String>,
    /// S3 only: put each object under COMPLIANCE retention for this many days instead of
    /// relying on the bucket's default retention.
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
}

pub async fn run(args: SealArgs) -> anyhow::Result<u8> {
    let stream = StreamId::new(&args.source_id, args.partition)?;
    let key = crate::keyfile::load_signing_key(&args.key)?;
    if args.segment_events == 0 || args.segment_bytes == 0 {
        anyhow::bail!("--segment-events and --segment-bytes must be at least 1");
    }
    if !args.input.is_file() {
        anyhow::bail!("input {} is not a readable file", args.input.display());
    }
    let opts = WriterOptions {
        retention_days: args.retention_days,
    };
    let store = Arc::new(
        StoreWriter::open(&args.store, &opts)
            .await
            .with_context(|| format!("opening store {}", args.store))?,
    );
    let limits = SegmentLimits {
        max_events: args.segment_events,
        max_bytes: args.segment_bytes,
        max_age: None,
        // Two segments encode while the parser threads fill the third (issue 13: on two cores
        // one encoder was the slowest stage of the pipeline).
        encoders: 2,
    };
    let sealer = StreamSealer::open(store.clone(), key, stream.clone(), limits).await?;
    if let Some(line) = sealer.resume_offset().filter(|l| *l > 1) {
        eprintln!("stream {stream}: resuming at line {line} (earlier lines are already sealed)");
    }
    let rejects = match args.rejects.as_deref() {
        Some("-") => RejectsTarget::Stdout,
        Some(p) => RejectsTarget::File(PathBuf::from(p)),
        None => RejectsTarget::File(PathBuf::from(format!(
            "{}.rejects.jsonl",
            args.input.display()
        ))),
    };
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let progress = |p: &FileProgress| {
        if tty && last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            let rate = p.lines as f64 / started.elapsed().as_secs_f64();
            eprint!(
                "\r{} lines, {} segments sealed, {rate:.0} lines/s   ",
                p.lines, p.segments
            );
        }
    };
    let summary = seal_file(&args.input, sealer, rejects.clone(), progress).await?;
    if tty {
        eprintln!();
    }
    for m in &summary.recovered {
        eprintln!("recovered {m}: its Parquet file was already stored by an interrupted run");
    }
    let p = &summary.progress;
    let secs = started.elapsed().as_secs_f64();
    let text = format!(
        "sealed {} segments of stream {stream}: {} events, {} rejected lines, {} lines in {secs:.2}s ({:.0} lines/s) into {}",
        p.segments,
        p.events,
        p.rejected,
        p.lines,
        p.lines as f64 / secs.max(1e-9),
        store.describe()
    );
    // With `--rejects -` stdout carries the rejects as JSON lines; keep it machine-readable.
    match &rejects {
        RejectsTarget::Stdout => eprintln!("{text}"),
        RejectsTarget::File(path) => {
            println!("{text}");
            if p.rejected > 0 && path != std::path::Path::new("/dev/null") {
                eprintln!(
                    "warning: {} rejected lines written to {} (listed as rejected in the manifests)",
                    p.rejected,
                    path.display()
                );
            }
        }
    }
    Ok(0)
}
