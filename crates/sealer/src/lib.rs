//! The sealer: turns an ordered stream of offsets (valid events, rejected input, offsets the
//! source never delivered) into sealed segments.
//!
//! A [`StreamSealer`] owns one stream. It resumes from the newest manifest in the store (never
//! from anything a source says), cuts a segment by event count, input bytes or age, writes the
//! Parquet file and then the signed manifest that chains to the previous one. The manifest is
//! the commit point: a caller may acknowledge input (commit Kafka offsets, report success) only
//! for offsets covered by a returned [`SealedSegment`].
//!
//! Invariants: every offset of a sealed range is either an event in the Parquet file or listed
//! as rejected/absent in the manifest; the sealer never overwrites an object (it only uses
//! `Store::create`); names are deterministic, so after a crash between the Parquet write and
//! the manifest the same range is sealed again under the same names, and the Parquet file
//! already there is adopted if it holds exactly the same events (even if another build encoded
//! it differently). Before each Parquet write the sealer claims the segment's first offset
//! (`<first>.claim`, conditional create): two sealers of one stream (a consumer-group member
//! replaced mid-write, and its successor) can never seal different ranges from one offset; the
//! later one seals exactly the claimed range (adopting what is there) or gives up with
//! [`SealError::Superseded`]. Every manifest names the store's origin (`v1/origin`, created
//! by the first writer that finds none; [`ensure_origin`]). Depends on format and store only;
//! never on ingest, query or verify.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_format::event::StreamId;
use cairn_format::segment::{
    EventChunk, PreparedEvent, SegmentBuilder, SegmentError, SegmentStats, encode_parquet,
};
use cairn_format::{Digest, OffsetRange, SignedManifest, SigningKey};
use cairn_store::{StoreError, StoreWriter};

mod origin;
pub use origin::ensure_origin;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encoding segment: {0}")]
    Segment(#[from] SegmentError),
    #[error("event at offset {offset}: {message}")]
    Event { offset: i64, message: String },
    #[error(
        "offset {got} out of order for stream {stream}: expected {expected} (offsets must be pushed in order without gaps)"
    )]
    OffsetOrder {
        stream: String,
        expected: i64,
        got: i64,
    },
    #[error(
        "cannot resume stream {stream}: its newest manifest {object} {message}; the store needs investigation before anything more is sealed into this stream"
    )]
    ChainHead {
        stream: String,
        object: String,
        message: String,
    },
    /// Another writer claimed the segment starting at `first` with a different range: this one
    /// no longer owns the stream (a consumer group moved it while a write was under way), or
    /// it must seal exactly the claimed range. Reopening from the store resolves it.
    #[error(
        "stream {stream}: another writer claimed the segment starting at offset {first} through {claimed_last} (this one ended at {last}); reopening the stream from the store"
    )]
    Superseded {
        stream: String,
        first: i64,
        claimed_last: i64,
        last: i64,
    },
    #[error(
        "cannot resume stream {stream}: the claim {object} is {message}; the store needs investigation before anything more is sealed into this stream"
    )]
    BadClaim {
        stream: String,
        object: String,
        message: String,
    },
    /// The input ended inside a range the stream must seal whole (a claim, or a Parquet file a
    /// crash left without its manifest): nothing of it was sealed.
    #[error(
        "stream {stream}: offsets {first}..={got_last} were not sealed: the segment starting at {first} must end at {needed_last} (claimed by an earlier writer, or left by a crash), and the input ended before that; supply the input through offset {needed_last}"
    )]
    IncompleteRange {
        stream: String,
        first: i64,
        needed_last: i64,
        got_last: i64,
    },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("store origin: {message}")]
    Origin { message: String },
}

impl SealError {
    /// Can sealing succeed if retried later (after rewinding to the last manifest)? Only when
    /// the store was unavailable; a conflict, a chain this key does not extend, an encoding or
    /// ordering error stays.
    pub fn is_transient(&self) -> bool {
        match self {
            SealError::Store(e) => e.is_transient(),
            SealError::Superseded { .. } => true,
            _ => false,
        }
    }
}

/// Offsets the source will not deliver, by why.
#[derive(Clone, Copy)]
enum Skipped {
    Absent,
    Lost,
}

/// When to cut a segment. A segment is cut as soon as any limit is reached.
#[derive(Clone, Debug)]
pub struct SegmentLimits {
    pub max_events: u64,
    /// Input bytes (raw message/line sizes) per segment.
    pub max_bytes: u64,
    /// Seal a non-empty segment once its first offset is this old (checked by `tick`).
    pub max_age: Option<Duration>,
    /// Cut segments encoded at once, each on its own blocking thread, while the next one
    /// fills (at least 1). One stream sealing a file on two cores keeps up with its parser
    /// threads with 2 (issue 13); each adds one segment's columns and Parquet bytes in memory.
    pub encoders: usize,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        SegmentLimits {
            max_events: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_age: Some(Duration::from_secs(300)),
            encoders: 1,
        }
    }
}

/// What a seal wrote.
#[derive(Clone, Debug)]
pub struct SealedSegment {
    pub manifest: SignedManifest,
    pub parquet_object: String,
    pub manifest_object: String,
    /// The Parquet object was already there with identical bytes (recovery after a crash).
    pub parquet_reused: bool,
    /// From the segment's first input reaching the sealer to its manifest being stored: the
    /// longest any of its events waited to be sealed.
    pub latency: Duration,
}

struct Pending {
    first: i64,
    last: i64,
    builder: SegmentBuilder,
    rejected: Vec<OffsetRange>,
    absent: Vec<OffsetRange>,
    lost: Vec<OffsetRange>,
    input_bytes: u64,
    opened: Instant,
}

/// A cut segment whose Parquet encoding has finished, ready to be written.
struct Encoded {
    first: i64,
    last: i64,
    rejected: Vec<OffsetRange>,
    absent: Vec<OffsetRange>,
    lost: Vec<OffsetRange>,
    stats: SegmentStats,
    parquet: Vec<u8>,
    opened: Instant,
}

pub struct StreamSealer {
    store: Arc<StoreWriter>,
    /// The store's origin, named by every manifest (format v3).
    origin: cairn_format::log::Origin,
    key: SigningKey,
    stream: StreamId,
    limits: SegmentLimits,
    next_seq: u64,
    prev_hash: Digest,
    /// The next offset this stream expects; `None` until the first offset of a new stream.
    next_offset: Option<i64>,
    /// Where the segment starting at `next_offset` must end: the last offset of a Parquet
    /// object a crash left without a manifest (to reuse its name), or of another writer's
    /// claim on that offset.
    forced_last: Option<i64>,
    /// This sealer's claim identity (random, lowercase hex; see `cairn_format::claim`).
    writer: String,
    pending: Option<Pending>,
    /// Cut segments being encoded on blocking threads while the next one fills, oldest first
    /// (at most [`SegmentLimits::encoders`]). They are written (Parquet, then manifest) in
    /// this order: the oldest when another cut needs its place, when `tick` finds it done, or
    /// on `flush`.
    in_flight: VecDeque<tokio::task::JoinHandle<Result<Encoded, SegmentError>>>,
}

impl StreamSealer {
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The next offset this stream expects (`None` for a stream with nothing sealed yet).
    /// Input before it is already sealed and must be skipped.
    pub fn resume_offset(&self) -> Option<i64> {
        self.next_offset
    }

    fn begin(&mut self, offset: i64) -> Result<&mut Pending, SealError> {
        if let Some(expected) = self.next_offset
            && expected != offset
        {
            return Err(SealError::OffsetOrder {
                stream: self.stream.to_string(),
                expected,
                got: offset,
            });
        }
        let pending = self.pending.get_or_insert_with(|| Pending {
            first: offset,
            last: offset,
            builder: SegmentBuilder::new(self.stream.clone()),
            rejected: Vec::new(),
            absent: Vec::new(),
            lost: Vec::new(),
            input_bytes: 0,
            opened: Instant::now(),
        });
        pending.last = offset;
        self.next_offset = Some(offset + 1);
        Ok(pending)
    }

    /// Adds an event prepared (validated, leaf-hashed, possibly on another thread) at its
    /// offset, with `input_len` raw bytes. Returns the segments whose manifests were written by this
    /// call (segments are encoded in the background and written in order, so this may
    /// be the segment before the one this offset completed).
    pub async fn push_prepared(
        &mut self,
        event: &PreparedEvent,
        input_len: usize,
    ) -> Result<Vec<SealedSegment>, SealError> {
        let offset = event.offset();
        let p = self.begin(offset)?;
        p.builder.push_prepared(event);
        p.input_bytes += input_len as u64;
        self.after_push(offset).await
    }

    /// Adds rows `rows` of `chunk`, whose offsets must be consecutive and start at the next
    /// offset; `input_lens[i]` is the raw size of row `rows.start + i`. The same as pushing the
    /// rows one at a time with [`StreamSealer::push_prepared`] (segments are cut at the same
    /// offsets), without handling each event on this thread.
    pub async fn push_events(
        &mut self,
        chunk: &EventChunk,
        rows: std::ops::Range<usize>,
        input_lens: &[usize],
    ) -> Result<Vec<SealedSegment>, SealError> {
        assert_eq!(input_lens.len(), rows.len(), "one input length per row");
        // Rows must continue the stream one offset at a time.
        let start = rows.clone().next().map(|r| chunk.offset(r));
        if let Some(r) = rows
            .clone()
            .find(|&r| Some(chunk.offset(r) - (r - rows.start) as i64) != start)
        {
            return Err(SealError::OffsetOrder {
                stream: self.stream.to_string(),
                expected: start.unwrap_or(0) + (r - rows.start) as i64,
                got: chunk.offset(r),
            });
        }
        let mut out = Vec::new();
        let mut i = rows.start;
        while i < rows.end {
            let first = chunk.offset(i);
            let (max_events, max_bytes) = (self.limits.max_events, self.limits.max_bytes);
            let forced_last = self.forced_last;
            let avail = rows.end - i;
            let p = self.begin(first)?;
            // The rows up to and including the one after which `after_push` cuts.
            let n = match forced_last {
                Some(l) if l >= first => ((l - first + 1) as usize).min(avail),
                Some(_) => 1,
                None => {
                    let left = max_events.saturating_sub(p.builder.len()).max(1);
                    let mut n = usize::try_from(left).unwrap_or(usize::MAX).min(avail);
                    let mut bytes = p.input_bytes;
                    for (k, len) in input_lens[i - rows.start..][..n].iter().enumerate() {
                        bytes += *len as u64;
                        if bytes >= max_bytes {
                            n = k + 1;
                            break;
                        }
                    }
                    n
                }
            };
            let last = chunk.offset(i + n - 1);
            p.builder.push_chunk(chunk, i..i + n);
            p.input_bytes += input_lens[i - rows.start..][..n]
                .iter()
                .map(|l| *l as u64)
                .sum::<u64>();
            p.last = last;
            self.next_offset = Some(last + 1);
            out.extend(self.after_push(last).await?);
            i += n;
        }
        Ok(out)
    }

    /// Records that the input at `offset` was rejected (it is kept elsewhere: a rejects file,
    /// a dead-letter topic); the manifest lists it so continuity stays exact.
    pub async fn push_rejected(
        &mut self,
        offset: i64,
        input_len: usize,
    ) -> Result<Vec<SealedSegment>, SealError> {
        let p = self.begin(offset)?;
        OffsetRange::push_merged(&mut p.rejected, OffsetRange::one(offset));
        p.input_bytes += input_len as u64;
        self.after_push(offset).await
    }

    /// Records that offsets `first..=last` will never be delivered by the source (Kafka
    /// transaction markers, compacted or aborted records). `first` must be the next offset.
    pub async fn push_absent(
        &mut self,
        first: i64,
        last: i64,
    ) -> Result<Vec<SealedSegment>, SealError> {
        self.push_range(Skipped::Absent, first, last).await
    }

    /// Records that offsets `first..=last` were deleted at the source (Kafka retention,
    /// DeleteRecords) before they could be sealed: lost, and said so in the manifest (format
    /// v2). `first` must be the next offset.
    pub async fn push_lost(
        &mut self,
        first: i64,
        last: i64,
    ) -> Result<Vec<SealedSegment>, SealError> {
        self.push_range(Skipped::Lost, first, last).await
    }

    async fn push_range(
        &mut self,
        kind: Skipped,
        first: i64,
        last: i64,
    ) -> Result<Vec<SealedSegment>, SealError> {
        assert!(first <= last, "empty range {first}..={last}");
        let mut out = Vec::new();
        let mut first = first;
        // A recovery range must still end exactly where the stored Parquet file does: split
        // there (that part cuts the recovered segment).
        if let Some(forced) = self.forced_last
            && first <= forced
            && forced < last
        {
            out.extend(self.push_range_in(kind, first, forced).await?);
            first = forced + 1;
        }
        out.extend(self.push_range_in(kind, first, last).await?);
        Ok(out)
    }

    async fn push_range_in(
        &mut self,
        kind: Skipped,
        first: i64,
        last: i64,
    ) -> Result<Vec<SealedSegment>, SealError> {
        let p = self.begin(first)?;
        p.last = last;
        let ranges = match kind {
            Skipped::Absent => &mut p.absent,
            Skipped::Lost => &mut p.lost,
        };
        OffsetRange::push_merged(ranges, OffsetRange::new(first, last));
        self.next_offset = Some(last + 1);
        self.after_push(last).await
    }

    async fn after_push(&mut self, offset: i64) -> Result<Vec<SealedSegment>, SealError> {
        let p = self.pending.as_ref().expect("pending after push");
        let cut = match self.forced_last {
            Some(last) => offset >= last,
            None => {
                p.builder.len() >= self.limits.max_events || p.input_bytes >= self.limits.max_bytes
            }
        };
        if cut {
            Ok(self.cut().await?.into_iter().collect())
        } else {
            Ok(Vec::new())
        }
    }

    /// Call periodically: writes a segment whose background encoding has finished, and cuts
    /// the open segment if it is older than `max_age` (so a quiet stream still seals).
    pub async fn tick(&mut self) -> Result<Vec<SealedSegment>, SealError> {
        let mut out = Vec::new();
        while self.in_flight.front().is_some_and(|t| t.is_finished()) {
            out.extend(self.write_oldest().await?);
        }
        match (&self.pending, self.limits.max_age) {
            (Some(p), Some(age)) if self.forced_last.is_none() && p.opened.elapsed() >= age => {
                out.extend(self.cut().await?);
            }
            _ => {}
        }
        Ok(out)
    }

    /// Seals whatever is open and waits for every segment to be written (end of input,
    /// shutdown). Returns the segments written by this call, in order.
    pub async fn flush(&mut self) -> Result<Vec<SealedSegment>, SealError> {
        let mut out = Vec::new();
        if let (Some(p), Some(needed_last)) = (&self.pending, self.forced_last) {
            // Sealing a shorter range would put a second segment at an offset another writer
            // claimed. What is written so far stays written; this range is read again next time.
            let e = SealError::IncompleteRange {
                stream: self.stream.to_string(),
                first: p.first,
                needed_last,
                got_last: p.last,
            };
            while !self.in_flight.is_empty() {
                self.write_oldest().await?;
            }
            return Err(e);
        }
        if self.pending.is_some() {
            out.extend(self.cut().await?);
        }
        while !self.in_flight.is_empty() {
            out.extend(self.write_oldest().await?);
        }
        Ok(out)
    }

    /// Closes the open segment: turns it into one Arrow batch here, writes the oldest segment
    /// in flight if [`SegmentLimits::encoders`] are, and starts encoding this one in the
    /// background.
    async fn cut(&mut self) -> Result<Option<SealedSegment>, SealError> {
        let Some(p) = self.pending.take() else {
            return Ok(None);
        };
        self.forced_last = None;
        // On this thread, not the encoder's: concatenating a segment's chunks is a copy of all
        // its columns, and the encoders are the pipeline's slowest stage.
        let (batch, stats) = p.builder.finish()?;
        let written = if self.in_flight.len() >= self.limits.encoders.max(1) {
            self.write_oldest().await?
        } else {
            None
        };
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                let parquet = encode_parquet(&batch)?;
                Ok(Encoded {
                    first: p.first,
                    last: p.last,
                    rejected: p.rejected,
                    absent: p.absent,
                    lost: p.lost,
                    stats,
                    parquet,
                    opened: p.opened,
                })
            }));
        Ok(written)
    }

    async fn write_oldest(&mut self) -> Result<Option<SealedSegment>, SealError> {
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let enc = task.await.expect("segment encoding task panicked")?;
        self.write(enc).await.map(Some)
    }
}

mod resume;
mod write;

#[cfg(test)]
mod tests;
