//! Maps and sets with a fixed hasher (rustc-hash's Fx), for lookups on
//! long histories only: nothing may iterate one into a finding or any other
//! output (whatever reaches output goes through a sorted collection), so
//! the determinism rule against hashed iteration still holds. [`sorted`]
//! is that sorted collection for a map built by hash.

use std::collections::BTreeMap;

/// A lookup-only map with a fixed hasher.
#[allow(clippy::disallowed_types)]
pub type LookupMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// A lookup-only set with a fixed hasher.
#[allow(clippy::disallowed_types)]
pub type LookupSet<K> = std::collections::HashSet<K, rustc_hash::FxBuildHasher>;

/// The entries of a map built by hash, in a sorted map. A checker that
/// groups a million rows by key builds the groups by hash (one lookup a
/// row, where a tree compares the key with a stored string at every level,
/// each comparison a call and a likely cache miss) and sorts the keys once.
pub fn sorted<K: Ord, V>(map: LookupMap<K, V>) -> BTreeMap<K, V> {
    map.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_holds_every_entry_in_key_order() {
        let mut map: LookupMap<String, usize> = LookupMap::default();
        for (i, k) in ["o9", "o10", "a", "o1", "o10"].into_iter().enumerate() {
            *map.entry(k.to_string()).or_default() += i;
        }
        let sorted: Vec<(String, usize)> = sorted(map).into_iter().collect();
        let expected = [("a", 2), ("o1", 3), ("o10", 5), ("o9", 0)];
        assert_eq!(sorted, expected.map(|(k, v)| (k.to_string(), v)).to_vec());
    }
}
