//! The JSONL file source: one event per line, the 1-based line number as the offset.
//!
//! A reader thread cuts the input into chunks of lines and deals them round-robin to parser
//! threads (one per core), which validate them and turn the events into Arrow rows with their
//! leaf hashes ([`EventChunk`]); the sealer on the async side takes the parsed chunks back in
//! input order (chunk i from parser i mod n) and appends runs of rows, so parsing and column
//! building run on every core and overlap with Parquet encoding and storage. Memory is bounded by
//! the channel depths plus one open segment. Sealing resumes after the newest manifest: lines
//! before it are skipped.
//!
//! Invariant: a rejected line is written to the rejects target and made durable (fsync of a
//! regular file) before any manifest that lists its offset as rejected is written, so every
//! line is accounted for even across a crash.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use cairn_format::event::{AuditEvent, EventError, EventView, StreamId};
use cairn_format::segment::{ChunkBuilder, EventChunk};
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

/// A parsed line: the next row of its chunk's [`EventChunk`], or rejected.
enum Item {
    Event {
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

/// Raw lines of one chunk, back to back, with where each ends and the first one's offset.
struct RawChunk {
    first: i64,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// A chunk's lines, parsed: its events as Arrow rows with their leaf hashes, and one item per
/// line in input order.
struct Parsed {
    events: EventChunk,
    items: Vec<Item>,
}

/// The parser threads: chunk i goes to parser i mod n and comes back on its channel, so the
/// sealer reads the channels in turn to get the input's order back.
struct Parsers {
    outputs: Vec<tokio::sync::mpsc::Receiver<Parsed>>,
    next: usize,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Parsers {
    fn spawn(
        stream: &Arc<StreamId>,
    ) -> std::io::Result<(Self, Vec<std::sync::mpsc::SyncSender<RawChunk>>)> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
        let mut parsers = Parsers {
            outputs: Vec::with_capacity(n),
            next: 0,
            threads: Vec::with_capacity(n),
        };
        let mut inputs = Vec::with_capacity(n);
        for i in 0..n {
            let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<RawChunk>(2);
            let (tx, rx) = tokio::sync::mpsc::channel::<Parsed>(4);
            let stream = Arc::clone(stream);
            let thread = std::thread::Builder::new()
                .name(format!("cairn-parse-{i}"))
                .spawn(move || {
                    while let Ok(raw) = raw_rx.recv() {
                        let parsed = parse_chunk(&stream, &raw);
                        if tx.blocking_send(parsed).is_err() {
                            return; // the sealer stopped; it reports why
                        }
                    }
                })?;
            parsers.outputs.push(rx);
            parsers.threads.push(thread);
            inputs.push(raw_tx);
        }
        Ok((parsers, inputs))
    }

    /// The next chunk in input order; `None` at the end of the input (or when a parser thread
    /// died: `join` says so).
    async fn recv(&mut self) -> Option<Parsed> {
        let i = self.next;
        self.next = (i + 1) % self.outputs.len();
        self.outputs[i].recv().await
    }

    fn join(self) -> std::io::Result<()> {
        drop(self.outputs);
        for t in self.threads {
            t.join()
                .map_err(|_| std::io::Error::other("a parser thread panicked"))?;
        }
        Ok(())
    }
}

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
    let (mut parsers, inputs) = Parsers::spawn(&Arc::new(stream.clone())).map_err(input_err)?;
    let reader = std::thread::Builder::new()
        .name("cairn-reader".into())
        .spawn(move || read_lines(file, resume, inputs))
        .map_err(input_err)?;
    let done = |sealed: Vec<SealedSegment>, summary: &mut FileSummary| {
        for s in sealed {
            summary.progress.segments += 1;
            if s.parquet_reused {
                summary.recovered.push(s.manifest_object);
            }
        }
    };
    while let Some(Parsed { events, items }) = parsers.recv().await {
        // Consecutive events go to the sealer as one run of rows.
        let (mut row, mut lens) = (0, Vec::with_capacity(events.len()));
        for item in items {
            summary.progress.lines += 1;
            match item {
                Item::Event { len } => {
                    summary.progress.events += 1;
                    lens.push(len);
                }
                Item::Rejected {
                    offset,
                    len,
                    reason,
                    raw,
                } => {
                    let run = row..row + lens.len();
                    done(sealer.push_events(&events, run, &lens).await?, &mut summary);
                    row += lens.len();
                    lens.clear();
                    summary.progress.rejected += 1;
                    rejects.write(&stream, offset, &reason, &raw)?;
                    rejects.sync()?;
                    done(sealer.push_rejected(offset, len).await?, &mut summary);
                }
            }
        }
        let run = row..row + lens.len();
        done(sealer.push_events(&events, run, &lens).await?, &mut summary);
        progress(&summary.progress);
    }
    // Parsers first: that drops their output channels, so a reader blocked on a parser that
    // can no longer deliver (another one died) is released.
    parsers.join().map_err(input_err)?;
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
    skip_before: i64,
    parsers: Vec<std::sync::mpsc::SyncSender<RawChunk>>,
) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut offset: i64 = 0;
    let new_chunk = |first| RawChunk {
        first,
        bytes: Vec::with_capacity(CHUNK * 512),
        ends: Vec::with_capacity(CHUNK),
    };
    let mut chunk = new_chunk(skip_before.max(1));
    let mut sent = 0usize;
    loop {
        let start = chunk.bytes.len();
        if reader.read_until(b'\n', &mut chunk.bytes)? == 0 {
            break;
        }
        offset += 1;
        if offset < skip_before {
            chunk.bytes.truncate(start);
            continue;
        }
        chunk.ends.push(chunk.bytes.len());
        if chunk.ends.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, new_chunk(offset + 1));
            if parsers[sent % parsers.len()].send(full).is_err() {
                return Ok(()); // the sealer stopped; it reports why
            }
            sent += 1;
        }
    }
    if !chunk.ends.is_empty() {
        let _ = parsers[sent % parsers.len()].send(chunk);
    }
    Ok(())
}

/// One chunk's lines, validated; the events become Arrow rows with their leaf hashes.
fn parse_chunk(stream: &Arc<StreamId>, raw: &RawChunk) -> Parsed {
    let mut events = ChunkBuilder::new(stream);
    let mut items = Vec::with_capacity(raw.ends.len());
    let mut start = 0;
    for (i, &end) in raw.ends.iter().enumerate() {
        let (offset, line) = (raw.first + i as i64, &raw.bytes[start..end]);
        start = end;
        let pushed = parse_line(offset, line, |event| {
            events.push_view(offset, event).map_err(|e| {
                let e = EventError::Field {
                    field: ".".into(),
                    message: e.to_string(),
                };
                format!("line {offset}: {e}")
            })
        })
        .and_then(|pushed| pushed);
        items.push(match pushed {
            Ok(()) => Item::Event { len: line.len() },
            Err(reason) => rejected(offset, line, reason),
        });
    }
    let events = events
        .finish()
        .expect("the segment schema's own columns always make a batch");
    Parsed { events, items }
}

/// The line without its line ending.
fn body(line: &[u8]) -> &[u8] {
    let mut body = line;
    if let Some(b) = body.strip_suffix(b"\n") {
        body = b;
    }
    if let Some(b) = body.strip_suffix(b"\r") {
        body = b;
    }
    body
}

fn rejected(offset: i64, line: &[u8], reason: String) -> Item {
    Item::Rejected {
        offset,
        len: line.len(),
        reason,
        raw: body(line).to_vec(),
    }
}

/// One line (with its newline), validated: `f` of the event (borrowing the line's strings), or
/// why the line is rejected.
fn parse_line<R>(
    offset: i64,
    line: &[u8],
    f: impl FnOnce(&EventView<'_>) -> R,
) -> Result<R, String> {
    let body = body(line);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("line {offset}: empty line"));
    }
    AuditEvent::with_json(body, f).map_err(|e| match e {
        EventError::Json(m) => format!("line {offset}: not valid JSON: {m}"),
        e => format!("line {offset}: {e}"),
    })
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
