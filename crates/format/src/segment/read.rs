//! Reading a segment under the Parquet contract of docs/FORMAT.md §4: types come from the
//! Parquet schema (the embedded Arrow schema is ignored), columns are taken by name, and only
//! `actor.ip` and `details` may be null.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::{DataType, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use super::SegmentError;
use crate::leaf::{LeafFields, encode_leaf};

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

/// The `event_id` bloom filters of a segment file (format v3: one per row group), read once
/// to test many ids.
pub struct EventIdFilter {
    /// `None` when some row group has no filter (segments before v3): every id may be there.
    filters: Option<Vec<parquet::bloom_filter::Sbbf>>,
}

impl EventIdFilter {
    pub fn read(file: &Bytes) -> Result<EventIdFilter, SegmentError> {
        use parquet::file::properties::ReaderProperties;
        use parquet::file::reader::FileReader;
        use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        let reader = SerializedFileReader::new_with_options(file.clone(), options)?;
        let col = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == "event_id");
        let mut filters = Vec::with_capacity(reader.num_row_groups());
        if let Some(col) = col {
            for i in 0..reader.num_row_groups() {
                match reader.get_row_group(i)?.get_column_bloom_filter(col) {
                    Some(f) => filters.push(f.clone()),
                    None => return Ok(EventIdFilter { filters: None }),
                }
            }
        }
        Ok(EventIdFilter {
            filters: col.map(|_| filters),
        })
    }

    /// `false` only when every row group's filter rules `event_id` out.
    pub fn may_hold(&self, event_id: &str) -> bool {
        match &self.filters {
            None => true,
            Some(f) => f.iter().any(|f| f.check(event_id)),
        }
    }
}

/// Can the segment `file` hold an event with this `event_id`? `false` only when every row
/// group has a bloom filter on `event_id` and none of them may contain it (segments written
/// before format v3 have none, so they always may).
pub fn may_hold_event_id(file: &Bytes, event_id: &str) -> Result<bool, SegmentError> {
    Ok(EventIdFilter::read(file)?.may_hold(event_id))
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
