//! Events turned into Arrow columns, with their leaf hashes, where they were parsed (a parser
//! thread): the sealer then appends whole runs of rows ([`super::SegmentBuilder::push_chunk`])
//! instead of moving one owned event at a time across threads (issue 13).

use std::sync::Arc;

use arrow_array::RecordBatch;

use super::{ColumnsBuilder, SegmentError};
use crate::event::{AuditEvent, EventView, StreamId};
use crate::leaf::{LeafError, view_leaf};
use crate::merkle::{Hash, leaf_hash};

/// Builds an [`EventChunk`] of one stream, one validated event at a time.
pub struct ChunkBuilder {
    stream: Arc<StreamId>,
    columns: ColumnsBuilder,
    offsets: Vec<i64>,
    leaves: Vec<Hash>,
    leaf_buf: Vec<u8>,
}

impl ChunkBuilder {
    pub fn new(stream: &Arc<StreamId>) -> Self {
        ChunkBuilder {
            stream: Arc::clone(stream),
            columns: ColumnsBuilder::new(),
            offsets: Vec::new(),
            leaves: Vec::new(),
            leaf_buf: Vec::with_capacity(1024),
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Appends `e` at `offset` (strictly increasing) as the next row. An event whose leaf
    /// cannot be encoded is not appended: the error says why.
    pub fn push(&mut self, offset: i64, e: &AuditEvent) -> Result<(), LeafError> {
        self.push_view(offset, &e.view())
    }

    /// [`ChunkBuilder::push`] of an event borrowed from its input ([`AuditEvent::with_json`]).
    pub fn push_view(&mut self, offset: i64, e: &EventView<'_>) -> Result<(), LeafError> {
        assert!(
            self.offsets.last().is_none_or(|l| *l < offset),
            "chunk offsets must increase: {offset} after {:?}",
            self.offsets.last()
        );
        self.leaf_buf.clear();
        view_leaf(&self.stream, offset, e, &mut self.leaf_buf)?;
        self.leaves.push(leaf_hash(&self.leaf_buf));
        self.offsets.push(offset);
        self.columns.append(&self.stream, offset, e);
        Ok(())
    }

    pub fn finish(mut self) -> Result<EventChunk, SegmentError> {
        Ok(EventChunk {
            batch: self.columns.finish()?,
            stream: self.stream,
            offsets: self.offsets,
            leaves: self.leaves,
        })
    }
}

/// Rows of events with their offsets and leaf hashes. Only [`ChunkBuilder`] makes one, so each
/// row's leaf hash is that of (stream, offset, the row's event).
pub struct EventChunk {
    pub(super) stream: Arc<StreamId>,
    pub(super) batch: RecordBatch,
    pub(super) offsets: Vec<i64>,
    pub(super) leaves: Vec<Hash>,
}

impl EventChunk {
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The offset of row `row`.
    pub fn offset(&self, row: usize) -> i64 {
        self.offsets[row]
    }

    pub fn stream(&self) -> &StreamId {
        &self.stream
    }
}
