//! Offsets Kafka passes over without delivering them: transaction markers and aborted records
//! (absent), records retention or DeleteRecords removed before they were sealed (lost, told
//! apart by the partition's log start), and a log that ends before what the store sealed.

use std::time::Duration;

use cairn_format::OffsetRange;
use cairn_sealer::SealedSegment;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::partition::classify_gap;
use super::rebalance::Ctx;
use super::running::{State, Step};
use crate::IngestError;

/// How long to wait for a partition leader's watermarks.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

impl Step {
    fn log_start(e: rdkafka::error::KafkaError) -> Self {
        Step::Retry {
            what: "cannot read where the partition's log starts",
            error: e.to_string(),
        }
    }
}

impl State {
    /// Compares a newly opened partition's log with its stream, once: offsets the stream still
    /// needs that Kafka already deleted (the consumer was down longer than the retention, or
    /// someone ran DeleteRecords) are recorded as lost; a log that ends before what the store
    /// has sealed (a recreated topic, another cluster) stops ingest, since its records would
    /// be mistaken for sealed ones.
    pub(super) fn check_log(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        i: usize,
    ) -> Result<Vec<SealedSegment>, Step> {
        let part = &self.parts[i];
        if part.log_checked {
            return Ok(Vec::new());
        }
        let Some(next) = part.sealer.resume_offset() else {
            self.parts[i].log_checked = true;
            return Ok(Vec::new());
        };
        let (low, high) = consumer
            .fetch_watermarks(&part.topic, part.partition, WATERMARK_TIMEOUT)
            .map_err(Step::log_start)?;
        if high < next {
            return Err(Step::Fatal(IngestError::SourceBehindStore {
                stream: part.stream.to_string(),
                log_end: high,
                sealed_last: next - 1,
            }));
        }
        let mut written = Vec::new();
        if next < low {
            written = self.record_lost(i, next, low - 1)?;
        }
        let part = &mut self.parts[i];
        if next <= low {
            part.probe = None; // nothing before the resume offset is left to confirm it with
        }
        part.log_checked = true;
        Ok(written)
    }

    /// Offsets `first..=last` of partition `i` that Kafka passed over without delivering them:
    /// those the log no longer holds are lost (see [`classify_gap`]), the others absent
    /// (transaction markers, aborted records).
    pub(super) fn skipped(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        i: usize,
        first: i64,
        last: i64,
    ) -> Result<Vec<SealedSegment>, Step> {
        let part = &self.parts[i];
        let (low, _) = consumer
            .fetch_watermarks(&part.topic, part.partition, WATERMARK_TIMEOUT)
            .map_err(Step::log_start)?;
        let gap = classify_gap(first, last, low);
        let mut written = Vec::new();
        if let Some(OffsetRange { first, last }) = gap.lost {
            written.extend(self.record_lost(i, first, last)?);
        }
        if let Some(OffsetRange { first, last }) = gap.absent {
            let part = &mut self.parts[i];
            tracing::info!(
                topic = %part.topic,
                partition = part.partition,
                first,
                last,
                "offsets were not delivered; recording them as absent"
            );
            written.extend(self.rt.block_on(part.sealer.push_absent(first, last))?);
            self.metrics.absent(&part.topic, (last - first + 1) as u64);
        }
        Ok(written)
    }

    pub(super) fn record_lost(
        &mut self,
        i: usize,
        first: i64,
        last: i64,
    ) -> Result<Vec<SealedSegment>, Step> {
        let part = &mut self.parts[i];
        tracing::error!(
            topic = %part.topic,
            partition = part.partition,
            first,
            last,
            "Kafka deleted these offsets (retention or DeleteRecords) before they were sealed; recording them as lost. Raise retention.ms above the longest outage ingest must survive"
        );
        let written = self.rt.block_on(part.sealer.push_lost(first, last))?;
        self.metrics.lost(&part.topic, (last - first + 1) as u64);
        Ok(written)
    }

    /// The consumer moved past offsets it never returned (a transaction's commit or abort
    /// marker, an aborted batch at the end of what was produced): record them as absent so a
    /// quiet partition's last segment covers them too. librdkafka's position is the offset after
    /// the last message it returned or skipped.
    pub(super) fn skip_to_positions(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
    ) -> Result<(), IngestError> {
        let positions = consumer.position()?;
        for i in 0..self.parts.len() {
            let p = &self.parts[i];
            if p.probe.is_some() || !p.log_checked {
                continue; // still confirming where this partition is
            }
            let Some(next) = p.sealer.resume_offset() else {
                continue;
            };
            let position = positions
                .find_partition(&p.topic, p.partition)
                .map(|e| e.offset());
            if let Some(Offset::Offset(pos)) = position
                && pos > next
            {
                let r = self.skipped(consumer, i, next, pos - 1);
                self.settle(consumer, i, r)?;
            }
        }
        Ok(())
    }
}
