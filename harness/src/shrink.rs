//! Shrinking a failing seed's plan: search for a smaller [`Pinned`] plan
//! that still fails the same way. Fault windows are dropped by delta
//! debugging, then the workload is lowered, windows are shortened and moved
//! later, and per-request probabilities are lowered, round after round until
//! nothing more goes or the run budget is spent. The search only proposes
//! candidates; the caller runs each (one deterministic run) and says which
//! still fail, so candidates of a round can run in parallel.

use crate::plan_file::Pinned;

/// Runs candidates and says, for each, whether it still fails.
pub type Judge<'a> = dyn FnMut(&[Pinned]) -> Vec<bool> + 'a;

/// The search's outcome.
pub struct Shrunk {
    pub plan: Pinned,
    /// Candidates run.
    pub runs: usize,
}

/// Shrink `start` (which fails) with at most `max_runs` candidate runs.
pub fn shrink(start: Pinned, judge: &mut Judge<'_>, max_runs: usize) -> Shrunk {
    let mut search = Search {
        best: start,
        runs: 0,
        max_runs,
        judge,
    };
    loop {
        let before = search.best.clone();
        search.drop_windows();
        search.drop_items();
        search.lower_workload();
        search.narrow_windows();
        search.lower_probabilities();
        if search.best == before || search.runs >= search.max_runs {
            break;
        }
    }
    Shrunk {
        plan: search.best,
        runs: search.runs,
    }
}

struct Search<'a, 'b> {
    best: Pinned,
    runs: usize,
    max_runs: usize,
    judge: &'a mut Judge<'b>,
}

impl Search<'_, '_> {
    /// Run candidates within the budget; keep the first that still fails.
    fn try_first(&mut self, mut candidates: Vec<Pinned>) -> bool {
        candidates.truncate(self.max_runs.saturating_sub(self.runs));
        if candidates.is_empty() {
            return false;
        }
        self.runs += candidates.len();
        let verdicts = (self.judge)(&candidates);
        match candidates
            .into_iter()
            .zip(verdicts)
            .find(|(_, fails)| *fails)
        {
            Some((c, _)) => {
                self.best = c;
                true
            }
            None => false,
        }
    }

    /// Delta debugging over the windows: remove chunks, finer and finer.
    fn drop_windows(&mut self) {
        let mut chunks = 2;
        while !self.best.plan.windows.is_empty() && self.runs < self.max_runs {
            let n = self.best.plan.windows.len();
            let size = n.div_ceil(chunks.min(n));
            let candidates: Vec<Pinned> = (0..n)
                .step_by(size)
                .map(|from| {
                    let mut c = self.best.clone();
                    c.plan.windows.drain(from..(from + size).min(n));
                    c
                })
                .collect();
            if self.try_first(candidates) {
                chunks = (chunks - 1).max(2);
            } else if size == 1 {
                break;
            } else {
                chunks *= 2;
            }
        }
    }

    /// Delta debugging over each kind of workload item (the orders kept).
    fn drop_items(&mut self) {
        let kinds: Vec<String> = self.best.items.keys().cloned().collect();
        for kind in kinds {
            let mut chunks = 2;
            while self.best.items[&kind].len() > 1 && self.runs < self.max_runs {
                let n = self.best.items[&kind].len();
                let size = n.div_ceil(chunks.min(n));
                let candidates: Vec<Pinned> = (0..n)
                    .step_by(size)
                    .map(|from| {
                        let mut c = self.best.clone();
                        let list = c.items.get_mut(&kind).expect("a kind");
                        list.drain(from..(from + size).min(n));
                        c
                    })
                    .filter(|c| !c.items[&kind].is_empty())
                    .collect();
                if self.try_first(candidates) {
                    chunks = (chunks - 1).max(2);
                } else if size == 1 {
                    break;
                } else {
                    chunks *= 2;
                }
            }
        }
    }

    /// Each workload size down to 1, half, or one less, whichever is the
    /// smallest that still fails (sizes whose items are picked one by one
    /// stay: lowering them would change the draw).
    fn lower_workload(&mut self) {
        let names: Vec<String> = self
            .best
            .workload
            .keys()
            .filter(|k| !self.best.items.contains_key(*k))
            .cloned()
            .collect();
        for name in names {
            loop {
                let now = self.best.workload[&name];
                let mut sizes: Vec<u64> = vec![1, now / 2, now.saturating_sub(1)];
                sizes.retain(|s| *s >= 1 && *s < now);
                sizes.dedup();
                let candidates = sizes
                    .into_iter()
                    .map(|size| {
                        let mut c = self.best.clone();
                        c.workload.insert(name.clone(), size);
                        c
                    })
                    .collect();
                if !self.try_first(candidates) {
                    break;
                }
            }
        }
    }

    /// Each window half as long: its first half, or its second (a later
    /// start).
    fn narrow_windows(&mut self) {
        for i in 0..self.best.plan.windows.len() {
            loop {
                let w = &self.best.plan.windows[i];
                let half = (w.end_ms - w.start_ms) / 2;
                if half < 10 {
                    break;
                }
                let (start_ms, end_ms) = (w.start_ms, w.end_ms);
                let candidates = [(start_ms, start_ms + half), (start_ms + half, end_ms)]
                    .into_iter()
                    .map(|(s, e)| {
                        let mut c = self.best.clone();
                        c.plan.windows[i].start_ms = s;
                        c.plan.windows[i].end_ms = e;
                        c.plan.windows.sort_by_key(|w| w.start_ms);
                        c
                    })
                    .collect();
                if !self.try_first(candidates) {
                    break;
                }
            }
        }
    }

    /// Per-request probabilities (duplicates, reorders, lost acks) halved.
    fn lower_probabilities(&mut self) {
        for i in 0..self.best.plan.windows.len() {
            while let Some(p) = self.best.plan.windows[i].probability {
                if p < 0.02 {
                    break;
                }
                let mut c = self.best.clone();
                c.plan.windows[i].probability = Some((p / 2.0 * 100.0).round() / 100.0);
                if !self.try_first(vec![c]) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{DrawnConfig, FaultKind, FaultPlan, FaultWindow};
    use std::collections::BTreeMap;

    fn window(target: &str, start_ms: u64, end_ms: u64) -> FaultWindow {
        FaultWindow {
            fault: "broker-outage".into(),
            kind: FaultKind::BrokerOutage,
            target: target.into(),
            start_ms,
            end_ms,
            probability: None,
            blackhole: false,
            delay_ms: None,
            grace_ms: None,
        }
    }

    fn plan(windows: Vec<FaultWindow>, orders: u64) -> Pinned {
        Pinned {
            config: DrawnConfig {
                enabled: vec!["broker-outage".into()],
                disabled: vec![],
                latency_ms: (1, 5),
            },
            plan: FaultPlan { windows },
            workload: BTreeMap::from([("orders".to_string(), orders)]),
            items: BTreeMap::new(),
        }
    }

    /// Fails when an outage of `key` covers 5000 ms and there are at least
    /// 3 orders: the minimal plan is that one window, narrowed around 5000,
    /// with 3 orders.
    fn fails(p: &Pinned) -> bool {
        p.workload["orders"] >= 3
            && p.plan
                .windows
                .iter()
                .any(|w| w.target == "key" && w.start_ms <= 5000 && 5000 < w.end_ms)
    }

    #[test]
    fn shrinking_keeps_the_window_that_matters_and_the_orders_it_needs() {
        let mut windows: Vec<FaultWindow> = (0..12)
            .map(|i| window(&format!("noise-{i}"), i * 1000, i * 1000 + 800))
            .collect();
        windows.push(window("key", 4000, 9000));
        windows.sort_by_key(|w| w.start_ms);
        let start = plan(windows, 40);
        assert!(fails(&start));
        let mut judged = 0;
        let mut judge = |cs: &[Pinned]| {
            judged += cs.len();
            cs.iter().map(fails).collect()
        };
        let shrunk = shrink(start, &mut judge, 500);
        assert_eq!(shrunk.runs, judged);
        assert!(fails(&shrunk.plan));
        assert_eq!(shrunk.plan.plan.windows.len(), 1);
        let w = &shrunk.plan.plan.windows[0];
        assert_eq!(w.target, "key");
        assert!(w.end_ms - w.start_ms < 20, "narrowed to {w:?}");
        assert_eq!(shrunk.plan.workload["orders"], 3);
    }

    #[test]
    fn the_budget_bounds_the_runs() {
        let windows = (0..30)
            .map(|i| window("key", i * 100, i * 100 + 5050))
            .collect();
        let mut judge = |cs: &[Pinned]| cs.iter().map(fails).collect();
        let shrunk = shrink(plan(windows, 40), &mut judge, 7);
        assert!(shrunk.runs <= 7);
        assert!(fails(&shrunk.plan));
    }
}
