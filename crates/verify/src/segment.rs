//! One manifest and its Parquet file: docs/FORMAT.md §8.3, steps 1 to 8.

use std::collections::BTreeSet;

use bytes::Bytes;
use cairn_format::leaf::LeafFields;
use cairn_format::manifest::{ManifestError, ManifestLines, SignatureCheck, SignatureFailure};
use cairn_format::merkle::MerkleBuilder;
use cairn_format::names::ObjectName;
use cairn_format::segment::scan_segment;
use cairn_format::{Digest, Manifest, OffsetRange, PublicKey, SignedManifest, StreamId};
use cairn_store::{StoreError, StoreReader};

use crate::inventory::Inventory;
use crate::report::{Finding, FindingKind};

/// A manifest that passed step 4: it takes part in its stream's walk.
pub(crate) struct Parsed {
    pub manifest: SignedManifest,
    pub signature: SignatureCheck,
    /// Why the signature is not valid, for the report.
    pub signature_problem: Option<SignatureFailure>,
    /// The segment's own Parquet name (§2), when the body's stream id is valid.
    pub own_parquet: Option<String>,
}

/// The result of checking one manifest object.
pub(crate) struct ManifestCheck {
    pub object: String,
    pub name: ObjectName,
    pub parsed: Option<Parsed>,
    /// Findings that stand whatever the stream walk decides.
    pub findings: Vec<Finding>,
    /// Findings of steps 6–8, judged against this body's claims: withdrawn when the walk
    /// classifies the manifest as modified.
    pub file_findings: Vec<Finding>,
    pub events: u64,
    pub bytes: u64,
    pub unreadable: bool,
    /// The manifest could not be read or parsed (unreadable, a link in its place, a broken
    /// layout or body): it stands in the walk for the range its name says (FORMAT.md §8.4).
    pub placeholder: bool,
}

impl ManifestCheck {
    pub fn new(object: String, name: ObjectName) -> Self {
        ManifestCheck {
            object,
            name,
            parsed: None,
            findings: Vec::new(),
            file_findings: Vec::new(),
            events: 0,
            bytes: 0,
            unreadable: false,
            placeholder: false,
        }
    }

    /// A manifest that failed steps 1, 2 or 4 (its finding already made): it stands in the
    /// walk for the range its name says.
    pub fn placeholder(mut self) -> Self {
        self.placeholder = true;
        self
    }

    fn stream(&self) -> StreamId {
        self.name.stream.clone()
    }

    fn push(&mut self, kind: FindingKind, object: &str, message: impl Into<String>) {
        let f = Finding::new(kind, Some(&self.stream()), object, message);
        self.findings.push(f);
    }

    fn push_file(&mut self, kind: FindingKind, object: &str, message: impl Into<String>) {
        let f = Finding::new(kind, Some(&self.stream()), object, message);
        self.file_findings.push(f);
    }

    /// A store error while reading `object`: a link or special file, or unreadable.
    fn read_failed(&mut self, object: &str, e: StoreError, inv: &Inventory) {
        match e {
            StoreError::NotRegular { found, .. } => {
                if !inv.non_regular.contains(object) {
                    self.push(
                        FindingKind::NonRegularObject,
                        object,
                        format!("{found} is in its place; not followed, not read"),
                    );
                }
            }
            e => {
                self.unreadable = true;
                self.push(FindingKind::Unreadable, object, e.to_string());
            }
        }
    }
}

/// Steps 1–8 of docs/FORMAT.md §8.3 for the manifest `object`.
pub(crate) async fn check_manifest(
    store: &StoreReader,
    inv: &Inventory,
    keys: &[PublicKey],
    object: String,
    name: ObjectName,
) -> ManifestCheck {
    let mut c = ManifestCheck::new(object, name);
    let Some(sm) = read_manifest(store, inv, keys, &mut c).await else {
        return c.placeholder();
    };
    let verdict = sm.verify_signature(keys);
    let signature = SignatureFailure::check(&verdict);
    let object = c.object.clone();
    if let Err(e @ SignatureFailure::UnknownKey(_)) = &verdict {
        c.push(FindingKind::UnknownKey, &object, e.to_string());
    }
    let m = &sm.manifest;
    // 5. Name.
    if !m.matches(&c.name) {
        let msg = format!(
            "the name says {} offsets {}..={} but the body says {}/{} offsets {}..={}",
            c.name.stream,
            c.name.first,
            c.name.last,
            m.stream.id,
            m.stream.partition,
            m.first_offset,
            m.last_offset
        );
        c.push(FindingKind::Reordered, &object, msg);
    }
    // 6. Rules.
    for v in m.rule_violations() {
        c.push_file(FindingKind::ContentMismatch, &object, v);
    }
    // Lost offsets: recorded truthfully, but the records are gone.
    if !m.lost().is_empty() {
        let ranges: Vec<String> = m.lost().iter().map(ToString::to_string).collect();
        let msg = format!(
            "offsets {} ({} in all) were deleted at the source (Kafka retention) before they were sealed",
            ranges.join(", "),
            OffsetRange::total(m.lost())
        );
        c.push_file(FindingKind::LostOffsets, &object, msg);
    }
    // 7–8. The file, from the segment's own name only.
    let own_parquet = m.own_parquet_object();
    if let Some(p) = &own_parquet {
        check_file(store, inv, &mut c, &sm, p).await;
    }
    c.parsed = Some(Parsed {
        manifest: sm,
        signature,
        signature_problem: verdict.err(),
        own_parquet,
    });
    c
}

/// Steps 1–4: read (the sealed version), layout, the signature line, the body's structure.
/// `None` after recording why the manifest takes no further part.
async fn read_manifest(
    store: &StoreReader,
    inv: &Inventory,
    keys: &[PublicKey],
    c: &mut ManifestCheck,
) -> Option<SignedManifest> {
    let object = c.object.clone();
    let version = inv.objects.get(&object).cloned().flatten();
    let bytes = match store.get(&object, version.as_deref()).await {
        Ok(b) => b,
        Err(e) => {
            c.read_failed(&object, e, inv);
            return None;
        }
    };
    let lines = match ManifestLines::split(&bytes) {
        Ok(l) => l,
        Err(e) => {
            c.push(FindingKind::ModifiedManifest, &object, e.to_string());
            return None;
        }
    };
    match lines.parse_body() {
        Ok(sm) => Some(sm),
        Err(ManifestError::Structure(why)) => {
            // Judged on the signature line alone: who made this body?
            match lines.verify_line_only(keys) {
                Ok(()) => c.push(
                    FindingKind::ContentMismatch,
                    &object,
                    format!(
                        "validly signed, but the body is not a cairn.segment.v1 manifest body: {why}"
                    ),
                ),
                Err(sig) => c.push(
                    FindingKind::ModifiedManifest,
                    &object,
                    format!("the body is not a manifest body ({why}) and is not validly signed ({sig})"),
                ),
            }
            None
        }
        Err(e @ ManifestError::Layout) => {
            c.push(FindingKind::ModifiedManifest, &object, e.to_string());
            None
        }
    }
}

async fn check_file(
    store: &StoreReader,
    inv: &Inventory,
    c: &mut ManifestCheck,
    sm: &SignedManifest,
    parquet: &str,
) {
    if inv.non_regular.contains(parquet) {
        return; // the inventory's non_regular_object finding stands
    }
    let m = &sm.manifest;
    // A local copy of an S3 vault keeps its version ids: ignored where there are no versions.
    let version = if store.is_versioned() {
        m.parquet
            .version_id
            .clone()
            .or_else(|| inv.objects.get(parquet).cloned().flatten())
    } else {
        None
    };
    let file = match store.get(parquet, version.as_deref()).await {
        Ok(b) => b,
        Err(StoreError::NotFound { .. }) => {
            let msg = format!("the Parquet file of manifest {} is missing", c.object);
            c.push_file(FindingKind::MissingFile, parquet, msg);
            return;
        }
        Err(e) => {
            c.read_failed(parquet, e, inv);
            return;
        }
    };
    c.bytes = file.len() as u64;
    let sha = Digest::of(&file);
    if sha != m.parquet.sha256 || file.len() as u64 != m.parquet.size {
        let msg = format!(
            "SHA-256 {sha} ({} bytes) but manifest {} signs {} ({} bytes)",
            file.len(),
            c.object,
            m.parquet.sha256,
            m.parquet.size
        );
        c.push_file(FindingKind::ModifiedFile, parquet, msg);
        return;
    }
    let m2 = m.clone();
    let (problems, events) = tokio::task::spawn_blocking(move || check_rows(&m2, file))
        .await
        .expect("row check panicked");
    let object = c.object.clone();
    for p in problems {
        c.push_file(FindingKind::ContentMismatch, &object, p);
    }
    c.events = events;
}

/// Exact coverage: the rows' offsets are the range minus the rejected and absent ranges.
struct Coverage {
    /// Rejected and absent ranges, ascending; `None` when they break the rules (already
    /// reported as such), and coverage is then not judged.
    excluded: Option<Vec<OffsetRange>>,
    next_range: usize,
    expected: i64,
}

impl Coverage {
    fn new(m: &Manifest) -> Self {
        let mut all: Vec<OffsetRange> = m.not_events().copied().collect();
        all.sort();
        let inside = all.iter().all(|r| r.within(&m.range()));
        let disjoint = all.windows(2).all(|w| !w[1].overlaps(&w[0]));
        Coverage {
            excluded: (inside && disjoint).then_some(all),
            next_range: 0,
            expected: m.first_offset,
        }
    }

    /// Skips the excluded ranges that start at the expected offset.
    fn skip_excluded(&mut self) {
        let Some(ranges) = &self.excluded else {
            return;
        };
        while let Some(r) = ranges
            .get(self.next_range)
            .filter(|r| r.first == self.expected)
        {
            self.expected = r.last + 1;
            self.next_range += 1;
        }
    }

    fn row(&mut self, offset: i64) -> Result<(), String> {
        if self.excluded.is_none() {
            return Ok(());
        }
        self.skip_excluded();
        if offset != self.expected {
            return Err(format!(
                "row offset {offset} where offset {} was expected (rows must be exactly the range minus the rejected and absent offsets)",
                self.expected
            ));
        }
        self.expected += 1;
        Ok(())
    }

    fn end(&mut self, last: i64) -> Option<String> {
        self.excluded.as_ref()?;
        self.skip_excluded();
        (self.expected != last + 1).then(|| {
            format!(
                "the rows and the rejected/absent ranges end at offset {} but the segment ends at {last}",
                self.expected - 1
            )
        })
    }
}

/// What step 8 computes from the rows, to compare with the manifest's claims.
struct Rows<'m> {
    m: &'m Manifest,
    coverage: Coverage,
    merkle: MerkleBuilder,
    tenants: BTreeSet<String>,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    prev: Option<i64>,
}

impl<'m> Rows<'m> {
    fn new(m: &'m Manifest) -> Self {
        Rows {
            m,
            coverage: Coverage::new(m),
            merkle: MerkleBuilder::new(),
            tenants: BTreeSet::new(),
            min_ts: None,
            max_ts: None,
            prev: None,
        }
    }

    fn visit(&mut self, f: &LeafFields<'_>, leaf: &[u8]) -> Result<(), String> {
        if f.stream_id != self.m.stream.id || f.partition != self.m.stream.partition {
            return Err(format!(
                "row at offset {} belongs to stream {}/{}",
                f.offset, f.stream_id, f.partition
            ));
        }
        if let Some(p) = self.prev.filter(|p| f.offset <= *p) {
            return Err(format!(
                "row offset {} after {p}: rows must be in ascending offset order",
                f.offset
            ));
        }
        self.prev = Some(f.offset);
        self.coverage.row(f.offset)?;
        self.merkle.push_leaf_data(leaf);
        if !self.tenants.contains(f.tenant) {
            self.tenants.insert(f.tenant.to_string());
        }
        let t = f.occurred_at_us;
        self.min_ts = Some(self.min_ts.map_or(t, |v| v.min(t)));
        self.max_ts = Some(self.max_ts.map_or(t, |v| v.max(t)));
        Ok(())
    }

    /// The claims the rows contradict.
    fn compare(mut self, rows: u64) -> Vec<String> {
        let m = self.m;
        let mut out: Vec<String> = self.coverage.end(m.last_offset).into_iter().collect();
        if rows != m.event_count {
            out.push(format!(
                "{rows} rows but the manifest says {}",
                m.event_count
            ));
        }
        let root = Digest::from_bytes(&self.merkle.root());
        if root != m.merkle_root {
            out.push(format!(
                "the Merkle root of the rows is {root} but the manifest signs {}",
                m.merkle_root
            ));
        }
        let tenants: Vec<String> = std::mem::take(&mut self.tenants).into_iter().collect();
        if tenants != m.tenants {
            out.push(format!(
                "the rows' tenants are {tenants:?} but the manifest says {:?}",
                m.tenants
            ));
        }
        for (name, us, claimed) in [
            ("min_occurred_at", self.min_ts, &m.min_occurred_at),
            ("max_occurred_at", self.max_ts, &m.max_occurred_at),
        ] {
            if let Some(problem) = compare_bound(name, us, claimed) {
                out.push(problem);
            }
        }
        out
    }
}

/// A time bound of the rows (µs) against the manifest's canonical timestamp.
fn compare_bound(name: &str, us: Option<i64>, claimed: &Option<String>) -> Option<String> {
    let computed = us.map(cairn_format::event::format_micros);
    let agrees = match (&computed, claimed) {
        (None, None) => true,
        (Some(Some(a)), Some(b)) => a == b,
        _ => false,
    };
    if agrees {
        return None;
    }
    let found = match computed {
        None => "none (no rows)".to_string(),
        Some(Some(s)) => s,
        Some(None) => format!("{} µs, outside the years 0001–9999", us.unwrap_or(0)),
    };
    Some(format!(
        "{name} of the rows is {found} but the manifest says {claimed:?}"
    ))
}

/// Step 8: the rows under the Parquet contract, against the manifest's claims. Returns the
/// problems found and the number of rows read.
fn check_rows(m: &Manifest, file: Bytes) -> (Vec<String>, u64) {
    let mut rows = Rows::new(m);
    match scan_segment(file, |f, leaf| rows.visit(f, leaf)) {
        Err(e) => (vec![format!("the rows cannot be read: {e}")], 0),
        Ok(Err(e)) => (vec![e], 0),
        Ok(Ok(n)) => (rows.compare(n), n),
    }
}
