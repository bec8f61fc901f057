//! The Parquet encoding of a segment (docs/FORMAT.md, "Parquet file").
//!
//! [`SegmentBuilder`] turns validated events into one Arrow batch while computing the Merkle
//! root and the pruning statistics; [`encode_parquet`] writes it (zstd, statistics, fixed row
//! group size, no time-dependent metadata, so the same events always give the same bytes);
//! [`scan_segment`] reads a file back and hands every row's [`LeafFields`] and leaf bytes to
//! the caller, trusting nothing but the columns themselves.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    Int32Builder, Int64Builder, MapBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::event::{AuditEvent, EventView, StreamId};
use crate::leaf::{LeafError, event_leaf, view_leaf};
use crate::merkle::{Hash, MerkleBuilder, leaf_hash};

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("the file's columns are not cairn's segment schema v1: {0}")]
    Schema(String),
    #[error("row {row}: {message}")]
    Row { row: u64, message: String },
    #[error("leaf encoding: {0}")]
    Leaf(#[from] LeafError),
}

fn actor_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("ip", DataType::Utf8, true),
    ])
}

fn resource_fields() -> Fields {
    Fields::from(vec![
        Field::new("type", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
    ])
}

fn details_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, false),
            ])),
            false,
        )),
        false,
    )
}

/// The Arrow schema of every segment, in column order.
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("stream_id", DataType::Utf8, false),
                Field::new("stream_partition", DataType::Int32, false),
                Field::new("stream_offset", DataType::Int64, false),
                Field::new("event_id", DataType::Utf8, false),
                Field::new(
                    "occurred_at",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                ),
                Field::new("tenant", DataType::Utf8, false),
                Field::new("actor", DataType::Struct(actor_fields()), false),
                Field::new("action", DataType::Utf8, false),
                Field::new("resource", DataType::Struct(resource_fields()), false),
                Field::new("outcome", DataType::Utf8, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("sensitivity", DataType::Utf8, false),
                Field::new("details", details_type(), true),
            ]))
        })
        .clone()
}

/// A validated event with its position and leaf hash, so the hashing can happen on the thread
/// that parsed it. The leaf hash is always that of (stream, offset, event): fields are private.
#[derive(Clone, Debug)]
pub struct PreparedEvent {
    stream: Arc<StreamId>,
    offset: i64,
    event: AuditEvent,
    leaf_hash: Hash,
}

impl PreparedEvent {
    pub fn new(
        stream: &Arc<StreamId>,
        offset: i64,
        event: AuditEvent,
        buf: &mut Vec<u8>,
    ) -> Result<Self, LeafError> {
        buf.clear();
        event_leaf(stream, offset, &event, buf)?;
        Ok(PreparedEvent {
            stream: Arc::clone(stream),
            offset,
            leaf_hash: leaf_hash(buf),
            event,
        })
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }

    pub fn event(&self) -> &AuditEvent {
        &self.event
    }
}

/// Statistics of a finished segment, all of which go into its manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStats {
    pub event_count: u64,
    pub merkle_root: Hash,
    pub min_occurred_at_us: Option<i64>,
    pub max_occurred_at_us: Option<i64>,
    pub tenants: Vec<String>,
}

/// The Arrow columns of events, one row appended at a time.
pub(crate) struct ColumnsBuilder {
    stream_id: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    event_id: StringBuilder,
    occurred_at: TimestampMicrosecondBuilder,
    tenant: StringBuilder,
    actor_id: StringBuilder,
    actor_type: StringBuilder,
    actor_ip: StringBuilder,
    action: StringBuilder,
    resource_type: StringBuilder,
    resource_id: StringBuilder,
    outcome: StringBuilder,
    source: StringBuilder,
    sensitivity: StringBuilder,
    details: MapBuilder<StringBuilder, StringBuilder>,
    rows: usize,
}

impl ColumnsBuilder {
    pub(crate) fn new() -> Self {
        ColumnsBuilder {
            stream_id: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            event_id: StringBuilder::new(),
            occurred_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            tenant: StringBuilder::new(),
            actor_id: StringBuilder::new(),
            actor_type: StringBuilder::new(),
            actor_ip: StringBuilder::new(),
            action: StringBuilder::new(),
            resource_type: StringBuilder::new(),
            resource_id: StringBuilder::new(),
            outcome: StringBuilder::new(),
            source: StringBuilder::new(),
            sensitivity: StringBuilder::new(),
            details: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
                .with_values_field(Field::new("values", DataType::Utf8, false)),
            rows: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    pub(crate) fn append(&mut self, stream: &StreamId, offset: i64, e: &EventView<'_>) {
        self.stream_id.append_value(&stream.source);
        self.partition.append_value(stream.partition);
        self.offset.append_value(offset);
        self.event_id.append_value(e.event_id);
        self.occurred_at.append_value(e.occurred_at_us);
        self.tenant.append_value(e.tenant);
        self.actor_id.append_value(e.actor_id);
        self.actor_type.append_value(e.actor_type);
        self.actor_ip.append_option(e.actor_ip);
        self.action.append_value(e.action);
        self.resource_type.append_value(e.resource_type);
        self.resource_id.append_value(e.resource_id);
        self.outcome.append_value(e.outcome.as_str());
        self.source.append_value(e.source);
        self.sensitivity.append_value(e.sensitivity.as_str());
        match &e.details {
            None => self.details.append(false).expect("map builder append"),
            Some(m) => {
                for (k, v) in m {
                    self.details.keys().append_value(k);
                    self.details.values().append_value(v);
                }
                self.details.append(true).expect("map builder append");
            }
        }
        self.rows += 1;
    }

    /// The rows appended so far as one batch; the builder starts empty again.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, SegmentError> {
        self.rows = 0;
        let actor = StructArray::try_new(
            actor_fields(),
            vec![
                Arc::new(self.actor_id.finish()) as ArrayRef,
                Arc::new(self.actor_type.finish()),
                Arc::new(self.actor_ip.finish()),
            ],
            None,
        )?;
        let resource = StructArray::try_new(
            resource_fields(),
            vec![
                Arc::new(self.resource_type.finish()) as ArrayRef,
                Arc::new(self.resource_id.finish()),
            ],
            None,
        )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.stream_id.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.tenant.finish()),
            Arc::new(actor),
            Arc::new(self.action.finish()),
            Arc::new(resource),
            Arc::new(self.outcome.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.sensitivity.finish()),
            Arc::new(self.details.finish()),
        ];
        Ok(RecordBatch::try_new(arrow_schema(), columns)?)
    }
}

/// Accumulates one segment's events (in offset order) as Arrow columns: one event at a time
/// ([`SegmentBuilder::push`], [`SegmentBuilder::push_prepared`]) or runs of rows that parser
/// threads already turned into columns ([`SegmentBuilder::push_chunk`]).
pub struct SegmentBuilder {
    stream: StreamId,
    /// Rows pushed one at a time since the last chunk.
    columns: ColumnsBuilder,
    /// Batches in row order: finished `columns` and slices of chunks.
    parts: Vec<RecordBatch>,
    merkle: MerkleBuilder,
    tenants: BTreeSet<String>,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    last_offset: Option<i64>,
    leaf_buf: Vec<u8>,
}

impl SegmentBuilder {
    pub fn new(stream: StreamId) -> Self {
        SegmentBuilder {
            stream,
            columns: ColumnsBuilder::new(),
            parts: Vec::new(),
            merkle: MerkleBuilder::new(),
            tenants: BTreeSet::new(),
            min_ts: None,
            max_ts: None,
            last_offset: None,
            leaf_buf: Vec::with_capacity(512),
        }
    }

    pub fn len(&self) -> u64 {
        self.merkle.size()
    }

    pub fn is_empty(&self) -> bool {
        self.merkle.size() == 0
    }

    /// Appends `event` at `offset`; offsets must be strictly increasing.
    pub fn push(&mut self, offset: i64, e: &AuditEvent) -> Result<(), LeafError> {
        let v = e.view();
        self.leaf_buf.clear();
        view_leaf(&self.stream, offset, &v, &mut self.leaf_buf)?;
        let hash = leaf_hash(&self.leaf_buf);
        self.append(offset, &v, hash);
        Ok(())
    }

    /// Appends an event whose leaf hash was computed elsewhere (another thread) by
    /// [`PreparedEvent::new`]. Panics if it was prepared for another stream.
    pub fn push_prepared(&mut self, p: &PreparedEvent) {
        assert_eq!(*p.stream, self.stream, "event prepared for another stream");
        self.append(p.offset, &p.event.view(), p.leaf_hash);
    }

    /// Appends rows `rows` of `chunk` (offsets increasing past this segment's last). Panics if
    /// the chunk was built for another stream.
    pub fn push_chunk(&mut self, chunk: &EventChunk, rows: std::ops::Range<usize>) {
        use arrow_array::cast::AsArray;
        use arrow_array::types::TimestampMicrosecondType;
        assert_eq!(*chunk.stream, self.stream, "chunk built for another stream");
        if rows.is_empty() {
            return;
        }
        if self.columns.len() > 0 {
            let done = self
                .columns
                .finish()
                .expect("the segment schema's own columns");
            self.parts.push(done);
        }
        let tenant = chunk.batch.column(5).as_string::<i32>();
        let occurred = chunk
            .batch
            .column(4)
            .as_primitive::<TimestampMicrosecondType>();
        for r in rows.clone() {
            let offset = chunk.offsets[r];
            self.check_offset(offset);
            self.merkle.push_leaf_hash(chunk.leaves[r]);
            self.stats(tenant.value(r), occurred.value(r));
            self.last_offset = Some(offset);
        }
        self.parts.push(chunk.batch.slice(rows.start, rows.len()));
    }

    fn check_offset(&self, offset: i64) {
        assert!(
            self.last_offset.is_none_or(|l| l < offset),
            "segment offsets must increase: {offset} after {:?}",
            self.last_offset
        );
    }

    fn stats(&mut self, tenant: &str, occurred_at_us: i64) {
        if !self.tenants.contains(tenant) {
            self.tenants.insert(tenant.to_string());
        }
        let t = occurred_at_us;
        self.min_ts = Some(self.min_ts.map_or(t, |m| m.min(t)));
        self.max_ts = Some(self.max_ts.map_or(t, |m| m.max(t)));
    }

    fn append(&mut self, offset: i64, e: &EventView<'_>, leaf: Hash) {
        self.check_offset(offset);
        self.merkle.push_leaf_hash(leaf);
        self.columns.append(&self.stream, offset, e);
        self.stats(e.tenant, e.occurred_at_us);
        self.last_offset = Some(offset);
    }

    pub fn finish(mut self) -> Result<(RecordBatch, SegmentStats), SegmentError> {
        if self.columns.len() > 0 || self.parts.is_empty() {
            let done = self.columns.finish()?;
            self.parts.push(done);
        }
        // One batch, however the rows arrived: the Parquet bytes depend only on the events.
        let batch = if self.parts.len() == 1 {
            self.parts.pop().expect("one part")
        } else {
            arrow_select::concat::concat_batches(&arrow_schema(), &self.parts)?
        };
        let stats = SegmentStats {
            event_count: self.merkle.size(),
            merkle_root: self.merkle.root(),
            min_occurred_at_us: self.min_ts,
            max_occurred_at_us: self.max_ts,
            tenants: self.tenants.into_iter().collect(),
        };
        Ok((batch, stats))
    }
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("zstd level 3 is valid"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by("cairn segment v1 (parquet-rs 59)".to_string())
        // Unique or nearly unique per event: a dictionary only costs time before the writer
        // falls back to plain encoding.
        .set_column_dictionary_enabled(ColumnPath::from("event_id"), false)
        .set_column_dictionary_enabled(ColumnPath::from("stream_offset"), false)
        .set_column_dictionary_enabled(ColumnPath::from("occurred_at"), false)
        .set_column_dictionary_enabled(ColumnPath::new(vec!["actor".into(), "ip".into()]), false)
        // Format v3: a split-block bloom filter per row group on `event_id`, so that finding one
        // event (`cairn prove`, the query service's point lookups) skips the row groups and
        // segments that do not hold it. parquet-rs sizes it for a full row group and folds it
        // down to the rows written, keeping the 1% false-positive rate.
        .set_column_bloom_filter_enabled(ColumnPath::from("event_id"), true)
        .set_column_bloom_filter_fpp(ColumnPath::from("event_id"), 0.01)
        .build()
}

/// Writes `batch` as one Parquet file. Deterministic: the same batch gives the same bytes.
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>, SegmentError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4 + 4096);
    let mut w = ArrowWriter::try_new(&mut out, arrow_schema(), Some(writer_properties()))?;
    w.write(batch)?;
    w.close()?;
    Ok(out)
}

mod chunk;
mod read;
pub use chunk::{ChunkBuilder, EventChunk};
pub use read::{EventIdFilter, may_hold_event_id, scan_segment};

#[cfg(test)]
mod tests;
