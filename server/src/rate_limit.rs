//! Token buckets: a sustained request rate with room for bursts, per
//! device or per key (a claimer's share of another device's KeyPackages);
//! and a minimum spacing between requests of one kind per key, for requests
//! that make other devices work (a rejoin request costs every member a
//! commit).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One device's allowance.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

/// The rate and burst every bucket follows.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            tokens: rate.burst,
            last: now,
        }
    }

    /// Takes one token, or says how long until one is available (ms).
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), u32> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate.per_second;
            Err((wait * 1000.0).ceil().max(1.0) as u32)
        }
    }
}

impl TokenBucket {
    /// Spends `cost` more tokens for work a request caused beyond its own,
    /// into debt if need be: the next request then waits until the bucket
    /// holds a token again (`cost / per_second` seconds more). One charge
    /// is at most a full burst, so that a device made to pay for work
    /// another caused waits at most `burst / per_second` seconds; a cost
    /// that is not a finite number is no charge.
    pub fn charge(&mut self, cost: f64, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let cost = if cost.is_finite() {
            cost.clamp(0.0, rate.burst)
        } else {
            0.0
        };
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst) - cost;
    }

    /// Whether the bucket would be full at `now` (it then holds nothing
    /// back, and may be forgotten).
    pub fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= rate.burst
    }
}

/// At most one request per key every `interval`, for at most `capacity`
/// keys at a time: when that many have asked within the interval, further
/// keys wait too, so memory stays bounded whatever devices send.
#[derive(Debug)]
pub struct Spacing<K> {
    interval: Duration,
    capacity: usize,
    last: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash> Spacing<K> {
    /// Allows one request per key every `interval`, for `capacity` keys.
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Spacing {
            interval,
            capacity,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Lets `key`'s request through, or says how long to wait (ms).
    pub fn allow(&self, key: K, now: Instant) -> Result<(), u32> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let wait = |at: &Instant| {
            self.interval
                .saturating_sub(now.saturating_duration_since(*at))
        };
        if let Some(at) = last.get(&key) {
            let left = wait(at);
            if !left.is_zero() {
                return Err(millis(left));
            }
        } else if last.len() >= self.capacity {
            last.retain(|_, at| !wait(at).is_zero());
            if last.len() >= self.capacity {
                let soonest = last.values().map(wait).min().unwrap_or(self.interval);
                return Err(millis(soonest));
            }
        }
        last.insert(key, now);
        Ok(())
    }
}

fn millis(wait: Duration) -> u32 {
    u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_is_at_most_a_burst_and_ignores_what_is_not_a_number() {
        let rate = Rate {
            per_second: 10.0,
            burst: 3.0,
        };
        let start = Instant::now();
        let mut bucket = TokenBucket::new(rate, start);
        bucket.charge(f64::INFINITY, rate, start);
        bucket.charge(f64::NAN, rate, start);
        assert!(bucket.take(rate, start).is_ok());
        bucket.charge(1e9, rate, start);
        // 2 tokens left, minus at most a burst of 3: one token short.
        assert_eq!(bucket.take(rate, start), Err(200));
        let later = start + Duration::from_millis(200);
        assert!(bucket.take(rate, later).is_ok());
    }

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let rate = Rate {
            per_second: 10.0,
            burst: 3.0,
        };
        let start = Instant::now();
        let mut bucket = TokenBucket::new(rate, start);
        for _ in 0..3 {
            assert!(bucket.take(rate, start).is_ok());
        }
        let wait = bucket.take(rate, start).unwrap_err();
        assert!((90..=101).contains(&wait), "{wait}");
        assert!(bucket
            .take(rate, start + Duration::from_millis(100))
            .is_ok());
        assert!(bucket
            .take(rate, start + Duration::from_millis(100))
            .is_err());
    }

    #[test]
    fn one_request_per_key_per_interval_and_bounded_keys() {
        let spacing = Spacing::new(Duration::from_secs(10), 2);
        let start = Instant::now();
        assert!(spacing.allow("a", start).is_ok());
        let wait = spacing
            .allow("a", start + Duration::from_secs(4))
            .unwrap_err();
        assert_eq!(wait, 6000);
        assert!(spacing.allow("b", start).is_ok());
        // Two keys within the interval: a third waits for the first to age.
        let wait = spacing
            .allow("c", start + Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(wait, 9000);
        assert!(spacing.allow("c", start + Duration::from_secs(10)).is_ok());
        assert!(spacing.allow("a", start + Duration::from_secs(10)).is_ok());
    }
}

/// A token bucket per key, for at most `capacity` keys: a key seen when
/// the table is full is refused until old buckets fill up and go.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: Rate,
    capacity: usize,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Eq + Hash> KeyedBuckets<K> {
    /// `rate` per key, for `capacity` keys.
    pub fn new(rate: Rate, capacity: usize) -> Self {
        KeyedBuckets {
            rate,
            capacity,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `key`'s bucket: true if there was one.
    pub fn take(&self, key: K, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.capacity {
            // Full buckets hold nothing back: they go first.
            let rate = self.rate;
            buckets.retain(|_, bucket| !bucket.is_full(rate, now));
            if buckets.len() >= self.capacity {
                return false;
            }
        }
        buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(self.rate, now))
            .take(self.rate, now)
            .is_ok()
    }
}
