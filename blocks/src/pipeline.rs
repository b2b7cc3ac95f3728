//! Sending several records at once without breaking per-key order: a batch
//! is split into rounds of at most `width` records with distinct keys. The
//! records of one round are in flight together, so retries and the broker's
//! reorder fault can swap records of different keys; a key's next record
//! waits for the next round, after its previous one was acknowledged.

use std::collections::BTreeSet;

/// `items` in order, cut into rounds of at most `width` (at least 1) items
/// whose `key`s are distinct within the round.
pub fn rounds<T>(items: &[T], width: usize, key: impl Fn(&T) -> &str) -> Vec<Vec<&T>> {
    let width = width.max(1);
    let mut rounds: Vec<Vec<&T>> = Vec::new();
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for item in items {
        let k = key(item);
        let full = rounds.last().is_none_or(|r| r.len() >= width);
        if full || keys.contains(k) {
            rounds.push(Vec::new());
            keys.clear();
        }
        keys.insert(k);
        rounds
            .last_mut()
            .expect("a round was just opened")
            .push(item);
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(items: &[&'static str], width: usize) -> Vec<Vec<&'static str>> {
        rounds(items, width, |s| &s[..1])
            .into_iter()
            .map(|r| r.into_iter().copied().collect())
            .collect()
    }

    #[test]
    fn a_key_waits_for_the_next_round() {
        assert_eq!(
            cut(&["a1", "b1", "a2", "c1", "b2"], 5),
            vec![vec!["a1", "b1"], vec!["a2", "c1", "b2"]]
        );
    }

    #[test]
    fn rounds_are_at_most_width_and_keep_the_order() {
        assert_eq!(
            cut(&["a1", "b1", "c1", "d1"], 3),
            vec![vec!["a1", "b1", "c1"], vec!["d1"]]
        );
        assert_eq!(cut(&["a1", "b1"], 0), vec![vec!["a1"], vec!["b1"]]);
        assert!(cut(&[], 4).is_empty());
    }
}
