//! Tables split into shards, each behind its own lock, so requests on different keys
//! rarely wait for each other. One hash places a key everywhere: the hold book and the
//! idempotency keys pick a shard with it, the SKU directory an Arbiter.

use std::hash::{BuildHasher, Hash};

use parking_lot::Mutex;

/// Shards of the hold book and of the idempotency keys: well above the core count, so two
/// threads rarely want the same lock.
pub const SHARD_COUNT: usize = 64;

/// Which of `count` places `key` belongs to (0 when `count` is 0). A fixed hash, so a key
/// lands in the same place on every run; foldhash, as the `IdMap`s use, because every hold
/// takes this twice and a restart two million times (std's SipHash was a tenth of a
/// restart's CPU). A client choosing idempotency keys that all land in one shard gains
/// only contention on that shard's lock: the map inside keeps std's seeded SipHash.
pub fn shard_of<K: Hash + ?Sized>(key: &K, count: usize) -> usize {
    let hash = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(key);
    let count = u64::try_from(count).unwrap_or(u64::MAX).max(1);
    usize::try_from(hash % count).unwrap_or(0)
}

/// `SHARD_COUNT` values of `T`, each behind its own lock.
pub struct Sharded<T> {
    shards: Box<[Mutex<T>]>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            shards: (0..SHARD_COUNT).map(|_| Mutex::default()).collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// The shard `key` belongs to.
    pub fn of<K: Hash + ?Sized>(&self, key: &K) -> &Mutex<T> {
        &self.shards[shard_of(key, self.shards.len())]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.shards.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_lands_in_the_same_shard_and_keys_spread() {
        assert_eq!(shard_of("A", 8), shard_of("A", 8));
        assert_eq!(shard_of("A", 0), 0);
        let used: std::collections::BTreeSet<usize> =
            (0..1_000).map(|n| shard_of(&n, SHARD_COUNT)).collect();
        assert_eq!(used.len(), SHARD_COUNT, "1,000 keys reach every shard");
    }
}
