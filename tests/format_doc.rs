//! docs/FORMAT.md's worked example must be what the code produces, byte for byte. If this test
//! fails after a deliberate format change, bump the format version and paste the printed
//! values into the document.

use bytes::Bytes;
use cairn_format::event::{AuditEvent, StreamId};
use cairn_format::leaf::event_leaf;
use cairn_format::manifest::{ParquetRef, SignatureCheck, StreamRef};
use cairn_format::merkle::{MerkleBuilder, leaf_hash, node_hash};
use cairn_format::names::{ObjectKind, object_name};
use cairn_format::segment::{SegmentBuilder, encode_parquet, scan_segment};
use cairn_format::{Digest, Manifest, OffsetRange, SignedManifest, SigningKey};
use cairn_tests::*;

const EVENT_1: &str = r#"{"event_id":"7f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6","occurred_at":"2026-11-26T09:30:00.123456Z","tenant":"acme","actor":{"id":"u-42","type":"user","ip":"192.0.2.7"},"action":"invoice.read","resource":{"type":"invoice","id":"inv-1001"},"outcome":"success","source":"billing-api","sensitivity":"pii","details":{"request_id":"r-1","region":"eu"}}"#;
const EVENT_3: &str = r#"{"event_id":"0a1b2c3d-4e5f-4a6b-9c7d-8e9fa0b1c2d3","occurred_at":"2026-11-26T09:30:01Z","tenant":"globex","actor":{"id":"svc-7","type":"service"},"action":"user.login","resource":{"type":"user","id":"u-9"},"outcome":"denied","source":"auth-service","sensitivity":"internal"}"#;

#[test]
fn worked_example_in_format_md_matches_the_code() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/FORMAT.md"),
    )
    .unwrap();
    let stream = StreamId::new("billing", 0).unwrap();
    let key = SigningKey::from_seed([0x2a; 32]);
    let e1 = AuditEvent::from_json(EVENT_1.as_bytes()).unwrap();
    let e3 = AuditEvent::from_json(EVENT_3.as_bytes()).unwrap();

    let mut leaf1 = Vec::new();
    event_leaf(&stream, 1, &e1, &mut leaf1).unwrap();
    let mut leaf3 = Vec::new();
    event_leaf(&stream, 3, &e3, &mut leaf3).unwrap();
    let (h1, h3) = (leaf_hash(&leaf1), leaf_hash(&leaf3));
    let root = node_hash(&h1, &h3);
    let mut mb = MerkleBuilder::new();
    mb.push_leaf_hash(h1);
    mb.push_leaf_hash(h3);
    assert_eq!(mb.root(), root);

    // The segment: offsets 1..=3, offset 2 rejected.
    let mut sb = SegmentBuilder::new(stream.clone());
    sb.push(1, &e1).unwrap();
    sb.push(3, &e3).unwrap();
    let (batch, stats) = sb.finish().unwrap();
    assert_eq!(stats.merkle_root, root);
    let parquet = encode_parquet(&batch).unwrap();
    let mut from_rows = MerkleBuilder::new();
    scan_segment::<()>(Bytes::from(parquet.clone()), |_, leaf| {
        from_rows.push_leaf_data(leaf);
        Ok(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        from_rows.root(),
        root,
        "root recomputed from the Parquet rows"
    );

    let manifest = Manifest {
        format: cairn_format::FORMAT_VERSION.into(),
        store: Some("example.com/vault".into()),
        stream: StreamRef {
            id: "billing".into(),
            partition: 0,
        },
        seq: 0,
        first_offset: 1,
        last_offset: 3,
        event_count: 2,
        rejected: vec![OffsetRange::one(2)],
        absent: vec![],
        lost: Some(vec![]),
        min_occurred_at: Some("2026-11-26T09:30:00.123456Z".into()),
        max_occurred_at: Some("2026-11-26T09:30:01.000000Z".into()),
        tenants: stats.tenants.clone(),
        merkle_root: Digest::from_bytes(&root),
        parquet: ParquetRef {
            object: object_name(&stream, 1, 3, ObjectKind::Parquet),
            sha256: Digest::of(&parquet),
            size: parquet.len() as u64,
            version_id: None,
        },
        prev_manifest_sha256: Digest::genesis(),
        schema_sha256: cairn_format::schema_fingerprint(),
        key_id: String::new(),
        sealed_at: "2026-11-26T09:31:00.000000Z".into(),
    };
    let signed = SignedManifest::sign(manifest, &key);
    assert_eq!(
        signed.check_signature(&[key.public()]),
        SignatureCheck::Valid
    );
    let file = String::from_utf8(signed.to_bytes()).unwrap();
    // §12: a log of this one manifest and its checkpoint, signed by the same key.
    let manifest_name = object_name(&stream, 1, 3, ObjectKind::Manifest);
    let log_entry = cairn_format::log::entry(&signed.chain_hash(), &manifest_name);
    let log_root = cairn_format::merkle::leaf_hash(&log_entry);
    let checkpoint = cairn_format::log::Checkpoint {
        origin: cairn_format::log::Origin::parse("example.com/vault").unwrap(),
        size: 1,
        root: log_root,
    }
    .sign(&key);
    assert_eq!(
        cairn_format::log::Checkpoint::open(&checkpoint, &[key.public()])
            .unwrap()
            .size,
        1
    );

    let values = [
        ("public key", hex::encode(key.public().to_bytes())),
        ("key id", key.key_id().to_string()),
        ("leaf bytes of offset 1", hex::encode(&leaf1)),
        ("leaf hash of offset 1", hex::encode(h1)),
        ("leaf hash of offset 3", hex::encode(h3)),
        ("merkle root", hex::encode(root)),
        (
            "schema sha256",
            cairn_format::schema_fingerprint().to_string(),
        ),
        ("manifest file", file.clone()),
        ("manifest chain hash", signed.chain_hash().to_string()),
        ("log entry", String::from_utf8(log_entry.clone()).unwrap()),
        ("log root", hex::encode(log_root)),
        ("checkpoint", checkpoint.clone()),
    ];
    let missing: Vec<_> = values
        .iter()
        .filter(|(_, v)| !doc.contains(v.as_str()))
        .collect();
    if !missing.is_empty() {
        for (label, v) in &values {
            println!("--- {label}\n{v}");
        }
        panic!(
            "docs/FORMAT.md lacks: {:?}",
            missing.iter().map(|(l, _)| l).collect::<Vec<_>>()
        );
    }
}

/// Issue 7, question 12: one list of finding classes, with severities, shared by FORMAT.md
/// §8.1, the README, the human report and `--json` (the names come from one enum).
#[test]
fn format_md_readme_and_the_verifier_share_one_list_of_finding_classes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/FORMAT.md")).unwrap();
    let section = &doc[doc.find("### 8.1 Finding classes").unwrap()..];
    let section = &section[..section.find("### 8.2").unwrap()];
    let table: Vec<(String, String)> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[0].trim_end_matches('`').to_string(),
                cells[1].to_string(),
            )
        })
        .collect();
    let code: Vec<(String, String)> = cairn_verify::FindingKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), k.severity().as_str().to_string()))
        .collect();
    assert_eq!(table, code, "FORMAT.md §8.1 and FindingKind disagree");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for k in cairn_verify::FindingKind::ALL {
        assert!(
            readme.contains(&format!("`{k}`")),
            "README does not name `{k}`"
        );
        // --json uses the same name.
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
}
