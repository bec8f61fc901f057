//! The verifier: recomputes everything an auditor relies on from what is in a store.
//!
//! For every manifest: its signature against the trusted public keys, that its name matches
//! its content, the Parquet file's SHA-256 and size, the Merkle root rebuilt from the rows
//! (never from a stored hash), and that every offset of its range is an event or listed as
//! rejected/absent. Per stream: the chain from genesis, and offset continuity (no gap, no
//! overlap). On versioned stores (S3): that no later version or delete marker shadows a sealed
//! object, reading the pinned original versions.
//!
//! Every problem becomes a [`Finding`] naming the object and its [`FindingKind`]. This crate
//! only reads: it must never write to a store, and depends on format and store only.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use cairn_format::event::StreamId;
use cairn_format::manifest::{GENESIS, SignatureCheck};
use cairn_format::merkle::MerkleBuilder;
use cairn_format::names::{ObjectKind, ObjectName, ROOT, parse_object_name};
use cairn_format::segment::scan_segment;
use cairn_format::{PublicKey, SignedManifest};
use cairn_store::{Store, StoreError};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The class of a problem. Serialised in snake_case in `--json` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The Parquet file's bytes differ from the hash/size its manifest signs.
    ModifiedFile,
    /// A manifest names a Parquet file that is not in the store.
    MissingFile,
    /// A manifest's body was altered (unparseable, or its signature fails and its successor's
    /// chain link no longer matches it).
    ModifiedManifest,
    /// A manifest's signature does not verify while its body is intact (its successor still
    /// links to it), or the last manifest of a stream fails verification.
    BadSignature,
    /// Signed by a key that is not among the trusted public keys.
    UnknownKey,
    /// Offsets of a stream that no segment covers: segments are missing.
    Gap,
    /// Two segments cover the same offsets.
    Overlap,
    /// A manifest's `prev_manifest_sha256` does not match the manifest before it.
    BrokenChain,
    /// Objects are not where their content says they belong (renamed or swapped), or the
    /// sequence numbers disagree with offset order.
    Reordered,
    /// A later version or delete marker hides a sealed object (S3).
    ShadowedVersion,
    /// The file matches its hash but its rows disagree with the signed manifest (root, count,
    /// offsets, statistics): the sealer or its key is not to be trusted.
    ContentMismatch,
    /// An object could not be read (I/O); verification is incomplete.
    Unreadable,
    /// Warning: a Parquet file no manifest refers to (a crash between the two writes).
    OrphanFile,
    /// Warning: an object whose name is not a cairn object name.
    UnexpectedObject,
}

impl FindingKind {
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            FindingKind::OrphanFile | FindingKind::UnexpectedObject
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: &'static str,
    pub stream: Option<String>,
    pub object: String,
    pub message: String,
}

fn finding(kind: FindingKind, stream: Option<&StreamId>, object: &str, message: String) -> Finding {
    Finding {
        kind,
        severity: if kind.is_warning() {
            "warning"
        } else {
            "error"
        },
        stream: stream.map(|s| s.to_string()),
        object: object.to_string(),
        message,
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub segments: u64,
    pub events: u64,
    pub rejected_offsets: u64,
    pub absent_offsets: u64,
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub store: String,
    /// No error findings and nothing left unread.
    pub intact: bool,
    /// Some object could not be read: the verdict is incomplete.
    pub incomplete: bool,
    pub segments_checked: u64,
    pub events_checked: u64,
    pub parquet_bytes_checked: u64,
    pub streams: Vec<StreamSummary>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Process exit code: 0 intact, 1 integrity failure, 2 incomplete (I/O).
    pub fn exit_code(&self) -> i32 {
        if self
            .findings
            .iter()
            .any(|f| !f.kind.is_warning() && f.kind != FindingKind::Unreadable)
        {
            1
        } else if self.incomplete {
            2
        } else {
            0
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no trusted public key given; pass --pubkey")]
    NoKeys,
    #[error(
        "no sealed segments found in {0} (nothing under v1/streams/); is --store the right location?"
    )]
    Empty(String),
}

pub struct VerifyOptions<'a> {
    /// Segments checked concurrently.
    pub concurrency: usize,
    /// Called after each segment with (done, total).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        VerifyOptions {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            progress: None,
        }
    }
}

/// What is in the store under `v1/streams/`: the object to read for each name, plus
/// findings about the inventory itself.
struct Inventory {
    /// name → pinned version (None on unversioned stores).
    objects: BTreeMap<String, Option<String>>,
    findings: Vec<Finding>,
}

async fn inventory(store: &Store) -> Result<Inventory, VerifyError> {
    let prefix = format!("{ROOT}/");
    let mut objects = BTreeMap::new();
    let mut findings = Vec::new();
    match store.versions(&prefix).await? {
        None => {
            for o in store.list(&prefix).await? {
                objects.insert(o.name, None);
            }
        }
        Some(versions) => {
            let mut by_name: BTreeMap<&str, Vec<&cairn_store::ObjectVersion>> = BTreeMap::new();
            for v in &versions {
                by_name.entry(&v.name).or_default().push(v);
            }
            for (name, vs) in by_name {
                let Some(original) = vs.iter().find(|v| !v.delete_marker) else {
                    continue;
                };
                let later: Vec<String> = vs
                    .iter()
                    .filter(|v| v.version_id != original.version_id)
                    .map(|v| {
                        if v.delete_marker {
                            format!("delete marker {} ({})", v.version_id, v.last_modified)
                        } else {
                            format!("version {} ({})", v.version_id, v.last_modified)
                        }
                    })
                    .collect();
                if !later.is_empty() {
                    let stream = parse_object_name(name).map(|n| n.stream);
                    findings.push(finding(
                        FindingKind::ShadowedVersion,
                        stream.as_ref(),
                        name,
                        format!(
                            "sealed version {} is shadowed by {}; verifying the sealed version",
                            original.version_id,
                            later.join(", ")
                        ),
                    ));
                }
                objects.insert(name.to_string(), Some(original.version_id.clone()));
            }
        }
    }
    Ok(Inventory { objects, findings })
}

/// Result of checking one manifest and its Parquet file.
struct ManifestCheck {
    object: String,
    name: ObjectName,
    manifest: Option<SignedManifest>,
    signature: Option<SignatureCheck>,
    findings: Vec<Finding>,
    /// Findings about the Parquet file, judged against this manifest's claims; dropped when
    /// the manifest itself turns out to be altered.
    file_findings: Vec<Finding>,
    events: u64,
    bytes: u64,
    unreadable: bool,
}

/// Verifies the whole store against `keys`.
pub async fn verify_store(
    store: &Store,
    keys: &[PublicKey],
    opts: &VerifyOptions<'_>,
) -> Result<Report, VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKeys);
    }
    let inv = inventory(store).await?;
    if inv.objects.is_empty() {
        return Err(VerifyError::Empty(store.describe()));
    }
    let mut findings = inv.findings;
    let mut manifests: Vec<(String, ObjectName)> = Vec::new();
    let mut parquets: Vec<(String, ObjectName)> = Vec::new();
    for name in inv.objects.keys() {
        match parse_object_name(name) {
            Some(n) if n.kind == ObjectKind::Manifest => manifests.push((name.clone(), n)),
            Some(n) => parquets.push((name.clone(), n)),
            None => findings.push(finding(
                FindingKind::UnexpectedObject,
                None,
                name,
                "not a cairn object name; ignored".into(),
            )),
        }
    }
    let total = manifests.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let objects = &inv.objects;
    let mut checks: Vec<ManifestCheck> = futures::stream::iter(manifests)
        .map(|(object, name)| {
            let done = &done;
            async move {
                let c = check_manifest(store, objects, keys, object, name).await;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if let Some(p) = opts.progress {
                    p(n, total);
                }
                c
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    checks.sort_by(|a, b| a.object.cmp(&b.object));

    // Parquet files no manifest refers to.
    let referenced: std::collections::HashSet<&str> = checks
        .iter()
        .filter_map(|c| {
            c.manifest
                .as_ref()
                .map(|m| m.manifest.parquet.object.as_str())
        })
        .collect();
    for (object, n) in &parquets {
        if !referenced.contains(object.as_str()) {
            findings.push(finding(
                FindingKind::OrphanFile,
                Some(&n.stream),
                object,
                "no manifest refers to this file (a crash between the Parquet and manifest writes leaves one; the next seal of the stream reuses it)".into(),
            ));
        }
    }

    let mut report = Report {
        store: store.describe(),
        intact: false,
        incomplete: checks.iter().any(|c| c.unreadable),
        segments_checked: checks.len() as u64,
        events_checked: checks.iter().map(|c| c.events).sum(),
        parquet_bytes_checked: checks.iter().map(|c| c.bytes).sum(),
        streams: Vec::new(),
        findings: Vec::new(),
    };

    let mut by_stream: BTreeMap<StreamId, Vec<ManifestCheck>> = BTreeMap::new();
    for c in checks {
        by_stream.entry(c.name.stream.clone()).or_default().push(c);
    }
    for (stream, checks) in by_stream {
        let (summary, f) = check_stream(&stream, checks);
        report.streams.push(summary);
        findings.extend(f);
    }
    findings.sort_by(|a, b| (&a.stream, &a.object, a.kind).cmp(&(&b.stream, &b.object, b.kind)));
    report.intact = !report.incomplete && findings.iter().all(|f| f.kind.is_warning());
    report.findings = findings;
    Ok(report)
}

async fn check_manifest(
    store: &Store,
    objects: &BTreeMap<String, Option<String>>,
    keys: &[PublicKey],
    object: String,
    name: ObjectName,
) -> ManifestCheck {
    let stream = name.stream.clone();
    let mut c = ManifestCheck {
        object: object.clone(),
        name,
        manifest: None,
        signature: None,
        findings: Vec::new(),
        file_findings: Vec::new(),
        events: 0,
        bytes: 0,
        unreadable: false,
    };
    let version = objects.get(&object).cloned().flatten();
    let bytes = match store.get(&object, version.as_deref()).await {
        Ok(b) => b,
        Err(e) => {
            c.unreadable = true;
            c.findings.push(finding(
                FindingKind::Unreadable,
                Some(&stream),
                &object,
                e.to_string(),
            ));
            return c;
        }
    };
    let sm = match SignedManifest::parse(&bytes) {
        Ok(sm) => sm,
        Err(e) => {
            c.findings.push(finding(
                FindingKind::ModifiedManifest,
                Some(&stream),
                &object,
                format!("manifest cannot be read: {e}"),
            ));
            return c;
        }
    };
    let sig = sm.check_signature(keys);
    c.signature = Some(sig);
    if sig == SignatureCheck::UnknownKey {
        c.findings.push(finding(
            FindingKind::UnknownKey,
            Some(&stream),
            &object,
            format!(
                "signed by key {} which is not among the trusted keys",
                sm.key_id
            ),
        ));
    }
    let m = &sm.manifest;
    if m.stream.id != c.name.stream.source
        || m.stream.partition != c.name.stream.partition
        || m.first_offset != c.name.first
        || m.last_offset != c.name.last
    {
        c.findings.push(finding(
            FindingKind::Reordered,
            Some(&stream),
            &object,
            format!(
                "the name says {} offsets {}..={} but the manifest says {}/{} offsets {}..={}",
                c.name.stream,
                c.name.first,
                c.name.last,
                m.stream.id,
                m.stream.partition,
                m.first_offset,
                m.last_offset
            ),
        ));
    }

    // The Parquet file, at the version the manifest pinned.
    let pobj = m.parquet.object.clone();
    let pversion = m
        .parquet
        .version_id
        .clone()
        .or_else(|| objects.get(&pobj).cloned().flatten());
    let file = match store.get(&pobj, pversion.as_deref()).await {
        Ok(b) => b,
        Err(StoreError::NotFound { .. }) => {
            c.file_findings.push(finding(
                FindingKind::MissingFile,
                Some(&stream),
                &pobj,
                format!("the Parquet file of manifest {object} is missing"),
            ));
            c.manifest = Some(sm);
            return c;
        }
        Err(e) => {
            c.unreadable = true;
            c.findings.push(finding(
                FindingKind::Unreadable,
                Some(&stream),
                &pobj,
                e.to_string(),
            ));
            c.manifest = Some(sm);
            return c;
        }
    };
    c.bytes = file.len() as u64;
    let m2 = sm.manifest.clone();
    let (file_findings, events) =
        tokio::task::spawn_blocking(move || check_parquet(&m2, &stream, &pobj, file))
            .await
            .expect("parquet check panicked");
    c.file_findings = file_findings;
    c.events = events;
    c.manifest = Some(sm);
    c
}

/// Hash, then rows, of one Parquet file against its manifest.
fn check_parquet(
    m: &cairn_format::Manifest,
    stream: &StreamId,
    object: &str,
    file: Bytes,
) -> (Vec<Finding>, u64) {
    let sha = hex::encode(Sha256::digest(&file));
    if sha != m.parquet.sha256 || file.len() as u64 != m.parquet.size {
        return (
            vec![finding(
                FindingKind::ModifiedFile,
                Some(stream),
                object,
                format!(
                    "SHA-256 {sha} ({} bytes) but the manifest signs {} ({} bytes)",
                    file.len(),
                    m.parquet.sha256,
                    m.parquet.size
                ),
            )],
            0,
        );
    }
    let mismatch = |msg: String| {
        vec![finding(
            FindingKind::ContentMismatch,
            Some(stream),
            object,
            msg,
        )]
    };
    // Exact coverage: rows' offsets and the listed ranges must partition [first, last].
    let mut excluded: Vec<[i64; 2]> = m.rejected.iter().chain(&m.absent).copied().collect();
    excluded.sort();
    for w in excluded.windows(2) {
        if w[1][0] <= w[0][1] {
            return (
                mismatch(format!("rejected/absent ranges overlap at {:?}", w[1])),
                0,
            );
        }
    }
    if excluded
        .iter()
        .any(|r| r[0] > r[1] || r[0] < m.first_offset || r[1] > m.last_offset)
    {
        return (
            mismatch("a rejected/absent range lies outside the segment".into()),
            0,
        );
    }
    let mut merkle = MerkleBuilder::new();
    let mut expected = m.first_offset;
    let mut ex = excluded.iter().peekable();
    let mut tenants = std::collections::BTreeSet::new();
    let (mut min_ts, mut max_ts) = (None::<i64>, None::<i64>);
    let scanned = scan_segment(file, |f, leaf| {
        while let Some(r) = ex.peek() {
            if r[0] == expected {
                expected = r[1] + 1;
                ex.next();
            } else {
                break;
            }
        }
        if f.stream_id != m.stream.id || f.partition != m.stream.partition {
            return Err(format!(
                "row at offset {} belongs to stream {}/{}",
                f.offset, f.stream_id, f.partition
            ));
        }
        if f.offset != expected {
            return Err(format!(
                "row offset {} where offset {expected} was expected (offsets must be exactly the range minus rejected/absent ones)",
                f.offset
            ));
        }
        expected += 1;
        merkle.push_leaf_data(leaf);
        if !tenants.contains(f.tenant) {
            tenants.insert(f.tenant.to_string());
        }
        min_ts = Some(min_ts.map_or(f.occurred_at_us, |v| v.min(f.occurred_at_us)));
        max_ts = Some(max_ts.map_or(f.occurred_at_us, |v| v.max(f.occurred_at_us)));
        Ok(())
    });
    let rows = match scanned {
        Err(e) => return (mismatch(format!("rows cannot be read: {e}")), 0),
        Ok(Err(e)) => return (mismatch(e), 0),
        Ok(Ok(rows)) => rows,
    };
    for r in ex {
        if r[0] == expected {
            expected = r[1] + 1;
        }
    }
    let mut out = Vec::new();
    if expected != m.last_offset + 1 {
        out.extend(mismatch(format!(
            "rows and rejected/absent ranges end at offset {} but the segment ends at {}",
            expected - 1,
            m.last_offset
        )));
    }
    if rows != m.event_count {
        out.extend(mismatch(format!(
            "{rows} rows but the manifest says {}",
            m.event_count
        )));
    }
    let root = hex::encode(merkle.root());
    if root != m.merkle_root {
        out.extend(mismatch(format!(
            "Merkle root of the rows is {root} but the manifest signs {}",
            m.merkle_root
        )));
    }
    let tenants: Vec<String> = tenants.into_iter().collect();
    let fmt = |t: Option<i64>| t.map(cairn_format::event::format_micros);
    if tenants != m.tenants || fmt(min_ts) != m.min_occurred_at || fmt(max_ts) != m.max_occurred_at
    {
        out.extend(mismatch(
            "tenants or occurred_at bounds differ from the manifest's".into(),
        ));
    }
    (out, rows)
}

/// Chain, continuity and signature classification for one stream.
fn check_stream(stream: &StreamId, checks: Vec<ManifestCheck>) -> (StreamSummary, Vec<Finding>) {
    let mut findings: Vec<Finding> = Vec::new();
    let mut summary = StreamSummary {
        stream: stream.to_string(),
        ..Default::default()
    };
    let mut parsed: Vec<(String, SignedManifest, Option<SignatureCheck>)> = Vec::new();
    let mut file_findings: HashMap<String, Vec<Finding>> = HashMap::new();
    for c in checks {
        findings.extend(c.findings);
        summary.events += c.events;
        if let Some(m) = c.manifest {
            file_findings.insert(c.object.clone(), c.file_findings);
            parsed.push((c.object, m, c.signature));
        }
    }
    parsed.sort_by(|a, b| {
        (a.1.manifest.first_offset, a.1.manifest.last_offset, &a.0).cmp(&(
            b.1.manifest.first_offset,
            b.1.manifest.last_offset,
            &b.0,
        ))
    });
    summary.segments = parsed.len() as u64;
    summary.first_offset = parsed.first().map(|p| p.1.manifest.first_offset);
    summary.last_offset = parsed.iter().map(|p| p.1.manifest.last_offset).max();
    let width = |rs: &[[i64; 2]]| {
        rs.iter()
            .map(|r| (r[1] - r[0] + 1).max(0) as u64)
            .sum::<u64>()
    };
    for (_, m, _) in &parsed {
        summary.rejected_offsets += width(&m.manifest.rejected);
        summary.absent_offsets += width(&m.manifest.absent);
    }

    // Classify failed signatures: the successor's link authenticates an intact body.
    let hashes: Vec<[u8; 32]> = parsed.iter().map(|p| p.1.chain_hash()).collect();
    let mut tampered: HashMap<usize, FindingKind> = HashMap::new();
    for (i, (object, m, sig)) in parsed.iter().enumerate() {
        if *sig != Some(SignatureCheck::Invalid) {
            continue;
        }
        let successor = parsed
            .get(i + 1)
            .filter(|n| n.1.manifest.first_offset == m.manifest.last_offset + 1);
        let kind = match successor {
            Some(n) if n.1.manifest.prev_manifest_sha256 == hex::encode(hashes[i]) => {
                FindingKind::BadSignature
            }
            Some(_) => FindingKind::ModifiedManifest,
            None => FindingKind::BadSignature,
        };
        let message = match kind {
            FindingKind::ModifiedManifest => "signature does not verify and the next manifest's chain link does not match this body: the body was altered".to_string(),
            _ => "signature does not verify (the next manifest still links to this body, or there is none: the signature or body was altered)".to_string(),
        };
        findings.push(finding(kind, Some(stream), object, message));
        tampered.insert(i, kind);
    }
    let trusted = |i: usize| parsed[i].2 == Some(SignatureCheck::Valid);
    for (i, (object, _, _)) in parsed.iter().enumerate() {
        if tampered.get(&i) != Some(&FindingKind::ModifiedManifest) {
            findings.extend(file_findings.remove(object).unwrap_or_default());
        }
    }

    if let Some((object, first, _)) = parsed.first()
        && !tampered.contains_key(&0)
        && (first.manifest.prev_manifest_sha256 != hex::encode(GENESIS) || first.manifest.seq != 0)
    {
        findings.push(finding(
            FindingKind::Gap,
            Some(stream),
            object,
            format!(
                "segments before offset {} are missing: the first manifest present has seq {} and does not link to genesis",
                first.manifest.first_offset, first.manifest.seq
            ),
        ));
    }
    for i in 1..parsed.len() {
        let (a, b) = (&parsed[i - 1].1.manifest, &parsed[i].1.manifest);
        let object = &parsed[i].0;
        if b.first_offset <= a.last_offset {
            findings.push(finding(
                FindingKind::Overlap,
                Some(stream),
                object,
                format!(
                    "offsets {}..={} are also covered by {}",
                    b.first_offset,
                    a.last_offset.min(b.last_offset),
                    parsed[i - 1].0
                ),
            ));
        } else if b.first_offset > a.last_offset + 1 {
            findings.push(finding(
                FindingKind::Gap,
                Some(stream),
                object,
                format!(
                    "offsets {}..={} are in no segment (between {} and {object})",
                    a.last_offset + 1,
                    b.first_offset - 1,
                    parsed[i - 1].0
                ),
            ));
        } else if trusted(i - 1) && trusted(i) {
            if b.prev_manifest_sha256 != hex::encode(hashes[i - 1]) {
                findings.push(finding(
                    FindingKind::BrokenChain,
                    Some(stream),
                    object,
                    format!(
                        "prev_manifest_sha256 {} does not match {} ({})",
                        b.prev_manifest_sha256,
                        parsed[i - 1].0,
                        hex::encode(hashes[i - 1])
                    ),
                ));
            } else if b.seq != a.seq + 1 {
                findings.push(finding(
                    FindingKind::Reordered,
                    Some(stream),
                    object,
                    format!("seq {} follows seq {}", b.seq, a.seq),
                ));
            }
        }
    }
    (summary, findings)
}
