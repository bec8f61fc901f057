//! Rate-limited logging of repeated consumer errors.

use std::time::{Duration, Instant};

/// Logs each consumer error the first time it is seen and then at most every 10 s with how
/// often it recurred (librdkafka reports `AllBrokersDown` and `BrokerTransportFailure` on
/// every poll during an outage).
#[derive(Default)]
pub(crate) struct Repeats {
    /// Per error text: when it was last logged, and how often seen since.
    seen: std::collections::HashMap<String, (Instant, u64)>,
}

impl Repeats {
    /// `Some(repeats since last logged)` when `error` should be logged now.
    pub(super) fn note(&mut self, error: &str, now: Instant) -> Option<u64> {
        match self.seen.get_mut(error) {
            Some((at, n)) if now.duration_since(*at) < Duration::from_secs(10) => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                *at = now;
                Some(std::mem::take(n))
            }
            None => {
                self.seen.insert(error.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_consumer_error_is_logged_once_per_ten_seconds_with_its_count() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.note("down", t0), Some(0));
        for ms in 1..=50 {
            assert_eq!(r.note("down", t0 + Duration::from_millis(ms * 100)), None);
        }
        assert_eq!(r.note("down", t0 + Duration::from_secs(11)), Some(50));
        assert_eq!(r.note("other", t0 + Duration::from_secs(12)), Some(0));
        assert_eq!(r.note("down", t0 + Duration::from_secs(12)), None);
        assert_eq!(r.note("other", t0 + Duration::from_secs(13)), None);
        assert_eq!(r.note("down", t0 + Duration::from_secs(22)), Some(1));
    }
}
