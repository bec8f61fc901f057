//! One stream's walk: signature classification, coverage and chain (docs/FORMAT.md §8.4).

use std::collections::HashSet;

use cairn_format::StreamId;
use cairn_format::manifest::SignatureCheck;
use cairn_format::{Digest, OffsetRange};

use crate::report::{Finding, FindingKind, StreamSummary};
use crate::segment::{ManifestCheck, Parsed};

/// A manifest in the walk: one that passed step 4, or a placeholder for one that failed steps
/// 1, 2 or 4 (unreadable, a link in its place, a broken layout or body), which covers the range
/// its name says and vouches for nothing.
struct Entry<'a> {
    object: &'a str,
    first: i64,
    last: i64,
    p: Option<&'a Parsed>,
    chain_hash: Option<Digest>,
}

impl Entry<'_> {
    fn first(&self) -> i64 {
        self.first
    }
    fn last(&self) -> i64 {
        self.last
    }
    fn valid(&self) -> bool {
        self.signature() == Some(SignatureCheck::Valid)
    }
    fn signature(&self) -> Option<SignatureCheck> {
        self.p.map(|p| p.signature)
    }
}

/// The walk (FORMAT.md §8.4): manifests that passed step 4 and placeholders, in
/// (`first_offset`, `last_offset`, object name) order.
fn walk(checks: &[ManifestCheck]) -> Vec<Entry<'_>> {
    let mut walk: Vec<Entry<'_>> = checks
        .iter()
        .filter_map(|c| match &c.parsed {
            Some(p) => Some(Entry {
                object: &c.object,
                first: p.manifest.manifest.first_offset,
                last: p.manifest.manifest.last_offset,
                p: Some(p),
                chain_hash: Some(p.manifest.chain_hash()),
            }),
            None if c.placeholder => Some(Entry {
                object: &c.object,
                first: c.name.first,
                last: c.name.last,
                p: None,
                chain_hash: None,
            }),
            None => None,
        })
        .collect();
    walk.sort_by(|a, b| (a.first(), a.last(), a.object).cmp(&(b.first(), b.last(), b.object)));
    walk
}

fn summarize(stream: &StreamId, checks: &[ManifestCheck], walk: &[Entry<'_>]) -> StreamSummary {
    let mut summary = StreamSummary {
        stream: stream.to_string(),
        events: checks.iter().map(|c| c.events).sum(),
        segments: walk.iter().filter(|e| e.p.is_some()).count() as u64,
        first_offset: walk.first().map(Entry::first),
        last_offset: walk.iter().map(Entry::last).max(),
        ..Default::default()
    };
    for p in walk.iter().filter_map(|e| e.p) {
        summary.rejected_offsets += OffsetRange::total(&p.manifest.manifest.rejected);
        summary.absent_offsets += OffsetRange::total(&p.manifest.manifest.absent);
        summary.lost_offsets += OffsetRange::total(p.manifest.manifest.lost());
    }
    summary
}

/// Checks one stream (the manifests whose names are in it) and returns its summary and
/// findings, including each manifest's own findings (file findings withdrawn for manifests
/// found to be modified).
pub(crate) fn check_stream(
    stream: &StreamId,
    checks: Vec<ManifestCheck>,
) -> (StreamSummary, Vec<Finding>) {
    let walk = walk(&checks);
    let summary = summarize(stream, &checks, &walk);
    let mut out = Out {
        stream,
        findings: Vec::new(),
    };
    let modified = classify_invalid(&walk, &mut out);
    for c in &checks {
        out.findings.extend(c.findings.iter().cloned());
        if !modified.contains(c.object.as_str()) {
            out.findings.extend(c.file_findings.iter().cloned());
        }
    }
    coverage_and_chain(&walk, &modified, &mut out);
    (summary, out.findings)
}

/// Findings of one stream.
struct Out<'a> {
    stream: &'a StreamId,
    findings: Vec<Finding>,
}

impl Out<'_> {
    fn add(&mut self, kind: FindingKind, object: &str, message: String) {
        self.findings
            .push(Finding::new(kind, Some(self.stream), object, message));
    }
}

/// Invalid signatures: a validly signed next segment's link authenticates the body
/// (`bad_signature`), its link to another body shows it altered (`modified_manifest`).
/// Returns the manifests found modified.
fn classify_invalid<'a>(walk: &[Entry<'a>], out: &mut Out<'_>) -> HashSet<&'a str> {
    let mut modified = HashSet::new();
    for m in walk
        .iter()
        .filter(|e| e.signature() == Some(SignatureCheck::Invalid))
    {
        let next: Vec<&Entry<'_>> = walk
            .iter()
            .filter(|n| n.valid() && n.first() == m.last() + 1)
            .collect();
        let why =
            m.p.and_then(|p| p.signature_problem.as_ref())
                .map_or_else(String::new, |f| f.to_string());
        let links = |n: &&Entry<'_>| {
            n.p.is_some_and(|p| {
                Some(&p.manifest.manifest.prev_manifest_sha256) == m.chain_hash.as_ref()
            })
        };
        if next.is_empty() {
            let how = "no validly signed next segment vouches for the body either way";
            out.add(FindingKind::BadSignature, m.object, format!("{why}; {how}"));
        } else if next.iter().any(links) {
            let how = "the next segment still links to this body, so the body is intact";
            out.add(FindingKind::BadSignature, m.object, format!("{why}; {how}"));
        } else {
            modified.insert(m.object);
            out.add(
                FindingKind::ModifiedManifest,
                m.object,
                format!(
                    "{why}, and the validly signed next segment links to another body: this body was altered"
                ),
            );
        }
    }
    modified
}

/// Coverage and chain, against the reach (largest last offset so far) and its holder.
fn coverage_and_chain(walk: &[Entry<'_>], modified: &HashSet<&str>, out: &mut Out<'_>) {
    let Some(w0) = walk.first() else {
        return;
    };
    if let Some(p) = w0.p
        && !modified.contains(w0.object)
        && (p.manifest.manifest.seq != 0
            || p.manifest.manifest.prev_manifest_sha256 != Digest::genesis())
    {
        let first = &p.manifest.manifest;
        out.add(
            FindingKind::Gap,
            w0.object,
            format!(
                "segments before offset {} are missing: the first manifest present has seq {} and does not link to genesis",
                first.first_offset, first.seq
            ),
        );
    }
    let mut holder = w0;
    for b in &walk[1..] {
        let reach = holder.last();
        if b.first() <= reach {
            let msg = format!(
                "offsets {}..={} are also covered by {}",
                b.first(),
                reach.min(b.last()),
                holder.object
            );
            out.add(FindingKind::Overlap, b.object, msg);
        } else if b.first() > reach + 1 {
            let msg = format!(
                "offsets {}..={} are in no segment (between {} and {})",
                reach + 1,
                b.first() - 1,
                holder.object,
                b.object
            );
            out.add(FindingKind::Gap, b.object, msg);
        } else {
            check_link(holder, b, out);
        }
        if b.last() > holder.last() {
            holder = b;
        }
    }
}

/// `b` follows `holder`: when both signatures are valid, `b` must link to it with the next
/// `seq`.
fn check_link(holder: &Entry<'_>, b: &Entry<'_>, out: &mut Out<'_>) {
    let (Some(hp), Some(bp)) = (holder.p, b.p) else {
        return;
    };
    if !(holder.valid() && b.valid()) {
        return;
    }
    let (hm, bm) = (&hp.manifest.manifest, &bp.manifest.manifest);
    let expected = hp.manifest.chain_hash();
    if bm.prev_manifest_sha256 != expected {
        let msg = format!(
            "prev_manifest_sha256 {} does not match {} ({expected})",
            bm.prev_manifest_sha256, holder.object
        );
        out.add(FindingKind::BrokenChain, b.object, msg);
    } else if bm.seq != hm.seq.wrapping_add(1) {
        let msg = format!("seq {} follows seq {} ({})", bm.seq, hm.seq, holder.object);
        out.add(FindingKind::Reordered, b.object, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::manifest::{ParquetRef, StreamRef};
    use cairn_format::names::{ObjectKind, ObjectName, object_name};
    use cairn_format::{Manifest, SignedManifest, SigningKey};

    fn stream() -> StreamId {
        StreamId::new("s", 0).unwrap()
    }

    /// A synthetic check of the segment [first, last] with `seq`, linking to `prev`.
    fn seg(
        first: i64,
        last: i64,
        seq: u64,
        prev: &Digest,
        signature: SignatureCheck,
    ) -> ManifestCheck {
        let m = Manifest {
            format: cairn_format::FORMAT_VERSION.into(),
            store: Some("example.com/vault".into()),
            stream: StreamRef {
                id: "s".into(),
                partition: 0,
            },
            seq,
            first_offset: first,
            last_offset: last,
            event_count: 0,
            rejected: vec![OffsetRange::new(first, last)],
            absent: vec![],
            lost: Some(vec![]),
            min_occurred_at: None,
            max_occurred_at: None,
            tenants: vec![],
            merkle_root: Digest::genesis(),
            parquet: ParquetRef {
                object: object_name(&stream(), first, last, ObjectKind::Parquet),
                sha256: Digest::genesis(),
                size: 0,
                version_id: None,
            },
            prev_manifest_sha256: prev.clone(),
            schema_sha256: Digest::genesis(),
            key_id: String::new(),
            sealed_at: String::new(),
        };
        let manifest = SignedManifest::sign(m, &SigningKey::from_seed([1; 32]));
        let object = object_name(&stream(), first, last, ObjectKind::Manifest);
        ManifestCheck {
            object: object.clone(),
            name: ObjectName {
                stream: stream(),
                first,
                last,
                kind: ObjectKind::Manifest,
            },
            parsed: Some(Parsed {
                manifest,
                signature,
                signature_problem: None,
                own_parquet: None,
            }),
            findings: vec![],
            file_findings: vec![Finding::new(
                FindingKind::ContentMismatch,
                Some(&stream()),
                &object,
                "file finding",
            )],
            events: 0,
            bytes: 0,
            unreadable: false,
            placeholder: false,
        }
    }

    fn hash(c: &ManifestCheck) -> Digest {
        c.parsed.as_ref().unwrap().manifest.chain_hash()
    }

    fn genesis() -> Digest {
        Digest::genesis()
    }

    /// A chain of segments with the given ranges, each linked to the previous.
    fn chain(ranges: &[(i64, i64)]) -> Vec<ManifestCheck> {
        let mut out: Vec<ManifestCheck> = Vec::new();
        for (i, (a, b)) in ranges.iter().enumerate() {
            let prev = out.last().map_or_else(genesis, hash);
            out.push(seg(*a, *b, i as u64, &prev, SignatureCheck::Valid));
        }
        out
    }

    /// (kind, first offset of the object) of each finding other than the synthetic file ones.
    fn kinds(checks: Vec<ManifestCheck>) -> Vec<(FindingKind, i64)> {
        let (_, f) = check_stream(&stream(), checks);
        let mut out: Vec<(FindingKind, i64)> = f
            .iter()
            .filter(|f| f.message != "file finding")
            .map(|f| {
                let n = cairn_format::names::parse_object_name(&f.object).unwrap();
                (f.kind, n.first)
            })
            .collect();
        out.sort();
        out
    }

    fn file_findings_kept(checks: Vec<ManifestCheck>) -> usize {
        let (_, f) = check_stream(&stream(), checks);
        f.iter().filter(|f| f.message == "file finding").count()
    }

    #[test]
    fn an_intact_chain_has_no_findings() {
        assert_eq!(kinds(chain(&[(1, 10), (11, 20), (21, 21)])), vec![]);
    }

    /// Issue 7: a segment nested inside an earlier, larger one gave a false gap for the
    /// offsets the larger one covers.
    #[test]
    fn a_nested_segment_is_an_overlap_and_nothing_else() {
        let mut c = chain(&[(1, 1000), (1001, 1010)]);
        c.push(seg(500, 604, 1, &genesis(), SignatureCheck::Valid));
        assert_eq!(kinds(c), vec![(FindingKind::Overlap, 500)]);
    }

    #[test]
    fn gaps_before_and_between_segments() {
        let c = chain(&[(1, 10), (11, 20), (21, 30)]);
        let mut missing_first = c;
        missing_first.remove(0);
        assert_eq!(kinds(missing_first), vec![(FindingKind::Gap, 11)]);
        let mut missing_middle = chain(&[(1, 10), (11, 20), (21, 30)]);
        missing_middle.remove(1);
        assert_eq!(kinds(missing_middle), vec![(FindingKind::Gap, 21)]);
    }

    /// FORMAT.md §1: the start of a stream cannot be checked; a chain starting at any offset
    /// with seq 0 and genesis is intact (issue 7, question 18).
    #[test]
    fn a_stream_may_start_at_any_offset() {
        assert_eq!(kinds(chain(&[(5000, 5010), (5011, 5020)])), vec![]);
    }

    #[test]
    fn broken_chain_and_reordered_seq() {
        let mut c = chain(&[(1, 10), (11, 20)]);
        c.push(seg(21, 30, 2, &genesis(), SignatureCheck::Valid));
        assert_eq!(kinds(c), vec![(FindingKind::BrokenChain, 21)]);
        let mut c = chain(&[(1, 10), (11, 20)]);
        let prev = hash(&c[1]);
        c.push(seg(21, 30, 7, &prev, SignatureCheck::Valid));
        assert_eq!(kinds(c), vec![(FindingKind::Reordered, 21)]);
    }

    /// FORMAT.md §8.4 (issue 7, question 9): "next segment" is a validly signed segment
    /// starting right after; without one, an invalid signature is a bad signature.
    #[test]
    fn invalid_signatures_are_classified_by_the_validly_signed_next_segment() {
        // The next segment links to the body: bad signature, file findings kept.
        let mut c = chain(&[(1, 10), (11, 20), (21, 30)]);
        c[1].parsed.as_mut().unwrap().signature = SignatureCheck::Invalid;
        assert_eq!(kinds(c), vec![(FindingKind::BadSignature, 11)]);
        // The next segment links elsewhere: modified manifest, its file findings withdrawn.
        let mut c = chain(&[(1, 10), (11, 20)]);
        c.push(seg(21, 30, 2, &genesis(), SignatureCheck::Valid));
        c[1].parsed.as_mut().unwrap().signature = SignatureCheck::Invalid;
        let before = file_findings_kept(chain(&[(1, 10), (11, 20), (21, 30)]));
        assert_eq!(kinds(c), vec![(FindingKind::ModifiedManifest, 11)]);
        let mut c = chain(&[(1, 10), (11, 20)]);
        c.push(seg(21, 30, 2, &genesis(), SignatureCheck::Valid));
        c[1].parsed.as_mut().unwrap().signature = SignatureCheck::Invalid;
        assert_eq!(file_findings_kept(c), before - 1);
        // The only next segment has an invalid signature itself: it vouches for nothing.
        let mut c = chain(&[(1, 10), (11, 20)]);
        c.push(seg(21, 30, 2, &genesis(), SignatureCheck::Invalid));
        c[1].parsed.as_mut().unwrap().signature = SignatureCheck::Invalid;
        assert_eq!(
            kinds(c),
            vec![
                (FindingKind::BadSignature, 11),
                (FindingKind::BadSignature, 21)
            ]
        );
        // No next segment at all (the newest, or the next one is missing): bad signature.
        let mut c = chain(&[(1, 10), (11, 20), (21, 30)]);
        c.remove(2);
        c[1].parsed.as_mut().unwrap().signature = SignatureCheck::Invalid;
        assert_eq!(kinds(c), vec![(FindingKind::BadSignature, 11)]);
        // An unknown-key next segment does not vouch either.
        let mut c = chain(&[(1, 10), (11, 20)]);
        c.push(seg(21, 30, 2, &genesis(), SignatureCheck::UnknownKey));
        c[1].parsed.as_mut().unwrap().signature = SignatureCheck::Invalid;
        assert_eq!(kinds(c), vec![(FindingKind::BadSignature, 11)]);
    }

    /// FORMAT.md §8.4: a manifest that could not be read stands in the walk for the range its
    /// name says: no false gap after it, no chain judged across it.
    #[test]
    fn an_unread_manifest_covers_its_names_range_and_vouches_for_nothing() {
        let mut c = chain(&[(1, 10), (11, 20), (21, 30)]);
        c[1].parsed = None;
        c[1].placeholder = true;
        assert_eq!(kinds(c), vec![]);
        let mut c = chain(&[(1, 10), (11, 20)]);
        c[0].parsed = None;
        c[0].placeholder = true;
        assert_eq!(kinds(c), vec![], "no gap before an unread first segment");
        // An invalid signature before it: nothing vouches for the body.
        let mut c = chain(&[(1, 10), (11, 20), (21, 30)]);
        c[0].parsed.as_mut().unwrap().signature = SignatureCheck::Invalid;
        c[1].parsed = None;
        c[1].placeholder = true;
        assert_eq!(kinds(c), vec![(FindingKind::BadSignature, 1)]);
    }

    #[test]
    fn a_modified_first_manifest_is_not_also_a_gap() {
        let mut c = chain(&[(1, 10), (11, 20)]);
        c[0] = seg(1, 10, 5, &genesis(), SignatureCheck::Invalid);
        // Its successor links to the original body, not this one.
        assert_eq!(kinds(c), vec![(FindingKind::ModifiedManifest, 1)]);
    }
}
