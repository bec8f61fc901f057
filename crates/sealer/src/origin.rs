//! The store's origin (docs/FORMAT.md §11): read it, or create it once.

use bytes::Bytes;
use cairn_format::log::{ORIGIN_OBJECT, Origin};
use cairn_store::{StoreError, StoreWriter};

use crate::SealError;

/// The store's origin, creating `v1/origin` when the store has none: with `wanted`, or a fresh
/// random one. A store that already has another origin than `wanted` is an error (an origin is
/// never replaced).
pub async fn ensure_origin(
    store: &StoreWriter,
    wanted: Option<&Origin>,
) -> Result<Origin, SealError> {
    let bad = |message: String| SealError::Origin { message };
    let existing = match store.get(ORIGIN_OBJECT, None).await {
        Ok(bytes) => Some(bytes),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let origin = match existing {
        Some(bytes) => Origin::from_object(&bytes).map_err(|e| {
            bad(format!(
                "the store's {ORIGIN_OBJECT} object is malformed ({e}); the store needs investigation"
            ))
        })?,
        None => {
            let origin = wanted.cloned().unwrap_or_else(Origin::generate);
            match store
                .create(ORIGIN_OBJECT, Bytes::from(origin.to_object()))
                .await
            {
                Ok(_) => origin,
                // Another writer created it first: take theirs.
                Err(StoreError::Conflict { .. }) => {
                    let bytes = store.get(ORIGIN_OBJECT, None).await?;
                    Origin::from_object(&bytes).map_err(|e| bad(e.to_string()))?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if let Some(w) = wanted
        && *w != origin
    {
        return Err(bad(format!(
            "the store's origin is already {origin}; an origin is created once and never replaced (drop --origin to use it)"
        )));
    }
    Ok(origin)
}
