//! Maps and sets with a fixed hasher (rustc-hash's Fx), for lookups on
//! long histories only: nothing may iterate one into a finding or any other
//! output (whatever reaches output goes through a sorted collection), so
//! the determinism rule against hashed iteration still holds.

/// A lookup-only map with a fixed hasher.
#[allow(clippy::disallowed_types)]
pub type LookupMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// A lookup-only set with a fixed hasher.
#[allow(clippy::disallowed_types)]
pub type LookupSet<K> = std::collections::HashSet<K, rustc_hash::FxBuildHasher>;
