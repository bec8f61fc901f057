//! The checkpointer: appends a store's manifests to its transparency log and signs a
//! checkpoint over it (docs/FORMAT.md §12).
//!
//! It owns the append protocol: verify the newest checkpoint under this key and that the log's
//! entries reproduce it (cairn never signs a checkpoint that does not extend the previous one),
//! append every manifest not yet logged in listing order, write the new tiles, then the
//! checkpoint — each a conditional create, so a second checkpointer racing this one finds a
//! name taken with other bytes and stops before it signs anything. It refuses to log a v3
//! manifest that names another store.
//!
//! A writer like the sealer: it reads the log through `cairn-verify`'s readers and creates
//! objects through `cairn-store`'s writer. Readers (verify, query) never depend on it.

use std::collections::HashSet;

use bytes::Bytes;
use cairn_format::log::tiles::new_objects;
use cairn_format::log::{Checkpoint, Origin, checkpoint_object, entry, parse_entry};
use cairn_format::merkle::{leaf_hash, root_recursive};
use cairn_format::names::{ObjectKind, parse_object_name};
use cairn_format::{SignedManifest, SigningKey};
use cairn_sealer::{SealError, ensure_origin};
use cairn_store::{StoreError, StoreWriter};
use cairn_verify::log::{LogError, newest_checkpoint, read_entries};
use futures::StreamExt;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Origin(#[from] SealError),
    #[error(
        "the store's newest checkpoint ({object}) does not verify under this key ({problem}): refusing to extend a log this key did not sign; use the log's key"
    )]
    ForeignCheckpoint { object: String, problem: String },
    #[error(
        "the log's entries do not reproduce the newest checkpoint ({object}): the log was altered; refusing to sign anything over it (run cairn verify)"
    )]
    Inconsistent { object: String },
    #[error(
        "another checkpointer is appending to this log ({object} exists with other bytes); nothing was signed, run again"
    )]
    Race { object: String },
    #[error("the store holds no sealed segment yet: nothing to checkpoint")]
    Empty,
}

impl CheckpointerError {
    /// Running again later can help: the store was unavailable, or another checkpointer won.
    pub fn is_transient(&self) -> bool {
        match self {
            CheckpointerError::Store(e) => e.is_transient(),
            CheckpointerError::Log(e) => e.is_transient(),
            CheckpointerError::Origin(e) => e.is_transient(),
            CheckpointerError::Race { .. } => true,
            _ => false,
        }
    }
}

/// What a checkpoint run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub origin: Origin,
    pub old_size: u64,
    pub new_size: u64,
    /// The checkpoint now newest (the previous one when nothing was appended).
    pub note: String,
    /// Manifests not appended, and why (unparseable, foreign, misnamed): `cairn verify` says more.
    pub skipped: Vec<(String, String)>,
}

impl Outcome {
    pub fn appended(&self) -> u64 {
        self.new_size - self.old_size
    }
}

/// Appends the store's new manifests to its log and signs a checkpoint with `key`.
pub async fn checkpoint(
    store: &StoreWriter,
    key: &SigningKey,
) -> Result<Outcome, CheckpointerError> {
    let origin = ensure_origin(store, None).await?;
    let (old_size, mut entries, previous_note) = match newest_checkpoint(store).await? {
        None => (0, Vec::new(), None),
        Some((size, note)) => {
            let object = checkpoint_object(size);
            let cp = Checkpoint::open(&note, &[key.public()]).map_err(|e| {
                CheckpointerError::ForeignCheckpoint {
                    object: object.clone(),
                    problem: e.to_string(),
                }
            })?;
            let entries = read_entries(store, size).await?;
            let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
            if cp.size != size || cp.origin != origin || root_recursive(&leaves) != cp.root {
                return Err(CheckpointerError::Inconsistent { object });
            }
            (size, entries, Some(note))
        }
    };
    let logged: HashSet<String> = entries
        .iter()
        .filter_map(|e| parse_entry(e).map(|(_, n)| n))
        .collect();
    let new_names: Vec<String> = store
        .list("v1/streams/")
        .await?
        .into_iter()
        .filter(|o| parse_object_name(&o.name).is_some_and(|n| n.kind == ObjectKind::Manifest))
        .map(|o| o.name)
        .filter(|n| !logged.contains(n))
        .collect();
    let read: Vec<(String, Result<Bytes, StoreError>)> = futures::stream::iter(new_names)
        .map(|name| async move {
            let r = store.get(&name, None).await;
            (name, r)
        })
        .buffered(16)
        .collect()
        .await;
    let mut skipped = Vec::new();
    for (name, bytes) in read {
        let sm = match SignedManifest::parse(&bytes?) {
            Ok(sm) => sm,
            Err(e) => {
                skipped.push((name, format!("not logged: {e}")));
                continue;
            }
        };
        let m = &sm.manifest;
        if !parse_object_name(&name).is_some_and(|n| m.matches(&n)) {
            skipped.push((name, "not logged: its body is not its name's".into()));
            continue;
        }
        if let Some(store_origin) = &m.store
            && store_origin != origin.as_str()
        {
            skipped.push((
                name,
                format!("not logged: sealed into another store ({store_origin})"),
            ));
            continue;
        }
        entries.push(entry(&sm.chain_hash(), &name));
    }
    let new_size = entries.len() as u64;
    if new_size == old_size {
        return match previous_note {
            Some(note) => Ok(Outcome {
                origin,
                old_size,
                new_size,
                note,
                skipped,
            }),
            None => Err(CheckpointerError::Empty),
        };
    }
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    for (name, bytes) in new_objects(&leaves, &entries, old_size) {
        create(store, &name, bytes).await?;
    }
    let cp = Checkpoint {
        origin: origin.clone(),
        size: new_size,
        root: root_recursive(&leaves),
    };
    let note = cp.sign(key);
    create(
        store,
        &checkpoint_object(new_size),
        note.clone().into_bytes(),
    )
    .await?;
    Ok(Outcome {
        origin,
        old_size,
        new_size,
        note,
        skipped,
    })
}

async fn create(store: &StoreWriter, name: &str, bytes: Vec<u8>) -> Result<(), CheckpointerError> {
    match store.create(name, Bytes::from(bytes)).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(CheckpointerError::Race {
            object: name.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}
