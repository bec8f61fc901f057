use super::*;
use cairn_format::AuditEvent;
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
