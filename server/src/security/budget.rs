//! Budgets of work per key (a client address, an account): token buckets kept in memory, bounded in
//! the number of keys they remember, so that nobody can make the server do — or remember — without
//! end. Keys beyond the bound share one bucket: a flood of ever-new keys exhausts only that one.
//! Beside them, occupancy: places held at once per key (open streams, running exports).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a budget fills: `burst` units at most, one more every `refill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub refill: Duration,
}

impl Rate {
    /// `per_second` units a second, `burst_secs` seconds of them at once.
    pub fn per_second(per_second: u32, burst_secs: u32) -> Rate {
        let per_second = per_second.max(1);
        Rate { burst: per_second.saturating_mul(burst_secs.max(1)), refill: Duration::from_secs(1) / per_second }
    }

    /// `burst` units, refilled evenly over a minute.
    pub fn per_minute(burst: u32) -> Rate {
        let burst = burst.max(1);
        Rate { burst, refill: Duration::from_secs(60) / burst }
    }
}

/// Keys remembered at most; others share the overflow bucket.
const MAX_KEYS: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A budget per key.
#[derive(Clone)]
pub struct Budget {
    rate: Rate,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    buckets: HashMap<String, Bucket>,
    /// When full buckets were last forgotten (at most once a second: it walks every key).
    pruned_at: Option<Instant>,
}

/// The key of the bucket shared by keys beyond [`MAX_KEYS`].
const OVERFLOW: &str = "\u{0}overflow";

/// The bucket `key` spends from: its own, or the shared one once [`MAX_KEYS`] are remembered.
fn bucket_of<'a>(buckets: &HashMap<String, Bucket>, key: &'a str) -> &'a str {
    if buckets.contains_key(key) || buckets.len() < MAX_KEYS { key } else { OVERFLOW }
}

impl Budget {
    /// A budget filling at `rate`.
    pub fn new(rate: Rate) -> Budget {
        Budget { rate, inner: Arc::new(Mutex::new(Inner { buckets: HashMap::new(), pruned_at: None })) }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let gained = now.saturating_duration_since(bucket.at).as_secs_f64() / self.rate.refill.as_secs_f64();
        Bucket { tokens: (bucket.tokens + gained).min(f64::from(self.rate.burst)), at: now }
    }

    /// Spends one unit of `key`'s budget: `Ok` when there was one, else how long until there is.
    pub fn spend(&self, key: &str) -> Result<(), Duration> {
        self.spend_at(key, Instant::now())
    }

    fn spend_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.buckets.contains_key(key)
            && inner.buckets.len() >= MAX_KEYS
            && inner.pruned_at.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1))
        {
            // Forget the buckets that are full again (they hold nothing a fresh one would not).
            let burst = f64::from(self.rate.burst);
            inner.buckets.retain(|_, b| self.refilled(*b, now).tokens < burst);
            inner.pruned_at = Some(now);
        }
        let key = bucket_of(&inner.buckets, key);
        let buckets = &mut inner.buckets;
        let full = Bucket { tokens: f64::from(self.rate.burst), at: now };
        let bucket = buckets.get(key).map_or(full, |b| self.refilled(*b, now));
        let (bucket, outcome) = if bucket.tokens >= 1.0 {
            (Bucket { tokens: bucket.tokens - 1.0, ..bucket }, Ok(()))
        } else {
            (bucket, Err(self.rate.refill.mul_f64(1.0 - bucket.tokens)))
        };
        buckets.insert(key.to_owned(), bucket);
        outcome
    }

    /// Gives back one unit spent by `key` for work that turned out not to count (a reservation).
    pub fn refund(&self, key: &str) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = bucket_of(&inner.buckets, key).to_owned();
        if let Some(b) = inner.buckets.get(&key).copied() {
            let b = self.refilled(b, now);
            inner.buckets.insert(key, Bucket { tokens: (b.tokens + 1.0).min(f64::from(self.rate.burst)), ..b });
        }
    }
}

/// Places held per key (streams per caller, exports per user): a count per key, taken under a rule
/// and given back when the place is dropped, however the work that held it ends.
pub struct Occupancy<K>(Arc<Mutex<HashMap<K, usize>>>);

impl<K> Clone for Occupancy<K> {
    fn clone(&self) -> Self {
        Occupancy(self.0.clone())
    }
}

impl<K> Default for Occupancy<K> {
    fn default() -> Self {
        Occupancy(Arc::default())
    }
}

/// One place of an [`Occupancy`].
pub struct Place<K: Eq + std::hash::Hash> {
    occupancy: Occupancy<K>,
    key: K,
}

impl<K: Eq + std::hash::Hash + Clone> Occupancy<K> {
    /// A place for `key` if `admit` allows one given the places `key` holds and those held in all.
    pub fn take<E>(&self, key: K, admit: impl FnOnce(usize, usize) -> Result<(), E>) -> Result<Place<K>, E> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        admit(held.get(&key).copied().unwrap_or(0), held.values().sum())?;
        *held.entry(key.clone()).or_default() += 1;
        Ok(Place { occupancy: self.clone(), key })
    }
}

impl<K: Eq + std::hash::Hash> Drop for Place<K> {
    fn drop(&mut self) {
        let mut held = self.occupancy.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_spends_its_burst_then_waits_for_the_refill() {
        let budget = Budget::new(Rate { burst: 3, refill: Duration::from_secs(2) });
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.spend_at("a", t), Ok(()));
        }
        let wait = budget.spend_at("a", t).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        assert!(budget.spend_at("b", t).is_ok(), "another key has its own budget");
        assert!(budget.spend_at("a", t + Duration::from_secs(2)).is_ok(), "one unit back after the refill");
        assert!(budget.spend_at("a", t + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn a_place_is_given_back_when_dropped() {
        let occupancy: Occupancy<&str> = Occupancy::default();
        let admit = |mine: usize, all: usize| if mine < 2 && all < 3 { Ok(()) } else { Err((mine, all)) };
        let a1 = occupancy.take("a", admit).unwrap();
        let _a2 = occupancy.take("a", admit).unwrap();
        assert_eq!(occupancy.take("a", admit).err(), Some((2, 2)));
        let _b = occupancy.take("b", admit).unwrap();
        assert_eq!(occupancy.take("c", admit).err(), Some((0, 3)));
        drop(a1);
        assert!(occupancy.take("c", admit).is_ok());
    }

    #[test]
    fn keys_beyond_the_bound_share_one_bucket() {
        let budget = Budget::new(Rate { burst: 1, refill: Duration::from_secs(3600) });
        let t = Instant::now();
        for i in 0..MAX_KEYS {
            assert!(budget.spend_at(&i.to_string(), t).is_ok());
        }
        assert!(budget.spend_at("new-1", t).is_ok(), "the overflow bucket has its burst");
        assert!(budget.spend_at("new-2", t).is_err(), "ever-new keys share it");
        assert_eq!(budget.inner.lock().unwrap().buckets.len(), MAX_KEYS + 1);
    }
}
