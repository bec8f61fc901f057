//! The JSONL file source: one event per line, the 1-based line number as the offset.
//!
//! A reader thread reads and validates lines and sends them in bounded chunks to the sealer on
//! the async side, so parsing overlaps with Arrow building, hashing, Parquet encoding and
//! storage. Memory is bounded by the channel depth plus one open segment. Sealing resumes after
//! the newest manifest: lines before it are skipped.
//!
//! Invariant: a rejected line is written to the rejects target and made durable (fsync of a
//! regular file) before any manifest that lists its offset as rejected is written, so every
//! line is accounted for even across a crash.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use cairn_format::event::{AuditEvent, EventError, StreamId};
use cairn_format::segment::PreparedEvent;
use cairn_sealer::{SealError, SealedSegment, StreamSealer};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read input {path}: {source}")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("rejects {path}: {source}")]
    Rejects {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Where rejected lines go: JSON lines with the line number, the reason and the original text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectsTarget {
    Stdout,
    /// Appended to; created on the first reject.
    File(PathBuf),
}

/// Counts so far, for progress reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileProgress {
    pub lines: u64,
    pub events: u64,
    pub rejected: u64,
    pub segments: u64,
}

/// What a run sealed.
#[derive(Clone, Debug, Default)]
pub struct FileSummary {
    pub progress: FileProgress,
    /// Line the run started at (after the lines already sealed).
    pub resumed_at: i64,
    /// Manifests whose Parquet file an interrupted run had already stored (adopted as is).
    pub recovered: Vec<String>,
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

/// Seals `input` into `sealer`'s stream, sending rejects to `rejects` and calling `progress`
/// after every chunk of lines. Flushes the last segment before returning.
pub async fn seal_file(
    input: &Path,
    mut sealer: StreamSealer,
    rejects: RejectsTarget,
    mut progress: impl FnMut(&FileProgress),
) -> Result<FileSummary, FileError> {
    let input_err = |source| FileError::Input {
        path: input.display().to_string(),
        source,
    };
    let file = std::fs::File::open(input).map_err(input_err)?;
    let stream = sealer.stream().clone();
    let resume = sealer.resume_offset().unwrap_or(1);
    tracing::debug!(stream = %stream, line = resume, "sealing from this line on");
    let mut summary = FileSummary {
        resumed_at: resume,
        ..Default::default()
    };
    let mut rejects = Rejects::new(rejects);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Item>>(8);
    let reader_stream = Arc::new(stream.clone());
    let reader = std::thread::Builder::new()
        .name("cairn-reader".into())
        .spawn(move || read_lines(file, reader_stream, resume, tx))
        .map_err(input_err)?;
    let done = |sealed: Vec<SealedSegment>, summary: &mut FileSummary| {
        for s in sealed {
            summary.progress.segments += 1;
            if s.parquet_reused {
                summary.recovered.push(s.manifest_object);
            }
        }
    };
    while let Some(chunk) = rx.recv().await {
        for item in chunk {
            summary.progress.lines += 1;
            let sealed = match item {
                Item::Event { event, len } => {
                    summary.progress.events += 1;
                    sealer.push_prepared(&event, len).await?
                }
                Item::Rejected {
                    offset,
                    len,
                    reason,
                    raw,
                } => {
                    summary.progress.rejected += 1;
                    rejects.write(&stream, offset, &reason, &raw)?;
                    rejects.sync()?;
                    sealer.push_rejected(offset, len).await?
                }
            };
            done(sealed, &mut summary);
        }
        progress(&summary.progress);
    }
    reader
        .join()
        .map_err(|_| input_err(std::io::Error::other("the reader thread panicked")))?
        .map_err(input_err)?;
    let last = sealer.flush().await?;
    done(last, &mut summary);
    progress(&summary.progress);
    Ok(summary)
}

fn read_lines(
    file: std::fs::File,
    stream: Arc<StreamId>,
    skip_before: i64,
    tx: tokio::sync::mpsc::Sender<Vec<Item>>,
) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(1024);
    let mut offset: i64 = 0;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut leaf_buf = Vec::with_capacity(1024);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        offset += 1;
        if offset < skip_before {
            continue;
        }
        chunk.push(item(&stream, offset, &line, &mut leaf_buf));
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

/// One line (with its newline), validated.
fn item(stream: &Arc<StreamId>, offset: i64, line: &[u8], leaf_buf: &mut Vec<u8>) -> Item {
    let len = line.len();
    let mut body = line;
    if let Some(b) = body.strip_suffix(b"\n") {
        body = b;
    }
    if let Some(b) = body.strip_suffix(b"\r") {
        body = b;
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Item::Rejected {
            offset,
            len,
            reason: format!("line {offset}: empty line"),
            raw: body.to_vec(),
        };
    }
    let prepared = AuditEvent::from_json(body).and_then(|event| {
        PreparedEvent::new(stream, offset, event, leaf_buf).map_err(|e| EventError::Field {
            field: ".".into(),
            message: e.to_string(),
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
}

/// The rejects target, opened on the first reject.
struct Rejects {
    target: RejectsTarget,
    out: Option<(Box<dyn Write + Send>, Option<std::fs::File>)>,
}

impl Rejects {
    fn new(target: RejectsTarget) -> Self {
        Rejects { target, out: None }
    }

    fn path(&self) -> String {
        match &self.target {
            RejectsTarget::Stdout => "stdout".into(),
            RejectsTarget::File(p) => p.display().to_string(),
        }
    }

    fn err(&self, source: std::io::Error) -> FileError {
        FileError::Rejects {
            path: self.path(),
            source,
        }
    }

    fn out(&mut self) -> Result<&mut (Box<dyn Write + Send>, Option<std::fs::File>), FileError> {
        if self.out.is_none() {
            let opened: (Box<dyn Write + Send>, Option<std::fs::File>) = match &self.target {
                RejectsTarget::Stdout => (Box::new(std::io::stdout()), None),
                RejectsTarget::File(p) => {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map_err(|e| self.err(e))?;
                    let w = f.try_clone().map_err(|e| self.err(e))?;
                    (Box::new(std::io::BufWriter::new(w)), Some(f))
                }
            };
            self.out = Some(opened);
        }
        Ok(self.out.as_mut().expect("opened above"))
    }

    fn write(
        &mut self,
        stream: &StreamId,
        offset: i64,
        reason: &str,
        raw: &[u8],
    ) -> Result<(), FileError> {
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
        let mut line = serde_json::to_vec(&rec).expect("json serialisation");
        line.push(b'\n');
        let (out, _) = self.out()?;
        let r = out.write_all(&line);
        r.map_err(|e| self.err(e))
    }

    /// Makes every reject durable; called before a manifest that lists them is written. Only a
    /// regular file can be synced: `/dev/null` (discarding rejects), a pipe or a terminal
    /// cannot, and need not be.
    fn sync(&mut self) -> Result<(), FileError> {
        let Some((out, file)) = self.out.as_mut() else {
            return Ok(());
        };
        let r = out.flush().and_then(|()| match file {
            Some(f) if f.metadata()?.is_file() => f.sync_data(),
            _ => Ok(()),
        });
        r.map_err(|e| self.err(e))
    }
}
