//! The verifier: recomputes everything an auditor relies on from what is in a store, as
//! docs/FORMAT.md §8 specifies.
//!
//! It lists the whole store ([`inventory`]: links and special files are findings, never
//! followed; S3 versions that shadow a sealed one are findings), checks every manifest and its
//! Parquet file ([`segment`]: layout, signature, structure, name, rules, file hash, the Parquet
//! contract and every row's leaf rebuilt into the Merkle root — never a stored hash), then
//! walks each stream ([`stream`]: signature classification, coverage, chain). Every problem
//! becomes a [`Finding`] naming one object and its [`FindingKind`]; the [`Report`] also carries
//! what an intact verdict cannot say ([`LIMITATIONS`]).
//!
//! This crate only reads: it must never write to a store, and depends on format and store
//! only (never on the sealer or ingest).

pub mod bundle;
mod inventory;
pub mod log;
pub mod prove;
mod report;
mod segment;
mod stream;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_format::{PublicKey, StreamId};
use cairn_store::{StoreError, StoreReader};
use futures::StreamExt;

pub use report::{
    CheckpointSummary, Finding, FindingKind, LIMITATIONS, Report, Severity, StreamSummary,
};
use segment::ManifestCheck;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no trusted public key given")]
    NoKeys,
    /// docs/FORMAT.md §8.2: nothing to verify is not a pass.
    #[error("no sealed segments found in {store}: it holds no manifest ({other} other objects)")]
    Empty { store: String, other: usize },
    #[error(
        "{0:?} is not a manifest's object name (v1/streams/<stream>/<partition>/<first>-<last>.manifest)"
    )]
    NotAManifest(String),
}

pub struct VerifyOptions<'a> {
    /// Segments checked concurrently.
    pub concurrency: usize,
    /// Called after each segment with (done, total).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Warning classes to report as errors (e.g. `lost_offsets` where no loss is acceptable).
    pub deny: Vec<FindingKind>,
    /// A checkpoint obtained out of band (a witness), already opened under the trusted keys:
    /// the store is judged against it (FORMAT.md §8.6). Without one, against the store's newest.
    pub checkpoint: Option<cairn_format::log::Checkpoint>,
    /// Validity windows of trusted keys (a key set): a manifest a key signed outside its
    /// window is `outside_key_window`. Keys without a window are valid at every time.
    pub key_windows: Vec<KeyWindow>,
}

/// When a trusted key may sign: from `not_before` (inclusive) until `until` (exclusive), both
/// µs since the epoch; `until` is the earlier of the key's expiry and its revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyWindow {
    pub key_id: cairn_format::KeyId,
    pub not_before: Option<i64>,
    pub until: Option<i64>,
    /// Says why the window ends (`expired`, `revoked`), for the message.
    pub ends: &'static str,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        VerifyOptions {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            progress: None,
            deny: Vec::new(),
            checkpoint: None,
            key_windows: Vec::new(),
        }
    }
}

/// The verdict on one segment alone: FORMAT.md §8.3 steps 1–8 for its manifest and Parquet
/// file (and §8.2 for those two names: links, shadowing versions). For readers that serve or
/// export single segments — the query service's verify-on-read, audit bundles. What only the
/// stream walk can judge (gaps, overlaps, chain links, and whether an invalid signature's body
/// was altered) is not judged here: an invalid signature is reported as `bad_signature`.
#[derive(Clone, Debug)]
pub struct SegmentVerdict {
    /// The manifest, when it could be read and parsed.
    pub manifest: Option<cairn_format::SignedManifest>,
    pub findings: Vec<Finding>,
    /// Rows read and checked.
    pub events: u64,
}

impl SegmentVerdict {
    /// No finding but warnings: the segment's rows are exactly what a trusted key signed.
    pub fn is_intact(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.severity == Severity::Warning)
    }
}

/// Checks the segment whose manifest is `manifest_object` against `keys`.
pub async fn check_segment(
    store: &StoreReader,
    keys: &[PublicKey],
    manifest_object: &str,
) -> Result<SegmentVerdict, VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKeys);
    }
    let name = cairn_format::names::parse_object_name(manifest_object)
        .filter(|n| n.kind == cairn_format::ObjectKind::Manifest)
        .ok_or_else(|| VerifyError::NotAManifest(manifest_object.to_string()))?;
    // Both of the segment's names share everything up to the extension.
    let prefix = manifest_object.trim_end_matches("manifest");
    let inv = inventory::take(store, prefix).await?;
    let c = segment::check_manifest(store, &inv, keys, manifest_object.to_string(), name).await;
    let mut findings: Vec<Finding> = inv
        .findings
        .into_iter()
        .filter(|f| f.kind != FindingKind::UnexpectedObject)
        .collect();
    findings.extend(c.findings);
    findings.extend(c.file_findings);
    let manifest = c.parsed.map(|p| {
        if let Some(problem) = &p.signature_problem
            && p.signature == cairn_format::manifest::SignatureCheck::Invalid
        {
            findings.push(Finding::new(
                FindingKind::BadSignature,
                Some(&c.name.stream),
                &c.object,
                problem.to_string(),
            ));
        }
        p.manifest
    });
    Ok(SegmentVerdict {
        manifest,
        findings,
        events: c.events,
    })
}

/// Verifies the whole store against `keys`.
pub async fn verify_store(
    store: &StoreReader,
    keys: &[PublicKey],
    opts: &VerifyOptions<'_>,
) -> Result<Report, VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKeys);
    }
    let inv = inventory::take(store, "").await?;
    let listing_failed = inv.findings.iter().any(|f| f.severity == Severity::Error);
    if inv.manifests.is_empty() && !listing_failed {
        return Err(VerifyError::Empty {
            store: store.describe(),
            other: inv.objects.len() + inv.non_regular.len(),
        });
    }
    let mut checks = check_manifests(store, &inv, keys, opts).await;
    let mut findings = inv.findings.clone();
    let origin_version = inv
        .objects
        .get(cairn_format::log::ORIGIN_OBJECT)
        .cloned()
        .flatten();
    let origin = match log::read_origin_at(store, origin_version.as_deref()).await {
        Ok(o) => o,
        Err(e) => {
            let kind = if e.is_transient() || matches!(e, log::LogError::Store(_)) {
                FindingKind::Unreadable
            } else {
                FindingKind::ForeignStore
            };
            findings.push(Finding::new(
                kind,
                None,
                cairn_format::log::ORIGIN_OBJECT,
                e.to_string(),
            ));
            None
        }
    };
    foreign_segments(&mut checks, origin.as_ref());
    outside_key_windows(&mut checks, &opts.key_windows);
    let (log_findings, checkpoint) = log::check(
        store,
        &inv,
        keys,
        &checks,
        origin.as_ref(),
        opts.checkpoint.as_ref(),
    )
    .await;
    findings.extend(log_findings);
    let mut limitations = Vec::new();
    let has_checkpoints = inv
        .log
        .values()
        .any(|o| matches!(o, cairn_format::log::LogObject::Checkpoint { .. }));
    match &checkpoint {
        None if has_checkpoints => limitations.push(report::LOG_KEY_NOT_GIVEN),
        None => limitations.extend([report::NO_CHECKPOINT_STREAMS, report::NO_CHECKPOINT_TAIL]),
        Some(c) if c.source == "store" => limitations.push(report::STORE_CHECKPOINT_ONLY),
        Some(_) => {}
    }
    if origin.is_none() {
        limitations.push(report::NO_STORE_IDENTITY);
    } else if checks.iter().any(|c| {
        c.parsed
            .as_ref()
            .is_some_and(|p| p.manifest.manifest.store.is_none())
    }) {
        limitations.push(report::OLD_SEGMENTS);
    }
    findings.extend(orphans(&inv, &checks));
    findings.extend(unfulfilled_claims(store, &inv, &checks).await);
    let mut report = Report {
        store: store.describe(),
        intact: false,
        incomplete: checks.iter().any(|c| c.unreadable),
        segments_checked: checks.iter().filter(|c| c.parsed.is_some()).count() as u64,
        events_checked: checks.iter().map(|c| c.events).sum(),
        parquet_bytes_checked: checks.iter().map(|c| c.bytes).sum(),
        streams: Vec::new(),
        findings: Vec::new(),
        limitations,
        origin: origin.map(|o| o.to_string()),
        checkpoint,
    };
    let mut by_stream: BTreeMap<StreamId, Vec<ManifestCheck>> = BTreeMap::new();
    for c in checks {
        by_stream.entry(c.name.stream.clone()).or_default().push(c);
    }
    for (stream, checks) in by_stream {
        let (summary, f) = stream::check_stream(&stream, checks);
        report.streams.push(summary);
        findings.extend(f);
    }
    findings.sort_by(|a, b| (&a.stream, &a.object, a.kind).cmp(&(&b.stream, &b.object, b.kind)));
    findings.dedup();
    for f in findings.iter_mut().filter(|f| opts.deny.contains(&f.kind)) {
        f.severity = Severity::Error;
    }
    report.incomplete |= findings.iter().any(|f| f.severity == Severity::Incomplete);
    report.intact = findings.iter().all(|f| f.severity == Severity::Warning);
    report.findings = findings;
    Ok(report)
}

/// Every manifest checked (steps 1–8), concurrently, plus a placeholder for each link or
/// special file with a manifest's name; sorted by object name.
async fn check_manifests(
    store: &StoreReader,
    inv: &inventory::Inventory,
    keys: &[PublicKey],
    opts: &VerifyOptions<'_>,
) -> Vec<ManifestCheck> {
    let total = inv.manifests.len() as u64;
    let done = AtomicU64::new(0);
    let mut checks: Vec<ManifestCheck> = futures::stream::iter(inv.manifests.clone())
        .map(|(object, name)| {
            let done = &done;
            async move {
                let c = segment::check_manifest(store, inv, keys, object, name).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(p) = opts.progress {
                    p(n, total);
                }
                c
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    for name in &inv.non_regular {
        if let Some(n) = cairn_format::names::parse_object_name(name)
            && n.kind == cairn_format::names::ObjectKind::Manifest
        {
            checks.push(ManifestCheck::new(name.clone(), n).placeholder());
        }
    }
    checks.sort_by(|a, b| a.object.cmp(&b.object));
    checks
}

/// FORMAT.md §11: a v3 manifest must name this store's origin. Pushed with the file findings,
/// so that it is withdrawn when the walk shows the body itself was altered.
fn foreign_segments(checks: &mut [ManifestCheck], origin: Option<&cairn_format::log::Origin>) {
    for c in checks.iter_mut() {
        let Some(store) = c
            .parsed
            .as_ref()
            .and_then(|p| p.manifest.manifest.store.clone())
        else {
            continue;
        };
        if origin.is_some_and(|o| o.as_str() == store) {
            continue;
        }
        let message = match origin {
            Some(o) => format!(
                "sealed into the store {store:?}, but this store is {:?}: copied in from another vault",
                o.as_str()
            ),
            None => format!(
                "sealed into the store {store:?}, but this store has no (readable) origin object"
            ),
        };
        let f = Finding::new(
            FindingKind::ForeignSegment,
            Some(&c.name.stream),
            &c.object,
            message,
        );
        c.file_findings.push(f);
    }
}

/// A validly signed manifest whose `sealed_at` is outside its key's window. `sealed_at` is
/// signed by that same key, so this catches a key used after it was retired or revoked by an
/// honest but misconfigured sealer, not a thief who backdates (docs/AUDITING.md: checkpoints
/// held from before the revocation are what bound a thief).
fn outside_key_windows(checks: &mut [ManifestCheck], windows: &[KeyWindow]) {
    use cairn_format::manifest::SignatureCheck;
    for c in checks.iter_mut() {
        let Some(p) = &c.parsed else { continue };
        if p.signature != SignatureCheck::Valid {
            continue;
        }
        let m = &p.manifest.manifest;
        let Some(w) = windows.iter().find(|w| w.key_id.to_string() == m.key_id) else {
            continue;
        };
        let Some(at) = cairn_format::event::parse_canonical_timestamp(&m.sealed_at) else {
            continue;
        };
        let early = w.not_before.is_some_and(|nb| at < nb);
        let late = w.until.is_some_and(|u| at >= u);
        if early || late {
            let f = Finding::new(
                FindingKind::OutsideKeyWindow,
                Some(&c.name.stream),
                &c.object,
                format!(
                    "signed by key {} at {} (its sealed_at), when the key was {}",
                    m.key_id,
                    m.sealed_at,
                    if early { "not yet valid" } else { w.ends }
                ),
            );
            c.findings.push(f);
        }
    }
}

/// Claims (FORMAT.md §7) that no manifest fulfils: a writer stopped between claiming a segment
/// and sealing it (the next writer of the stream seals exactly that range), or the claim is not
/// a valid one. Claims are not evidence, so these are warnings.
async fn unfulfilled_claims(
    store: &StoreReader,
    inv: &inventory::Inventory,
    checks: &[ManifestCheck],
) -> Vec<Finding> {
    let sealed: HashSet<(&StreamId, i64, i64)> = checks
        .iter()
        .map(|c| (&c.name.stream, c.name.first, c.name.last))
        .collect();
    let mut out = Vec::new();
    for (object, stream, first) in &inv.claims {
        let version = inv.objects.get(object).cloned().flatten();
        let message = match store.get(object, version.as_deref()).await {
            Err(e) => format!("a claim that could not be read ({e}); claims are not evidence"),
            Ok(bytes) => match cairn_format::Claim::parse(&bytes, stream, *first) {
                Err(e) => format!("{e}; claims are not evidence"),
                Ok(c) if sealed.contains(&(stream, c.first_offset, c.last_offset)) => continue,
                Ok(c) => format!(
                    "a claim on offsets {}..={} that no manifest fulfils (a writer stopped between claiming the segment and sealing it; the stream's next seal seals exactly that range)",
                    c.first_offset, c.last_offset
                ),
            },
        };
        out.push(Finding::new(
            FindingKind::OrphanFile,
            Some(stream),
            object,
            message,
        ));
    }
    out
}

/// Cairn-named Parquet files that are neither a checked manifest's own Parquet name nor beside
/// a placeholder (FORMAT.md §8.4).
fn orphans(inv: &inventory::Inventory, checks: &[ManifestCheck]) -> Vec<Finding> {
    let claimed: HashSet<String> = checks
        .iter()
        .filter_map(|c| match &c.parsed {
            Some(p) => p.own_parquet.clone(),
            None if c.placeholder => Some(c.name.sibling(cairn_format::ObjectKind::Parquet)),
            None => None,
        })
        .collect();
    inv.parquets
        .iter()
        .filter(|(object, _)| !claimed.contains(object))
        .map(|(object, n)| {
            Finding::new(
                FindingKind::OrphanFile,
                Some(&n.stream),
                object,
                "no manifest claims this file (a crash between the Parquet and manifest writes leaves one; the next seal of the stream reuses it)",
            )
        })
        .collect()
}
