//! Seeds. A run has one `u64` seed; every random choice draws from a sub-seed
//! derived from it and a domain name ("workload", "faults/db-outage",
//! "host/api/0", …). Adding a domain never reshuffles the others.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator used everywhere in the simulation. ChaCha8 is portable and
/// stable across `rand` releases, so a seed keeps meaning the same run.
pub type SimRng = ChaCha8Rng;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a: a stable hash of the domain name (std's hasher is not stable
/// across releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The sub-seed for `domain` under `seed`.
pub fn sub_seed(seed: u64, domain: &str) -> u64 {
    splitmix64(splitmix64(seed) ^ fnv1a(domain))
}

/// A generator for `domain` under `seed`.
pub fn rng(seed: u64, domain: &str) -> SimRng {
    SimRng::seed_from_u64(sub_seed(seed, domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn domains_are_independent_and_stable() {
        assert_ne!(sub_seed(1, "workload"), sub_seed(1, "faults"));
        assert_ne!(sub_seed(1, "workload"), sub_seed(2, "workload"));
        let a: u64 = rng(7, "faults/db-outage").random();
        let b: u64 = rng(7, "faults/db-outage").random();
        assert_eq!(a, b);
    }
}
