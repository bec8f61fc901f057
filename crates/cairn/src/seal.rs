//! `cairn seal`: a JSONL file source feeding the sealer.
//!
//! A reader thread reads and validates lines (offset = 1-based line number) and sends them in
//! bounded chunks to the sealer on the async side, so parsing overlaps with Arrow building,
//! hashing, Parquet encoding and storage. Memory is bounded by the channel depth plus one open
//! segment.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use cairn_format::event::{AuditEvent, EventError, StreamId};
use cairn_format::segment::PreparedEvent;
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

// Events are the common case; boxing them would add an allocation per line.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event {
        event: PreparedEvent,
        len: usize,
    },
    Rejected {
        offset: i64,
        len: usize,
        reason: String,
        raw: Vec<u8>,
    },
}

const CHUNK: usize = 4096;

fn read_lines(
    input: PathBuf,
    stream: Arc<StreamId>,
    skip_before: i64,
    tx: tokio::sync::mpsc::Sender<Vec<Item>>,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(&input)
        .with_context(|| format!("cannot open input {}", input.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(1024);
    let mut offset: i64 = 0;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut leaf_buf = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", input.display()))?;
        if n == 0 {
            break;
        }
        offset += 1;
        if offset < skip_before {
            continue;
        }
        let len = line.len();
        let mut body = &line[..];
        if let Some(b) = body.strip_suffix(b"\n") {
            body = b;
        }
        if let Some(b) = body.strip_suffix(b"\r") {
            body = b;
        }
        let item = if body.iter().all(u8::is_ascii_whitespace) {
            Item::Rejected {
                offset,
                len,
                reason: format!("line {offset}: empty line"),
                raw: body.to_vec(),
            }
        } else {
            let prepared = AuditEvent::from_json(body).and_then(|event| {
                PreparedEvent::new(&stream, offset, event, &mut leaf_buf).map_err(|e| {
                    EventError::Field {
                        field: ".".into(),
                        message: e.to_string(),
                    }
                })
            });
            match prepared {
                Ok(event) => Item::Event { event, len },
                Err(e) => Item::Rejected {
                    offset,
                    len,
                    reason: match e {
                        EventError::Json(m) => format!("line {offset}: not valid JSON: {m}"),
                        e => format!("line {offset}: {e}"),
                    },
                    raw: body.to_vec(),
                },
            }
        };
        chunk.push(item);
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if tx.blocking_send(full).is_err() {
                return Ok(()); // the sealer stopped; it reports why
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}

struct Rejects {
    out: Box<dyn Write + Send>,
    path: String,
    file: Option<std::fs::File>,
    count: u64,
}

impl Rejects {
    fn open(spec: &str) -> anyhow::Result<Self> {
        if spec == "-" {
            return Ok(Rejects {
                out: Box::new(std::io::stdout()),
                path: "stdout".into(),
                file: None,
                count: 0,
            });
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec)
            .with_context(|| format!("cannot open rejects file {spec}"))?;
        Ok(Rejects {
            out: Box::new(std::io::BufWriter::new(f.try_clone()?)),
            path: spec.to_string(),
            file: Some(f),
            count: 0,
        })
    }

    fn write(
        &mut self,
        stream: &StreamId,
        offset: i64,
        reason: &str,
        raw: &[u8],
    ) -> anyhow::Result<()> {
        let mut rec = serde_json::json!({
            "stream": stream.to_string(),
            "offset": offset,
            "line": offset,
            "reason": reason,
        });
        match std::str::from_utf8(raw) {
            Ok(s) => rec["raw"] = s.into(),
            Err(_) => {
                rec["raw_base64"] = base64::engine::general_purpose::STANDARD.encode(raw).into()
            }
        }
        serde_json::to_writer(&mut self.out, &rec)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Makes every reject durable; called before a manifest that lists them is written.
    /// Only a regular file can be synced: `/dev/null` (discarding rejects), a pipe or a
    /// terminal cannot, and need not be.
    fn sync(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        if let Some(f) = &self.file {
            let regular = f
                .metadata()
                .with_context(|| format!("inspecting rejects file {}", self.path))?
                .is_file();
            if regular {
                f.sync_data()
                    .with_context(|| format!("syncing rejects file {}", self.path))?;
            }
        }
        Ok(())
    }
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
    };
    let mut sealer = StreamSealer::open(store.clone(), key, stream.clone(), limits).await?;
    let resume = sealer.resume_offset().unwrap_or(1);
    if resume > 1 {
        eprintln!("stream {stream}: resuming at line {resume} (earlier lines are already sealed)");
    }
    let rejects_spec = args
        .rejects
        .clone()
        .unwrap_or_else(|| format!("{}.rejects.jsonl", args.input.display()));
    let mut rejects: Option<Rejects> = None;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Item>>(8);
    let input = args.input.clone();
    let reader_stream = Arc::new(stream.clone());
    let reader = std::thread::Builder::new()
        .name("cairn-reader".into())
        .spawn(move || read_lines(input, reader_stream, resume, tx))
        .context("starting the reader thread")?;

    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let (mut events, mut segments, mut lines) = (0u64, 0u64, 0u64);
    let on_sealed = |sealed: Vec<cairn_sealer::SealedSegment>, segments: &mut u64| {
        for s in sealed {
            *segments += 1;
            if s.parquet_reused {
                eprintln!(
                    "recovered {}: its Parquet file was already stored by an interrupted run",
                    s.manifest_object
                );
            }
        }
    };
    while let Some(chunk) = rx.recv().await {
        for item in chunk {
            lines += 1;
            let sealed = match item {
                Item::Event { event, len } => {
                    events += 1;
                    sealer.push_prepared(&event, len).await?
                }
                Item::Rejected {
                    offset,
                    len,
                    reason,
                    raw,
                } => {
                    if rejects.is_none() {
                        rejects = Some(Rejects::open(&rejects_spec)?);
                    }
                    let r = rejects.as_mut().expect("opened above");
                    r.write(&stream, offset, &reason, &raw)?;
                    r.sync()?;
                    sealer.push_rejected(offset, len).await?
                }
            };
            on_sealed(sealed.into_iter().collect(), &mut segments);
        }
        if tty && last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            let rate = lines as f64 / started.elapsed().as_secs_f64();
            eprint!("\r{lines} lines, {segments} segments sealed, {rate:.0} lines/s   ");
        }
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    let last = sealer.flush().await?;
    on_sealed(last, &mut segments);
    if tty {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    let rejected = rejects.as_ref().map_or(0, |r| r.count);
    // With `--rejects -` stdout carries the rejects as JSON lines; keep it machine-readable.
    let summary = format!(
        "sealed {segments} segments of stream {stream}: {events} events, {rejected} rejected lines, {lines} lines in {secs:.2}s ({:.0} lines/s) into {}",
        lines as f64 / secs.max(1e-9),
        store.describe()
    );
    if rejects_spec == "-" {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if let Some(r) = &rejects {
        eprintln!(
            "warning: {} rejected lines written to {} (listed as rejected in the manifests)",
            r.count, r.path
        );
    }
    Ok(0)
}
