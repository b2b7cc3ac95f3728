//! converges (liveness): after the faults heal, the system drains within the
//! scenario's bounded simulated time.

use crate::history::{Entry, Event};

pub fn check(history: &[Entry]) -> Vec<(String, Vec<usize>)> {
    let drain = history
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, e)| match &e.event {
            Event::Drain { converged, pending } => Some((i, *converged, pending)),
            _ => None,
        });
    match drain {
        None => vec![(
            "the history has no drain record: the run did not finish".into(),
            vec![],
        )],
        Some((_, true, _)) => vec![],
        Some((i, false, pending)) => vec![(
            format!(
                "did not converge after the faults healed: {}",
                pending.join("; ")
            ),
            vec![i],
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::history::{Entry, Event};

    fn drain(t: u64, converged: bool, pending: &[&str]) -> Entry {
        Entry {
            t,
            event: Event::Drain {
                converged,
                pending: pending.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    #[test]
    fn holds_after_a_converged_drain() {
        assert!(check(&[drain(100, true, &[])]).is_empty());
    }

    #[test]
    fn catches_a_drain_that_left_work_pending_or_never_happened() {
        let v = check(&[drain(100, false, &["worker lag 3 on events/1"])]);
        assert_eq!(v.len(), 1);
        assert!(v[0].0.ends_with("worker lag 3 on events/1"), "{}", v[0].0);
        assert_eq!(check(&[]).len(), 1);
    }
}
