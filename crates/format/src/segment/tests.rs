use super::*;
use crate::merkle::MerkleBuilder;
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use bytes::Bytes;

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

/// Format v3: `event_id` has a bloom filter, so `cairn prove` skips segments without the event.
#[test]
fn the_event_id_bloom_filter_finds_present_ids_and_skips_most_absent_ones() {
    let mut b = SegmentBuilder::new(StreamId::new("app", 0).unwrap());
    for i in 0..1000u32 {
        b.push(i as i64, &event(i, "t")).unwrap();
    }
    let file = Bytes::from(encode_parquet(&b.finish().unwrap().0).unwrap());
    for i in [0u32, 1, 500, 999] {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        assert!(may_hold_event_id(&file, &id).unwrap(), "{id}");
    }
    let false_positives = (1000..2000u32)
        .filter(|i| may_hold_event_id(&file, &format!("00000000-0000-4000-8000-{i:012}")).unwrap())
        .count();
    assert!(false_positives < 50, "{false_positives} of 1000 absent ids");
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

/// Issue 13: rows that parser threads built into chunks, appended in runs (split anywhere and
/// mixed with single events), give the segment exactly the bytes and statistics that pushing
/// the same events one at a time gives.
#[test]
fn segments_built_from_chunks_are_byte_identical_to_segments_built_row_by_row() {
    let stream = StreamId::new("app", 1).unwrap();
    let shared = Arc::new(stream.clone());
    let events: Vec<(i64, AuditEvent)> = (0..300u32)
        .map(|i| (5 + i as i64, event(i, ["x", "a", "m"][i as usize % 3])))
        .collect();
    let mut one_by_one = SegmentBuilder::new(stream.clone());
    for (offset, e) in &events {
        one_by_one.push(*offset, e).unwrap();
    }
    let (want_batch, want_stats) = one_by_one.finish().unwrap();
    let want = encode_parquet(&want_batch).unwrap();

    let chunk = |range: std::ops::Range<usize>| {
        let mut b = ChunkBuilder::new(&shared);
        for (offset, e) in &events[range] {
            b.push(*offset, e).unwrap();
        }
        b.finish().unwrap()
    };
    let (first, second) = (chunk(0..120), chunk(130..300));
    let mut mixed = SegmentBuilder::new(stream.clone());
    mixed.push_chunk(&first, 0..50);
    mixed.push_chunk(&first, 50..50);
    mixed.push_chunk(&first, 50..120);
    for (offset, e) in &events[120..130] {
        mixed.push(*offset, e).unwrap();
    }
    mixed.push_chunk(&second, 0..1);
    mixed.push_chunk(&second, 1..170);
    assert_eq!(mixed.len(), 300);
    let (batch, stats) = mixed.finish().unwrap();
    assert_eq!(stats, want_stats);
    assert_eq!(encode_parquet(&batch).unwrap(), want);
}

#[test]
fn a_chunk_keeps_an_event_whose_leaf_cannot_be_encoded_out() {
    let shared = Arc::new(StreamId::new("app", 0).unwrap());
    let mut b = ChunkBuilder::new(&shared);
    assert_eq!(b.push(-1, &event(1, "t")), Err(LeafError::Negative(0, -1)));
    assert!(b.is_empty());
    b.push(1, &event(1, "t")).unwrap();
    b.push(2, &event(2, "t")).unwrap();
    let c = b.finish().unwrap();
    assert_eq!((c.len(), c.offset(0), c.offset(1)), (2, 1, 2));
    assert_eq!(c.batch.num_rows(), 2);
}
