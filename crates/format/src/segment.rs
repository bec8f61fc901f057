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
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
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

/// What a column of the segment contract (docs/FORMAT.md §4) holds, as the Arrow type that the
/// Parquet schema alone maps to (the embedded Arrow schema is ignored).
#[derive(Clone, Copy)]
enum Col {
    Str,
    I32,
    I64,
    UtcMicros,
    Struct(&'static [&'static str]),
    StrMap,
}

/// The contract: names and order are significant, nullability and map part names are not.
const CONTRACT: [(&str, Col); 13] = [
    ("stream_id", Col::Str),
    ("stream_partition", Col::I32),
    ("stream_offset", Col::I64),
    ("event_id", Col::Str),
    ("occurred_at", Col::UtcMicros),
    ("tenant", Col::Str),
    ("actor", Col::Struct(&["id", "type", "ip"])),
    ("action", Col::Str),
    ("resource", Col::Struct(&["type", "id"])),
    ("outcome", Col::Str),
    ("source", Col::Str),
    ("sensitivity", Col::Str),
    ("details", Col::StrMap),
];

fn col_matches(col: Col, t: &DataType) -> bool {
    match (col, t) {
        (Col::Str, DataType::Utf8) | (Col::I32, DataType::Int32) | (Col::I64, DataType::Int64) => {
            true
        }
        (Col::UtcMicros, DataType::Timestamp(TimeUnit::Microsecond, Some(tz))) => {
            tz.as_ref() == "UTC"
        }
        (Col::Struct(names), DataType::Struct(fields)) => {
            fields.len() == names.len()
                && fields
                    .iter()
                    .zip(names)
                    .all(|(f, n)| f.name() == n && f.data_type() == &DataType::Utf8)
        }
        (Col::StrMap, DataType::Map(entries, _)) => match entries.data_type() {
            DataType::Struct(kv) => {
                kv.len() == 2 && kv.iter().all(|f| f.data_type() == &DataType::Utf8)
            }
            _ => false,
        },
        _ => false,
    }
}

/// Checks the file's Parquet schema against the contract of docs/FORMAT.md §4.
fn check_contract(
    parquet: &parquet::schema::types::SchemaDescriptor,
    arrow: &Schema,
) -> Result<(), SegmentError> {
    use parquet::basic::{ConvertedType, LogicalType, Type as Physical};
    let found = || {
        arrow
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if arrow.fields().len() != CONTRACT.len()
        || arrow
            .fields()
            .iter()
            .zip(CONTRACT)
            .any(|(f, (name, col))| f.name() != name || !col_matches(col, f.data_type()))
    {
        return Err(SegmentError::Schema(format!("found columns [{}]", found())));
    }
    // JSON-annotated byte arrays also map to Utf8: only STRING (or legacy UTF8) is a string.
    for c in parquet.columns() {
        if c.physical_type() == Physical::BYTE_ARRAY {
            let string = match c.logical_type_ref() {
                Some(l) => *l == LogicalType::String,
                None => c.converted_type() == ConvertedType::UTF8,
            };
            if !string {
                return Err(SegmentError::Schema(format!(
                    "column {} is a byte array without the STRING annotation ({:?} / {})",
                    c.path(),
                    c.logical_type_ref(),
                    c.converted_type()
                )));
            }
        }
    }
    Ok(())
}

/// One batch's columns, by name.
struct Columns<'a> {
    stream_id: &'a arrow_array::StringArray,
    partition: &'a arrow_array::Int32Array,
    offset: &'a arrow_array::Int64Array,
    event_id: &'a arrow_array::StringArray,
    occurred: &'a arrow_array::TimestampMicrosecondArray,
    tenant: &'a arrow_array::StringArray,
    actor: &'a StructArray,
    actor_id: &'a arrow_array::StringArray,
    actor_type: &'a arrow_array::StringArray,
    actor_ip: &'a arrow_array::StringArray,
    action: &'a arrow_array::StringArray,
    resource: &'a StructArray,
    resource_type: &'a arrow_array::StringArray,
    resource_id: &'a arrow_array::StringArray,
    outcome: &'a arrow_array::StringArray,
    source: &'a arrow_array::StringArray,
    sensitivity: &'a arrow_array::StringArray,
    details: &'a arrow_array::MapArray,
}

impl<'a> Columns<'a> {
    /// Only after [`check_contract`]: every name exists with its type.
    fn of(batch: &'a RecordBatch) -> Self {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .expect("the contract check found every column")
        };
        let s = |name: &str| col(name).as_string::<i32>();
        let actor = col("actor").as_struct();
        let resource = col("resource").as_struct();
        let child = |st: &'a StructArray, name: &str| {
            st.column_by_name(name)
                .expect("the contract check found every field")
                .as_string::<i32>()
        };
        Columns {
            stream_id: s("stream_id"),
            partition: col("stream_partition").as_primitive::<Int32Type>(),
            offset: col("stream_offset").as_primitive::<Int64Type>(),
            event_id: s("event_id"),
            occurred: col("occurred_at").as_primitive::<TimestampMicrosecondType>(),
            tenant: s("tenant"),
            actor,
            actor_id: child(actor, "id"),
            actor_type: child(actor, "type"),
            actor_ip: child(actor, "ip"),
            action: s("action"),
            resource,
            resource_type: child(resource, "type"),
            resource_id: child(resource, "id"),
            outcome: s("outcome"),
            source: s("source"),
            sensitivity: s("sensitivity"),
            details: col("details").as_map(),
        }
    }

    /// Nulls are allowed only in `actor.ip` and `details` (docs/FORMAT.md §4), whatever
    /// nullability the file declares.
    fn check_nulls(&self) -> Result<(), String> {
        let required: [(&str, &dyn Array); 16] = [
            ("stream_id", self.stream_id),
            ("stream_partition", self.partition),
            ("stream_offset", self.offset),
            ("event_id", self.event_id),
            ("occurred_at", self.occurred),
            ("tenant", self.tenant),
            ("actor", self.actor),
            ("actor.id", self.actor_id),
            ("actor.type", self.actor_type),
            ("action", self.action),
            ("resource", self.resource),
            ("resource.type", self.resource_type),
            ("resource.id", self.resource_id),
            ("outcome", self.outcome),
            ("source", self.source),
            ("sensitivity", self.sensitivity),
        ];
        if let Some((name, _)) = required.iter().find(|(_, a)| a.null_count() > 0) {
            return Err(format!("null in {name}, which must hold a value"));
        }
        if self.details.keys().null_count() > 0 || self.details.values().null_count() > 0 {
            return Err("null details key or value".into());
        }
        Ok(())
    }
}

/// Reads a segment file under the contract of docs/FORMAT.md §4 and calls
/// `visit(row_fields, leaf_bytes)` for each row in file order. Only the columns are trusted:
/// leaf bytes are rebuilt from them; details keys are sorted here and duplicates are an error.
/// Types come from the Parquet schema; the embedded Arrow schema (`ARROW:schema`) is ignored,
/// so files from other writers (pyarrow: `key_value` map parts, `large_string`, `+00:00`) read
/// the same as cairn's own.
pub fn scan_segment<E>(
    file: Bytes,
    mut visit: impl FnMut(&LeafFields<'_>, &[u8]) -> Result<(), E>,
) -> Result<Result<u64, E>, SegmentError> {
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?.with_batch_size(8192);
    check_contract(builder.parquet_schema(), builder.schema())?;
    let reader = builder.build()?;
    let mut row_no = 0u64;
    let mut leaf = Vec::with_capacity(512);
    for batch in reader {
        let batch = batch?;
        let c = Columns::of(&batch);
        let mut details: Vec<(&str, &str)> = Vec::new();
        c.check_nulls().map_err(|message| SegmentError::Row {
            row: row_no,
            message,
        })?;
        let (keys, values) = (
            c.details.keys().as_string::<i32>(),
            c.details.values().as_string::<i32>(),
        );
        let map_offsets = c.details.value_offsets();
        for i in 0..batch.num_rows() {
            let details_ref = if c.details.is_null(i) {
                None
            } else {
                details.clear();
                let (a, b) = (map_offsets[i] as usize, map_offsets[i + 1] as usize);
                details.extend((a..b).map(|j| (keys.value(j), values.value(j))));
                details.sort_unstable_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
                Some(&details[..])
            };
            let f = LeafFields {
                stream_id: c.stream_id.value(i),
                partition: c.partition.value(i),
                offset: c.offset.value(i),
                event_id: c.event_id.value(i),
                occurred_at_us: c.occurred.value(i),
                tenant: c.tenant.value(i),
                actor_id: c.actor_id.value(i),
                actor_type: c.actor_type.value(i),
                actor_ip: (!c.actor_ip.is_null(i)).then(|| c.actor_ip.value(i)),
                action: c.action.value(i),
                resource_type: c.resource_type.value(i),
                resource_id: c.resource_id.value(i),
                outcome: c.outcome.value(i),
                source: c.source.value(i),
                sensitivity: c.sensitivity.value(i),
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

    /// A cairn segment batch rebuilt column by column by `f(name, field, array)`.
    fn variant(
        batch: &RecordBatch,
        f: impl Fn(&str, &Field, &ArrayRef) -> Option<(Field, ArrayRef)>,
    ) -> Vec<u8> {
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            if let Some((nf, na)) = f(field.name(), field, array) {
                fields.push(nf);
                arrays.push(na);
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let b = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema, None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        out
    }

    fn sample_batch() -> (RecordBatch, Hash) {
        let mut b = SegmentBuilder::new(StreamId::new("app", 1).unwrap());
        for i in 0..20u32 {
            b.push(5 + i as i64, &event(i, "t")).unwrap();
        }
        let (batch, stats) = b.finish().unwrap();
        (batch, stats.merkle_root)
    }

    fn root_of(file: Vec<u8>) -> Result<Hash, SegmentError> {
        let mut m = MerkleBuilder::new();
        scan_segment::<()>(Bytes::from(file), |_, leaf| {
            m.push_leaf_data(leaf);
            Ok(())
        })?
        .unwrap();
        Ok(m.root())
    }

    fn same(_: &str, f: &Field, a: &ArrayRef) -> Option<(Field, ArrayRef)> {
        Some((f.clone(), a.clone()))
    }

    /// Issue 7: a content-identical file from another writer (pyarrow names the map parts
    /// `key_value`/`key`/`value`, declares columns nullable, may use large strings or `+00:00`)
    /// must read the same; FORMAT.md §4 lists what the contract accepts.
    #[test]
    fn the_contract_accepts_other_writers_spellings_of_the_same_content() {
        let (batch, root) = sample_batch();
        let renamed_map = variant(&batch, |name, f, a| {
            if name != "details" {
                return same(name, f, a);
            }
            let m = a.as_map();
            let kv = Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]);
            let entries =
                StructArray::try_new(kv.clone(), vec![m.keys().clone(), m.values().clone()], None)
                    .unwrap();
            let entries_field = Arc::new(Field::new("key_value", DataType::Struct(kv), false));
            let arr = arrow_array::MapArray::try_new(
                entries_field.clone(),
                m.offsets().clone(),
                entries,
                m.nulls().cloned(),
                false,
            )
            .unwrap();
            Some((
                Field::new("details", DataType::Map(entries_field, false), true),
                Arc::new(arr) as ArrayRef,
            ))
        });
        assert_eq!(root_of(renamed_map).unwrap(), root, "map parts renamed");
        let all_nullable = variant(&batch, |_, f, a| {
            Some((f.clone().with_nullable(true), a.clone()))
        });
        assert_eq!(root_of(all_nullable).unwrap(), root, "declared nullable");
        let large = variant(&batch, |_, f, a| {
            if f.data_type() == &DataType::Utf8 {
                let v = arrow_array::LargeStringArray::from_iter(a.as_string::<i32>().iter());
                Some((
                    Field::new(f.name(), DataType::LargeUtf8, f.is_nullable()),
                    Arc::new(v) as ArrayRef,
                ))
            } else {
                Some((f.clone(), a.clone()))
            }
        });
        assert_eq!(root_of(large).unwrap(), root, "LargeUtf8");
        let offset_tz = variant(&batch, |name, f, a| {
            if name != "occurred_at" {
                return Some((f.clone(), a.clone()));
            }
            let ts = a
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone("+00:00");
            let t = ts.data_type().clone();
            Some((Field::new(name, t, false), Arc::new(ts) as ArrayRef))
        });
        assert_eq!(root_of(offset_tz).unwrap(), root, "+00:00");
    }

    #[test]
    fn the_contract_refuses_what_format_md_section_4_refuses() {
        let (batch, _) = sample_batch();
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        cases.push((
            "extra column",
            variant(&batch, |name, f, a| {
                if name == "sensitivity" {
                    // Keep it, then nothing else: the extra one is added below.
                }
                Some((f.clone(), a.clone()))
            }),
        ));
        // Rebuild the first case with an extra trailing column.
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut arrays = batch.columns().to_vec();
        fields.push(Field::new("note", DataType::Utf8, true));
        arrays.push(Arc::new(arrow_array::StringArray::from(vec![
            Some("x");
            20
        ])));
        let schema = Arc::new(Schema::new(fields));
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema.clone(), None).unwrap();
        w.write(&RecordBatch::try_new(schema, arrays).unwrap())
            .unwrap();
        w.close().unwrap();
        cases[0].1 = out;
        let retime = |tz: Option<&str>, unit: TimeUnit| {
            variant(&batch, move |name, f, a| {
                if name != "occurred_at" {
                    return Some((f.clone(), a.clone()));
                }
                let v = a.as_primitive::<TimestampMicrosecondType>();
                let arr: ArrayRef = match unit {
                    TimeUnit::Millisecond => Arc::new(
                        arrow_array::TimestampMillisecondArray::from_iter(
                            v.iter().map(|x| x.map(|x| x / 1000)),
                        )
                        .with_timezone_opt(tz.map(|t| t.to_string())),
                    ),
                    _ => Arc::new(v.clone().with_timezone_opt(tz.map(|t| t.to_string()))),
                };
                Some((Field::new(name, arr.data_type().clone(), false), arr))
            })
        };
        cases.push(("milliseconds", retime(Some("UTC"), TimeUnit::Millisecond)));
        cases.push(("not adjusted to UTC", retime(None, TimeUnit::Microsecond)));
        cases.push((
            "binary tenant",
            variant(&batch, |name, f, a| {
                if name != "tenant" {
                    return Some((f.clone(), a.clone()));
                }
                let v = arrow_array::BinaryArray::from_iter(
                    a.as_string::<i32>().iter().map(|x| x.map(str::as_bytes)),
                );
                Some((
                    Field::new(name, DataType::Binary, false),
                    Arc::new(v) as ArrayRef,
                ))
            }),
        ));
        // Columns swapped: tenant where event_id was.
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut arrays = batch.columns().to_vec();
        fields.swap(3, 5);
        arrays.swap(3, 5);
        let schema = Arc::new(Schema::new(fields));
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema.clone(), None).unwrap();
        w.write(&RecordBatch::try_new(schema, arrays).unwrap())
            .unwrap();
        w.close().unwrap();
        cases.push(("reordered", out));
        cases.push((
            "null tenant",
            variant(&batch, |name, f, a| {
                if name != "tenant" {
                    return Some((f.clone(), a.clone()));
                }
                let v = arrow_array::StringArray::from_iter(
                    a.as_string::<i32>()
                        .iter()
                        .enumerate()
                        .map(|(i, x)| if i == 3 { None } else { x }),
                );
                Some((
                    Field::new(name, DataType::Utf8, true),
                    Arc::new(v) as ArrayRef,
                ))
            }),
        ));
        for (what, file) in cases {
            let e = root_of(file).unwrap_err();
            assert!(
                matches!(e, SegmentError::Schema(_) | SegmentError::Row { .. }),
                "{what}: {e}"
            );
        }
    }
}
