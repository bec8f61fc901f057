//! What is in the store: the whole listing, classified (docs/FORMAT.md §8.2).

use std::collections::{BTreeMap, BTreeSet};

use cairn_format::StreamId;
use cairn_format::log::{LogObject, ORIGIN_OBJECT};
use cairn_format::names::{ObjectKind, ObjectName, parse_claim_name, parse_object_name};
use cairn_store::{EntryKind, ObjectVersion, StoreReader};

use crate::VerifyError;
use crate::report::{Finding, FindingKind};

pub(crate) struct Inventory {
    /// Regular objects → the version to read (the sealed one on S3; `None` locally).
    pub objects: BTreeMap<String, Option<String>>,
    /// Links and special files (local stores): never read.
    pub non_regular: BTreeSet<String>,
    pub manifests: Vec<(String, ObjectName)>,
    pub parquets: Vec<(String, ObjectName)>,
    /// Writers' claims (FORMAT.md §7): (object, stream, first offset).
    pub claims: Vec<(String, StreamId, i64)>,
    /// The log's objects (FORMAT.md §12): tiles, entry bundles, checkpoints.
    pub log: BTreeMap<String, LogObject>,
    /// The store has an origin object (FORMAT.md §11).
    pub has_origin: bool,
    pub findings: Vec<Finding>,
}

/// Lists the store under `prefix` (`""`: the whole store, not only `v1/streams/`) and
/// classifies every entry.
pub(crate) async fn take(store: &StoreReader, prefix: &str) -> Result<Inventory, VerifyError> {
    let mut inv = Inventory {
        objects: BTreeMap::new(),
        non_regular: BTreeSet::new(),
        manifests: Vec::new(),
        parquets: Vec::new(),
        claims: Vec::new(),
        log: BTreeMap::new(),
        has_origin: false,
        findings: Vec::new(),
    };
    match store.versions(prefix).await? {
        None => {
            for o in store.list(prefix).await? {
                match o.kind {
                    EntryKind::Regular => {
                        inv.objects.insert(o.name, None);
                    }
                    kind => {
                        let what = if kind == EntryKind::Symlink {
                            "a symbolic link (readers that follow it, such as DuckDB, see whatever it points to)"
                        } else {
                            "a FIFO, socket or device"
                        };
                        let stream = parse_object_name(&o.name).map(|n| n.stream);
                        inv.findings.push(Finding::new(
                            FindingKind::NonRegularObject,
                            stream.as_ref(),
                            &o.name,
                            format!(
                                "{what}: a write-once vault holds regular files and directories only; not followed, not read"
                            ),
                        ));
                        inv.non_regular.insert(o.name);
                    }
                }
            }
        }
        Some(versions) => shadowing(&versions, &mut inv),
    }
    for name in inv.objects.keys() {
        match parse_object_name(name) {
            Some(n) if n.kind == ObjectKind::Manifest => inv.manifests.push((name.clone(), n)),
                        Some(n) => inv.parquets.push((name.clone(), n)),
            None if let Some((stream, first)) = parse_claim_name(name) => {
                inv.claims.push((name.clone(), stream, first))
            }
            None if name == ORIGIN_OBJECT => inv.has_origin = true,
            None if let Some(o) = LogObject::parse(name) => {
                inv.log.insert(name.clone(), o);
            }
            None => inv.findings.push(Finding::new(
                FindingKind::UnexpectedObject,
                None,
                name,
                if name.rsplit('/').next().is_some_and(|f| f.starts_with('.')) {
                    "not a cairn object name (a temporary file of an interrupted write, or a foreign object); not verified"
                } else {
                    "not a cairn object name; not verified"
                },
            )),
        }
    }
    Ok(inv)
}

/// S3: the sealed version of a name is its oldest version that is not a delete marker; any
/// later version or delete marker shadows it.
fn shadowing(versions: &[ObjectVersion], inv: &mut Inventory) {
    let mut by_name: BTreeMap<&str, Vec<&ObjectVersion>> = BTreeMap::new();
    for v in versions {
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
            inv.findings.push(Finding::new(
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
        inv.objects
            .insert(name.to_string(), Some(original.version_id.clone()));
    }
}
