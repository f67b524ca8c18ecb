//! A rate as operators write it (`20/min`), and the GCRA token bucket that
//! holds a stream of calls to it: a reader's pace in the bot, a provider's
//! cap in the catalog. GCRA keeps one number, the time at which the bucket
//! is full again.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// `rate` per `period`, `burst` of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: u32,
    pub period: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// `20/min`, `5/s`, `100/h`; `off` = no limit. The burst is a quarter of
    /// the rate (at least 1): a few in a row pass, a stream does not.
    pub fn parse(text: &str) -> Result<Option<Self>, &'static str> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        const FORMAT: &str = "must be like 20/min (per s, min or h), or off";
        let (rate, unit) = text.split_once('/').ok_or(FORMAT)?;
        let rate: u32 = rate.trim().parse().map_err(|_| FORMAT)?;
        let period = match unit.trim() {
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(FORMAT),
        };
        if rate == 0 {
            return Err("must allow at least one (or be off)");
        }
        Ok(Some(Self {
            rate,
            period,
            burst: (rate / 4).max(1),
        }))
    }

    /// The time one call takes from the bucket.
    pub fn interval(&self) -> Duration {
        self.period / self.rate
    }

    /// How far ahead of now the bucket may be booked: the burst.
    pub fn tolerance(&self) -> Duration {
        self.interval() * (self.burst - 1)
    }

    /// GCRA's one step: with the bucket full again at `full_at`, whether one
    /// more call fits `now`, and if so when the bucket is full after it.
    pub fn admit(&self, full_at: Instant, now: Instant) -> Option<Instant> {
        let booked = full_at.max(now);
        (booked.duration_since(now) <= self.tolerance()).then(|| booked + self.interval())
    }
}

/// One stream's bucket, in this process.
#[derive(Debug)]
pub struct Pacer {
    limit: RateLimit,
    /// When the bucket is full again.
    full_at: Mutex<Instant>,
}

impl Pacer {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            full_at: Mutex::new(Instant::now()),
        }
    }

    /// True when one more call fits now (and counts it).
    pub fn allow(&self) -> bool {
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        match self.limit.admit(*full_at, Instant::now()) {
            Some(next) => {
                *full_at = next;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_a_quarter_as_burst() {
        let limit = RateLimit::parse("20/min").unwrap().unwrap();
        assert_eq!(
            (limit.rate, limit.period, limit.burst),
            (20, Duration::from_secs(60), 5)
        );
        assert_eq!(limit.interval(), Duration::from_secs(3));
        assert_eq!(RateLimit::parse("off").unwrap(), None);
        for bad in ["20", "x/min", "20/day", "0/min", ""] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pacer_lets_a_burst_through_then_one_per_interval() {
        let pacer = Pacer::new(RateLimit::parse("8/s").unwrap().unwrap());
        assert!((0..2).all(|_| pacer.allow()), "a burst of a quarter");
        assert!(!pacer.allow(), "then the stream waits");
        tokio::time::advance(Duration::from_millis(125)).await;
        assert!(pacer.allow(), "one per interval");
        assert!(!pacer.allow());
    }
}
