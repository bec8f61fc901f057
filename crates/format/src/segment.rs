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
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::event::{AuditEvent, StreamId};
use crate::leaf::{LeafError, LeafFields, encode_leaf, event_leaf};
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
    /// Offsets of the sealed events, ascending.
    pub first_event_offset: Option<i64>,
    pub last_event_offset: Option<i64>,
}

/// Accumulates one segment's events (in offset order) as Arrow columns.
pub struct SegmentBuilder {
    stream: StreamId,
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
    merkle: MerkleBuilder,
    tenants: BTreeSet<String>,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    leaf_buf: Vec<u8>,
}

impl SegmentBuilder {
    pub fn new(stream: StreamId) -> Self {
        SegmentBuilder {
            stream,
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
            merkle: MerkleBuilder::new(),
            tenants: BTreeSet::new(),
            min_ts: None,
            max_ts: None,
            first_offset: None,
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
        self.leaf_buf.clear();
        event_leaf(&self.stream, offset, e, &mut self.leaf_buf)?;
        let hash = leaf_hash(&self.leaf_buf);
        self.append(offset, e, hash);
        Ok(())
    }

    /// Appends an event whose leaf hash was computed elsewhere (another thread) by
    /// [`PreparedEvent::new`]. Panics if it was prepared for another stream.
    pub fn push_prepared(&mut self, p: &PreparedEvent) {
        assert_eq!(*p.stream, self.stream, "event prepared for another stream");
        self.append(p.offset, &p.event, p.leaf_hash);
    }

    fn append(&mut self, offset: i64, e: &AuditEvent, leaf: Hash) {
        assert!(
            self.last_offset.is_none_or(|l| l < offset),
            "segment offsets must increase: {offset} after {:?}",
            self.last_offset
        );
        self.merkle.push_leaf_hash(leaf);

        self.stream_id.append_value(&self.stream.source);
        self.partition.append_value(self.stream.partition);
        self.offset.append_value(offset);
        self.event_id.append_value(&e.event_id);
        self.occurred_at.append_value(e.occurred_at_us);
        self.tenant.append_value(&e.tenant);
        self.actor_id.append_value(&e.actor.id);
        self.actor_type.append_value(&e.actor.kind);
        self.actor_ip.append_option(e.actor.ip.as_deref());
        self.action.append_value(&e.action);
        self.resource_type.append_value(&e.resource.kind);
        self.resource_id.append_value(&e.resource.id);
        self.outcome.append_value(e.outcome.as_str());
        self.source.append_value(&e.source);
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
        if !self.tenants.contains(&e.tenant) {
            self.tenants.insert(e.tenant.clone());
        }
        self.min_ts = Some(
            self.min_ts
                .map_or(e.occurred_at_us, |m| m.min(e.occurred_at_us)),
        );
        self.max_ts = Some(
            self.max_ts
                .map_or(e.occurred_at_us, |m| m.max(e.occurred_at_us)),
        );
        self.first_offset.get_or_insert(offset);
        self.last_offset = Some(offset);
    }

    pub fn finish(mut self) -> Result<(RecordBatch, SegmentStats), SegmentError> {
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
        let batch = RecordBatch::try_new(arrow_schema(), columns)?;
        let stats = SegmentStats {
            event_count: self.merkle.size(),
            merkle_root: self.merkle.root(),
            min_occurred_at_us: self.min_ts,
            max_occurred_at_us: self.max_ts,
            tenants: self.tenants.into_iter().collect(),
            first_event_offset: self.first_offset,
            last_event_offset: self.last_offset,
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

/// Reads a segment file and calls `visit(row_fields, leaf_bytes)` for each row in file order.
/// Only the columns are trusted: leaf bytes are rebuilt from them; details keys are sorted here
/// and duplicates are an error.
pub fn scan_segment<E>(
    file: Bytes,
    mut visit: impl FnMut(&LeafFields<'_>, &[u8]) -> Result<(), E>,
) -> Result<Result<u64, E>, SegmentError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?.with_batch_size(8192);
    let want = arrow_schema();
    let got = builder.schema();
    if got.fields() != want.fields() {
        return Err(SegmentError::Schema(format!(
            "found columns [{}]",
            got.fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let reader = builder.build()?;
    let mut row_no = 0u64;
    let mut leaf = Vec::with_capacity(512);
    for batch in reader {
        let batch = batch?;
        let mut details: Vec<(&str, &str)> = Vec::new();
        let s = |i: usize| batch.column(i).as_string::<i32>();
        let (stream_id, event_id, tenant, action) = (s(0), s(3), s(5), s(7));
        let (outcome, source, sensitivity) = (s(9), s(10), s(11));
        let partition = batch.column(1).as_primitive::<Int32Type>();
        let offset = batch.column(2).as_primitive::<Int64Type>();
        let occurred = batch.column(4).as_primitive::<TimestampMicrosecondType>();
        let actor = batch.column(6).as_struct();
        let (actor_id, actor_type, actor_ip) = (
            actor.column(0).as_string::<i32>(),
            actor.column(1).as_string::<i32>(),
            actor.column(2).as_string::<i32>(),
        );
        let resource = batch.column(8).as_struct();
        let (res_type, res_id) = (
            resource.column(0).as_string::<i32>(),
            resource.column(1).as_string::<i32>(),
        );
        let map = batch.column(12).as_map();
        let (keys, values) = (
            map.keys().as_string::<i32>(),
            map.values().as_string::<i32>(),
        );
        let map_offsets = map.value_offsets();
        let required: [&dyn Array; 16] = [
            stream_id,
            partition,
            offset,
            event_id,
            occurred,
            tenant,
            actor,
            actor_id,
            actor_type,
            action,
            resource,
            res_type,
            res_id,
            outcome,
            source,
            sensitivity,
        ];
        if let Some(a) = required.iter().find(|a| a.null_count() > 0) {
            return Err(SegmentError::Row {
                row: row_no,
                message: format!("null in a required column ({})", a.data_type()),
            });
        }
        if keys.null_count() > 0 || values.null_count() > 0 {
            return Err(SegmentError::Row {
                row: row_no,
                message: "null details key or value".into(),
            });
        }
        for i in 0..batch.num_rows() {
            let details_ref = if map.is_null(i) {
                None
            } else {
                details.clear();
                let (a, b) = (map_offsets[i] as usize, map_offsets[i + 1] as usize);
                details.extend((a..b).map(|j| (keys.value(j), values.value(j))));
                details.sort_unstable_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
                Some(&details[..])
            };
            let f = LeafFields {
                stream_id: stream_id.value(i),
                partition: partition.value(i),
                offset: offset.value(i),
                event_id: event_id.value(i),
                occurred_at_us: occurred.value(i),
                tenant: tenant.value(i),
                actor_id: actor_id.value(i),
                actor_type: actor_type.value(i),
                actor_ip: (!actor_ip.is_null(i)).then(|| actor_ip.value(i)),
                action: action.value(i),
                resource_type: res_type.value(i),
                resource_id: res_id.value(i),
                outcome: outcome.value(i),
                source: source.value(i),
                sensitivity: sensitivity.value(i),
                details: details_ref,
            };
            leaf.clear();
            encode_leaf(&f, &mut leaf).map_err(|e| SegmentError::Row {
                row: row_no,
                message: e.to_string(),
            })?;
            if let Err(e) = visit(&f, &leaf) {
                return Ok(Err(e));
            }
            row_no += 1;
        }
    }
    Ok(Ok(row_no))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MerkleBuilder;

    pub(crate) fn event(i: u32, tenant: &str) -> AuditEvent {
        let json = format!(
            r#"{{"event_id":"00000000-0000-4000-8000-{i:012}","occurred_at":"2026-11-26T00:00:{:02}Z","tenant":"{tenant}","actor":{{"id":"u{i}","type":"user"}},"action":"read","resource":{{"type":"doc","id":"d{i}"}},"outcome":"success","source":"app","sensitivity":"internal"{}}}"#,
            i % 60,
            if i.is_multiple_of(2) {
                r#","details":{"z":"1","a":"2"}"#
            } else {
                ""
            }
        );
        AuditEvent::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn write_then_scan_recomputes_the_same_root_and_bytes_are_deterministic() {
        let stream = StreamId::new("app", 3).unwrap();
        let build = || {
            let mut b = SegmentBuilder::new(stream.clone());
            for i in 0..100u32 {
                b.push(10 + i as i64 * 2, &event(i, if i < 50 { "b" } else { "a" }))
                    .unwrap();
            }
            b.finish().unwrap()
        };
        let (batch, stats) = build();
        assert_eq!(stats.event_count, 100);
        assert_eq!(stats.tenants, ["a", "b"]);
        let bytes = encode_parquet(&batch).unwrap();
        assert_eq!(bytes, encode_parquet(&build().0).unwrap());
        let mut m = MerkleBuilder::new();
        let mut offsets = Vec::new();
        let n = scan_segment::<()>(Bytes::from(bytes), |f, leaf| {
            offsets.push(f.offset);
            m.push_leaf_data(leaf);
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(n, 100);
        assert_eq!(offsets[99], 208);
        assert_eq!(m.root(), stats.merkle_root);
    }

    #[test]
    fn empty_segments_are_valid_files() {
        let (batch, stats) = SegmentBuilder::new(StreamId::new("x", 0).unwrap())
            .finish()
            .unwrap();
        assert_eq!(stats.merkle_root, crate::merkle::empty_root());
        let bytes = encode_parquet(&batch).unwrap();
        let n = scan_segment::<()>(Bytes::from(bytes), |_, _| Ok(()))
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn foreign_parquet_files_are_refused_with_the_columns_found() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::Int64Array::from(vec![1]))],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = scan_segment::<()>(Bytes::from(out), |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("found columns [a Int64]"), "{err}");
    }
}
