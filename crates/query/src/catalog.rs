//! The verified segments the service may serve. A segment enters only after its manifest's
//! signature checks against the trusted keys and its Parquet file hashes to the manifest's
//! value (cairn-verify's per-segment check); the rows served are decoded from the very bytes
//! whose hash was checked, so nothing can change between the check and the read. A segment
//! that fails is excluded, counted and reported — never served.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use cairn_format::{Digest, PublicKey, SignedManifest};
use cairn_store::{StoreError, StoreReader};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

/// A table: a name analysts query and the streams whose segments it holds.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    /// Stream ids (Kafka topics) matched exactly, or by prefix when ending in `*`.
    pub streams: Vec<String>,
}

impl TableDef {
    fn holds(&self, stream: &str) -> bool {
        self.streams.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => stream.starts_with(prefix),
            None => stream == p,
        })
    }
}

/// One verified segment, decoded.
#[derive(Debug)]
pub struct Segment {
    /// The manifest's object name.
    pub object: String,
    pub manifest: SignedManifest,
    /// SHA-256 of the manifest object, as auditors cite it.
    pub manifest_sha256: String,
    pub batches: Vec<RecordBatch>,
    pub min_occurred_us: Option<i64>,
    pub max_occurred_us: Option<i64>,
}

/// A segment that failed verification, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    pub object: String,
    pub reason: String,
}

#[derive(Default)]
struct State {
    /// Table name → manifest object → segment.
    tables: BTreeMap<String, BTreeMap<String, Arc<Segment>>>,
    excluded: BTreeMap<String, Excluded>,
}

pub struct Catalog {
    store: StoreReader,
    keys: Vec<PublicKey>,
    defs: Vec<TableDef>,
    schema: SchemaRef,
    state: RwLock<State>,
    refreshes: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no trusted public key: the service would serve nothing")]
    NoKeys,
}

impl CatalogError {
    pub fn is_transient(&self) -> bool {
        match self {
            CatalogError::Store(e) => e.is_transient(),
            CatalogError::NoKeys => false,
        }
    }
}

/// What one refresh found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    pub added: usize,
    pub excluded: usize,
}

impl Catalog {
    pub fn new(
        store: StoreReader,
        keys: Vec<PublicKey>,
        defs: Vec<TableDef>,
    ) -> Result<Self, CatalogError> {
        if keys.is_empty() {
            return Err(CatalogError::NoKeys);
        }
        Ok(Catalog {
            store,
            keys,
            defs,
            schema: cairn_format::segment::arrow_schema(),
            state: RwLock::new(State::default()),
            refreshes: AtomicU64::new(0),
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn table_names(&self) -> Vec<String> {
        self.defs.iter().map(|d| d.name.clone()).collect()
    }

    /// Completed refreshes (readiness: at least one).
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Lists the store and admits every new manifest that verifies; a manifest that does not
    /// is excluded (and re-checked on later refreshes, in case it was a transient read).
    pub async fn refresh(&self) -> Result<Refreshed, CatalogError> {
        let listed = self.store.list("v1/streams/").await?;
        let mut out = Refreshed::default();
        for info in listed {
            let object = info.name;
            if !object.ends_with(".manifest") {
                continue;
            }
            let Some(name) = cairn_format::names::parse_object_name(&object) else {
                continue;
            };
            let Some(def) = self.defs.iter().find(|d| d.holds(&name.stream.source)) else {
                continue;
            };
            if self.known(&def.name, &object) {
                continue;
            }
            match self.admit(&object).await {
                Ok(segment) => {
                    let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                    state.excluded.remove(&object);
                    state
                        .tables
                        .entry(def.name.clone())
                        .or_default()
                        .insert(object, Arc::new(segment));
                    out.added += 1;
                }
                Err(Admit::Store(e)) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    let reason = e.to_string();
                    let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                    let excluded = Excluded {
                        object: object.clone(),
                        reason: reason.clone(),
                    };
                    // Logged once (it is re-checked on every refresh, in case a read was bad).
                    if state.excluded.insert(object.clone(), excluded).is_none() {
                        tracing::error!(object = %object, reason = %reason, "segment excluded: it failed verification");
                        out.excluded += 1;
                    }
                }
            }
        }
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    fn known(&self, table: &str, object: &str) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .tables
            .get(table)
            .is_some_and(|t| t.contains_key(object))
    }

    async fn admit(&self, object: &str) -> Result<Segment, Admit> {
        let verdict = cairn_verify::check_segment(&self.store, &self.keys, object)
            .await
            .map_err(|e| Admit::Verify(e.to_string()))?;
        if !verdict.is_intact() {
            let f = verdict
                .findings
                .iter()
                .find(|f| !f.kind.is_warning())
                .map(|f| format!("{}: {}", f.kind.as_str(), f.message));
            return Err(Admit::Verify(f.unwrap_or_else(|| "not intact".into())));
        }
        let manifest = verdict
            .manifest
            .ok_or_else(|| Admit::Verify("manifest unreadable".into()))?;
        // Decode the bytes whose hash is checked here, not a second read of the object.
        let (bytes, _) = self
            .store
            .read_sealed(&manifest.manifest.parquet.object)
            .await
            .map_err(Admit::Store)?;
        if Digest::of(&bytes) != manifest.manifest.parquet.sha256 {
            return Err(Admit::Verify(format!(
                "{} changed after it was verified (its SHA-256 no longer matches the manifest)",
                manifest.manifest.parquet.object
            )));
        }
        let (manifest_bytes, _) = self.store.read_sealed(object).await.map_err(Admit::Store)?;
        let batches = decode(bytes, &self.schema).map_err(Admit::Verify)?;
        let min = manifest
            .manifest
            .min_occurred_at
            .as_deref()
            .and_then(parse_micros);
        let max = manifest
            .manifest
            .max_occurred_at
            .as_deref()
            .and_then(parse_micros);
        Ok(Segment {
            object: object.to_string(),
            manifest_sha256: Digest::of(&manifest_bytes).as_str().to_string(),
            manifest,
            batches,
            min_occurred_us: min,
            max_occurred_us: max,
        })
    }

    /// The segments of `table` that may hold rows for `tenants` (all when `None`) within
    /// `[from_us, to_us]`, by their manifests' tenant lists and time bounds.
    pub fn segments(
        &self,
        table: &str,
        tenants: Option<&[String]>,
        from_us: Option<i64>,
        to_us: Option<i64>,
    ) -> Vec<Arc<Segment>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let Some(t) = state.tables.get(table) else {
            return Vec::new();
        };
        t.values()
            .filter(|s| match tenants {
                Some(ts) => s.manifest.manifest.tenants.iter().any(|x| ts.contains(x)),
                None => true,
            })
            .filter(|s| match (from_us, s.max_occurred_us) {
                (Some(from), Some(max)) => max >= from,
                _ => true,
            })
            .filter(|s| match (to_us, s.min_occurred_us) {
                (Some(to), Some(min)) => min <= to,
                _ => true,
            })
            .cloned()
            .collect()
    }

    pub fn excluded(&self) -> Vec<Excluded> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.excluded.values().cloned().collect()
    }

    /// Segments served, per table.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        self.defs
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    state.tables.get(&d.name).map_or(0, |t| t.len()),
                )
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
enum Admit {
    #[error("{0}")]
    Verify(String),
    #[error(transparent)]
    Store(StoreError),
}

/// The rows of a verified Parquet file, in the catalog's schema (files by other conforming
/// writers may name map entries or the time zone differently: FORMAT.md §4).
fn decode(bytes: Bytes, schema: &SchemaRef) -> Result<Vec<RecordBatch>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| format!("decoding the verified Parquet file: {e}"))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("decoding the verified Parquet file: {e}"))?;
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                format!("the verified Parquet file has no column {}", field.name())
            })?;
            let column = if column.data_type() == field.data_type() {
                column.clone()
            } else {
                cast(column, field.data_type())
                    .map_err(|e| format!("column {}: {e}", field.name()))?
            };
            columns.push(column);
        }
        out.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// FORMAT.md §0 canonical timestamps (`2026-11-26T16:07:19.000000Z`) as microseconds.
fn parse_micros(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}
