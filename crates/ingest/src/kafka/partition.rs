//! One assigned partition: its sealer, and how its consumer position is confirmed.

use std::sync::Arc;
use std::time::Instant;

use cairn_format::{OffsetRange, StreamId};
use cairn_sealer::StreamSealer;
use rdkafka::Offset;

pub(crate) struct Partition {
    pub topic: String,
    pub partition: i32,
    pub stream: Arc<StreamId>,
    pub sealer: StreamSealer,
    /// Set after the consumer was positioned at the resume offset, until that offset (or proof
    /// that it does not exist) has been seen.
    pub probe: Option<Probe>,
    /// Next offset after the last message consumed (for the lag metric).
    pub consumed_next: Option<i64>,
    /// The partition's log was compared with the store since it was opened (see
    /// `State::check_log`).
    pub log_checked: bool,
}

impl Partition {
    pub fn is(&self, topic: &str, partition: i32) -> bool {
        self.partition == partition && self.topic == topic
    }

    /// Notes that `offset` was read; `Some(position)` when the consumer must first be moved
    /// back to confirm the position (see [`Probe`]).
    pub fn confirm_position(&mut self, offset: i64) -> Option<Offset> {
        self.consumed_next = Some(self.consumed_next.unwrap_or(0).max(offset + 1));
        let probe = self.probe.as_mut()?;
        if offset < probe.target {
            probe.saw_before = true;
            None
        } else if offset == probe.target || probe.saw_before {
            self.probe = None; // positioned for sure: from here on a jump is real
            None
        } else if let Some(position) = probe.step_back() {
            Some(position)
        } else {
            self.probe = None; // read from the beginning: the offsets are really gone
            None
        }
    }
}

/// Confirms a positioning before any skipped offset is believed.
///
/// Some brokers (tansu 0.6) answer a fetch at offset `o` with the first record batch whose
/// *base* offset is `>= o`, skipping the rest of the batch that contains `o` (or returning
/// nothing at all when that batch is the last). So the consumer is positioned [`REREAD`]
/// records early, and a jump past the target before any earlier record was read is not proof
/// that offsets are absent: the consumer is moved further back (already-sealed offsets are
/// skipped) until it has read a record before the target, after which a jump is real.
#[derive(Clone, Debug)]
pub(crate) struct Probe {
    pub target: i64,
    /// How far before `target` the next re-positioning goes.
    back: i64,
    /// A record before `target` was read since the last positioning.
    pub saw_before: bool,
    /// The last re-positioning went to the beginning of the partition.
    at_beginning: bool,
    /// When the partition was last positioned.
    pub since: Instant,
}

/// Records re-read before the resume offset on every positioning (see [`Probe`]).
pub(crate) const REREAD: i64 = 512;

/// Where to position a partition whose next unsealed offset is `resume`: a little before it,
/// so that a broker that serves whole record batches from a batch start still returns the
/// batch holding `resume`. Already-sealed records are skipped.
pub(crate) fn start_position(resume: Option<i64>) -> Offset {
    match resume {
        Some(o) if o > REREAD => Offset::Offset(o - REREAD),
        _ => Offset::Beginning,
    }
}

/// What a run of offsets `first..=last` that Kafka passed over was, given the partition's log
/// start `log_start` (its low watermark, read after the gap was seen): offsets below the log
/// start were deleted (retention, DeleteRecords) and never sealed, so they are lost; the rest
/// are still in the log but were not delivered (transaction markers, aborted records), so they
/// are absent. Deletion only ever removes a prefix of the log.
pub(crate) fn classify_gap(first: i64, last: i64, log_start: i64) -> Gap {
    let lost_end = last.min(log_start - 1);
    let absent_start = first.max(log_start);
    Gap {
        lost: (first <= lost_end).then_some(OffsetRange::new(first, lost_end)),
        absent: (absent_start <= last).then_some(OffsetRange::new(absent_start, last)),
    }
}

/// A gap split by [`classify_gap`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Gap {
    pub lost: Option<OffsetRange>,
    pub absent: Option<OffsetRange>,
}

/// An offset for people: `offset 14`, or `the beginning of the partition`.
pub(crate) fn describe(position: Offset) -> String {
    match position {
        Offset::Beginning => "the beginning of the partition".into(),
        Offset::End => "the end of the partition".into(),
        Offset::Offset(o) => format!("offset {o}"),
        other => format!("{other:?}"),
    }
}

impl Probe {
    pub fn new(target: i64) -> Self {
        Probe {
            target,
            back: REREAD * 8,
            saw_before: false,
            at_beginning: false,
            since: Instant::now(),
        }
    }

    /// The next, earlier position to try; `None` once the beginning was tried.
    pub fn step_back(&mut self) -> Option<Offset> {
        if self.at_beginning {
            return None;
        }
        let position = if self.target - self.back <= 0 {
            self.at_beginning = true;
            Offset::Beginning
        } else {
            Offset::Offset(self.target - self.back)
        };
        self.back = self.back.saturating_mul(8);
        self.saw_before = false;
        self.since = Instant::now();
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_lost_below_the_log_start_and_absent_above_it() {
        let gap = |lost: Option<[i64; 2]>, absent: Option<[i64; 2]>| Gap {
            lost: lost.map(OffsetRange::from),
            absent: absent.map(OffsetRange::from),
        };
        assert_eq!(classify_gap(10, 19, 0), gap(None, Some([10, 19])));
        assert_eq!(classify_gap(10, 19, 10), gap(None, Some([10, 19])));
        assert_eq!(
            classify_gap(10, 19, 15),
            gap(Some([10, 14]), Some([15, 19]))
        );
        assert_eq!(classify_gap(10, 19, 20), gap(Some([10, 19]), None));
        assert_eq!(classify_gap(10, 19, 500), gap(Some([10, 19]), None));
        assert_eq!(classify_gap(10, 10, 11), gap(Some([10, 10]), None));
    }

    #[test]
    fn a_jump_past_the_target_is_believed_only_after_an_earlier_record() {
        let mut p = Probe::new(10_000);
        assert_eq!(p.step_back(), Some(Offset::Offset(10_000 - 4096)));
        assert_eq!(p.step_back(), Some(Offset::Beginning));
        assert_eq!(p.step_back(), None);
        assert_eq!(start_position(Some(100)), Offset::Beginning);
        assert_eq!(start_position(Some(1000)), Offset::Offset(488));
        assert_eq!(describe(Offset::Offset(14)), "offset 14");
        assert_eq!(
            describe(Offset::Beginning),
            "the beginning of the partition"
        );
    }
}
