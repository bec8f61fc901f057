use super::*;
use bytes::Bytes;
use cairn_format::AuditEvent;
use cairn_format::Claim;
use cairn_format::names::claim_name;
use cairn_store::WriterOptions;

async fn writer(dir: &tempfile::TempDir) -> Arc<StoreWriter> {
    Arc::new(
        StoreWriter::open(dir.path().to_str().unwrap(), &WriterOptions::default())
            .await
            .unwrap(),
    )
}

/// `event(offset)` prepared for `s`'s stream at `offset`.
fn prepared(s: &StreamSealer, offset: i64) -> PreparedEvent {
    PreparedEvent::new(
        &Arc::new(s.stream.clone()),
        offset,
        event(offset),
        &mut Vec::new(),
    )
    .unwrap()
}

fn event(i: i64) -> AuditEvent {
    let json = format!(
        r#"{{"event_id":"00000000-0000-4000-8000-{i:012}","occurred_at":"2026-11-26T00:00:00Z","tenant":"t{}","actor":{{"id":"u","type":"user"}},"action":"read","resource":{{"type":"doc","id":"d"}},"outcome":"success","source":"app","sensitivity":"internal"}}"#,
        i % 3
    );
    AuditEvent::from_json(json.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn cuts_chains_and_resumes_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer(&dir).await;
    let key = SigningKey::from_seed([1; 32]);
    let stream = StreamId::new("app", 0).unwrap();
    let limits = SegmentLimits {
        max_events: 4,
        ..Default::default()
    };
    let mut s = StreamSealer::open(store.clone(), key.clone(), stream.clone(), limits.clone())
        .await
        .unwrap();
    assert_eq!(s.resume_offset(), None);
    let mut sealed = Vec::new();
    for off in 1..=10 {
        let r = if off == 3 {
            s.push_rejected(off, 10).await.unwrap()
        } else {
            s.push_prepared(&prepared(&s, off), 10).await.unwrap()
        };
        sealed.extend(r);
    }
    assert!(matches!(
        s.push_prepared(&prepared(&s, 12), 1).await,
        Err(SealError::OffsetOrder { expected: 11, .. })
    ));
    sealed.extend(s.flush().await.unwrap());
    let ranges: Vec<_> = sealed
        .iter()
        .map(|x| {
            (
                x.manifest.manifest.first_offset,
                x.manifest.manifest.last_offset,
            )
        })
        .collect();
    assert_eq!(ranges, [(1, 5), (6, 9), (10, 10)]);
    assert_eq!(
        sealed[0].manifest.manifest.rejected,
        vec![OffsetRange::one(3)]
    );
    assert_eq!(sealed[0].manifest.manifest.event_count, 4);
    assert_eq!(
        sealed[1].manifest.manifest.prev_manifest_sha256,
        sealed[0].manifest.chain_hash()
    );
    let s2 = StreamSealer::open(store.clone(), key, stream, limits)
        .await
        .unwrap();
    assert_eq!(s2.resume_offset(), Some(11));
    assert_eq!(s2.next_seq, 3);
    assert_eq!(s2.prev_hash, sealed[2].manifest.chain_hash());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_quiet_stream_is_sealed_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer(&dir).await;
    let limits = SegmentLimits {
        max_events: 1000,
        max_bytes: u64::MAX,
        max_age: Some(Duration::from_millis(50)),
        encoders: 1,
    };
    let mut s = StreamSealer::open(
        store.clone(),
        SigningKey::from_seed([2; 32]),
        StreamId::new("quiet", 1).unwrap(),
        limits,
    )
    .await
    .unwrap();
    assert!(
        s.push_prepared(&prepared(&s, 0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.tick().await.unwrap().is_empty(), "too young to seal");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(
        s.tick().await.unwrap().is_empty(),
        "cut; encoding in the background"
    );
    // Later ticks write it once encoded, without waiting for another cut.
    let mut written = Vec::new();
    for _ in 0..100 {
        written.extend(s.tick().await.unwrap());
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].manifest.manifest.last_offset, 0);
    assert!(s.flush().await.unwrap().is_empty());
}

/// Issue 9.5: two writers that both believe they own a stream (a consumer-group member whose
/// write outlasted a rebalance, and the new owner) must never seal different ranges from one
/// offset. Each claims the segment's first offset before writing; the later writer either
/// seals exactly the claimed range (and adopts what is already there) or gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn two_writers_of_one_stream_never_seal_different_ranges_from_one_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = writer(&dir).await;
    let key = SigningKey::from_seed([3; 32]);
    let stream = StreamId::new("race", 0).unwrap();
    let open = |max_events: u64| {
        StreamSealer::open(
            store.clone(),
            key.clone(),
            stream.clone(),
            SegmentLimits {
                max_events,
                max_bytes: u64::MAX,
                max_age: None,
                encoders: 1,
            },
        )
    };
    async fn feed(s: &mut StreamSealer, offsets: std::ops::RangeInclusive<i64>) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for o in offsets {
            out.extend(s.push_prepared(&prepared(s, o), 10).await.unwrap());
        }
        out.extend(s.flush().await.unwrap());
        out.iter()
            .map(|x| {
                (
                    x.manifest.manifest.first_offset,
                    x.manifest.manifest.last_offset,
                )
            })
            .collect()
    }
    let mut first = open(4).await.unwrap();
    assert_eq!(feed(&mut first, 0..=3).await, [(0, 3)]);

    // A and B both resume at 4; B seals 4..=6 first, so A's 4..=8 is refused.
    let (mut a, mut b) = (open(5).await.unwrap(), open(3).await.unwrap());
    assert_eq!(feed(&mut b, 4..=6).await, [(4, 6)]);
    for o in 4..=8 {
        a.push_prepared(&prepared(&a, o), 10).await.unwrap();
    }
    let refused = a.flush().await.unwrap_err();
    assert!(
        matches!(
            refused,
            SealError::Superseded {
                first: 4,
                claimed_last: 6,
                last: 8,
                ..
            }
        ),
        "{refused}"
    );
    assert!(refused.is_transient(), "reopening resolves it");
    assert_eq!(open(5).await.unwrap().resume_offset(), Some(7));

    // A writer that claimed 7..=9 and stopped: the next one seals exactly that range first.
    store
        .create(
            &claim_name(&stream, 7),
            Bytes::from(Claim::new(&stream, 7, 9, &"ab".repeat(16)).to_bytes()),
        )
        .await
        .unwrap();
    let mut c = open(5).await.unwrap();
    assert_eq!(c.resume_offset(), Some(7));
    assert_eq!(feed(&mut c, 7..=12).await, [(7, 9), (10, 12)]);

    // D and E seal the same range from the same input: E adopts D's manifest and chains on.
    let (mut d, mut e) = (open(2).await.unwrap(), open(2).await.unwrap());
    for o in 13..=14 {
        d.push_prepared(&prepared(&d, o), 10).await.unwrap();
        e.push_prepared(&prepared(&e, o), 10).await.unwrap();
    }
    let d_sealed = d.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let e_sealed = e.flush().await.unwrap();
    assert_eq!(
        e_sealed[0].manifest, d_sealed[0].manifest,
        "adopted, not a second one"
    );
    assert_eq!(feed(&mut e, 15..=16).await, [(15, 16)]);

    // Input that ends inside a claimed range seals none of it.
    store
        .create(
            &claim_name(&stream, 17),
            Bytes::from(Claim::new(&stream, 17, 20, &"cd".repeat(16)).to_bytes()),
        )
        .await
        .unwrap();
    let mut f = open(5).await.unwrap();
    for o in 17..=18 {
        f.push_prepared(&prepared(&f, o), 10).await.unwrap();
    }
    assert!(matches!(
        f.flush().await,
        Err(SealError::IncompleteRange {
            first: 17,
            needed_last: 20,
            got_last: 18,
            ..
        })
    ));
    assert_eq!(open(5).await.unwrap().resume_offset(), Some(17));
}

/// Issue 13: `push_events` (runs of rows that parser threads built) must seal exactly what
/// pushing the same events one at a time seals: the same cuts by count, by input bytes and at
/// a claimed range's end, the same rejected offsets, roots and Parquet bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn runs_of_rows_seal_exactly_what_single_events_seal() {
    use cairn_format::segment::ChunkBuilder;
    type Sealed = (i64, i64, u64, Digest, Digest, Vec<OffsetRange>);
    let rejected = |o: i64| [3, 17, 18, 29].contains(&o);
    let len = |o: i64| 10 + (o % 4) as usize;
    async fn run(
        by_rows: bool,
        rejected: impl Fn(i64) -> bool,
        len: impl Fn(i64) -> usize,
    ) -> Vec<Sealed> {
        let dir = tempfile::tempdir().unwrap();
        let store = writer(&dir).await;
        let stream = StreamId::new("runs", 0).unwrap();
        let open = |max_events| {
            let limits = SegmentLimits {
                max_events,
                max_bytes: 75,
                max_age: None,
                encoders: 2,
            };
            StreamSealer::open(
                store.clone(),
                SigningKey::from_seed([4; 32]),
                stream.clone(),
                limits,
            )
        };
        let mut sealed = Vec::new();
        let mut feed = async |s: &mut StreamSealer, lines: std::ops::RangeInclusive<i64>| {
            let shared = Arc::new(s.stream.clone());
            let lines: Vec<i64> = lines.collect();
            for block in lines.chunks(9) {
                let mut chunk = ChunkBuilder::new(&shared);
                for &o in block.iter().filter(|o| !rejected(**o)) {
                    chunk.push(o, &event(o)).unwrap();
                }
                let chunk = chunk.finish().unwrap();
                let (mut row, mut lens) = (0, Vec::new());
                for &o in block {
                    if by_rows && !rejected(o) {
                        sealed.extend(s.push_prepared(&prepared(s, o), len(o)).await.unwrap());
                    } else if !rejected(o) {
                        lens.push(len(o));
                    } else {
                        let run = row..row + lens.len();
                        sealed.extend(s.push_events(&chunk, run, &lens).await.unwrap());
                        row += lens.len();
                        lens.clear();
                        sealed.extend(s.push_rejected(o, len(o)).await.unwrap());
                    }
                }
                let run = row..row + lens.len();
                sealed.extend(s.push_events(&chunk, run, &lens).await.unwrap());
            }
            sealed.extend(s.flush().await.unwrap());
        };
        let mut s = open(7).await.unwrap();
        feed(&mut s, 1..=40).await;
        // A writer claimed 41..=52 and stopped: the range is sealed whole, whatever the limits.
        store
            .create(
                &claim_name(&stream, 41),
                Bytes::from(Claim::new(&stream, 41, 52, &"ef".repeat(16)).to_bytes()),
            )
            .await
            .unwrap();
        let mut s = open(4).await.unwrap();
        feed(&mut s, 41..=58).await;
        // Two encoders at once, yet written in order: one chain.
        for w in sealed.windows(2) {
            assert_eq!(
                w[1].manifest.manifest.prev_manifest_sha256,
                w[0].manifest.chain_hash()
            );
            assert_eq!(w[1].manifest.manifest.seq, w[0].manifest.manifest.seq + 1);
        }
        sealed
            .iter()
            .map(|x| {
                let m = &x.manifest.manifest;
                (
                    m.first_offset,
                    m.last_offset,
                    m.event_count,
                    m.merkle_root.clone(),
                    m.parquet.sha256.clone(),
                    m.rejected.clone(),
                )
            })
            .collect()
    }
    let rows = run(true, rejected, len).await;
    let runs = run(false, rejected, len).await;
    // Cut by input bytes (1..=7: 6 events, 82 bytes), by both (8..=14), at the claimed end
    // (41..=52, more than 4 events) and by count (53..=56).
    let ranges: Vec<(i64, i64)> = rows.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        ranges,
        [
            (1, 7),
            (8, 14),
            (15, 21),
            (22, 28),
            (29, 35),
            (36, 40),
            (41, 52),
            (53, 56),
            (57, 58)
        ]
    );
    assert_eq!(runs, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_run_of_rows_with_a_gap_in_its_offsets_is_refused() {
    use cairn_format::segment::ChunkBuilder;
    let dir = tempfile::tempdir().unwrap();
    let stream = StreamId::new("gap", 0).unwrap();
    let mut s = StreamSealer::open(
        writer(&dir).await,
        SigningKey::from_seed([5; 32]),
        stream.clone(),
        SegmentLimits::default(),
    )
    .await
    .unwrap();
    let mut chunk = ChunkBuilder::new(&Arc::new(stream));
    for o in [1, 2, 4] {
        chunk.push(o, &event(o)).unwrap();
    }
    let chunk = chunk.finish().unwrap();
    let e = s.push_events(&chunk, 0..3, &[1, 1, 1]).await.unwrap_err();
    assert!(
        matches!(
            e,
            SealError::OffsetOrder {
                expected: 3,
                got: 4,
                ..
            }
        ),
        "{e}"
    );
}
