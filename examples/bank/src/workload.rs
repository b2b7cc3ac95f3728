//! The tellers: transfers drawn from the seed, sent to the transfers
//! service's front door, each retried with the same transfer id until it
//! is made or rejected, every attempt recorded.

use crate::config::Workload;
use crate::model::{account_name, Transfer, TransferError, TransferReply, TRANSFERS};
use pitfall::harness::client::{attempt, Answer, Op};
use pitfall::harness::history::History;
use pitfall::harness::rpc::{self, RpcClient};
use pitfall::harness::seed;
use rand::Rng;
use std::time::Duration;

/// How long a teller waits for the transfers service.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// One transfer a teller will make, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub teller: u32,
    pub at_ms: u64,
    pub transfer: Transfer,
}

/// The transfers of a run, spread over the first 80% of the chaos phase.
pub fn draw(seed_value: u64, w: &Workload, chaos_ms: u64) -> Vec<Planned> {
    let mut rng = seed::rng(seed_value, "workload");
    let span = (chaos_ms * 4 / 5).max(1);
    let mut planned: Vec<Planned> = (0..w.transfers)
        .map(|n| {
            let teller = rng.random_range(1..=w.tellers);
            let from = rng.random_range(0..w.accounts);
            // Never to itself: one of the other accounts.
            let to = (from + rng.random_range(1..w.accounts)) % w.accounts;
            Planned {
                teller,
                at_ms: rng.random_range(0..span),
                transfer: Transfer {
                    transfer_id: format!("t{n}"),
                    from: account_name(from),
                    to: account_name(to),
                    amount: rng.random_range(1..=w.max_amount),
                    request_id: format!("r{:08x}", rng.random::<u32>()),
                    user_id: format!("teller-{teller}"),
                },
            }
        })
        .collect();
    planned.sort_by_key(|p| (p.at_ms, p.teller));
    planned
}

/// A teller's client software.
pub async fn teller(
    process: String,
    planned: Vec<Planned>,
    attempts: u32,
    history: History,
    rpc: &dyn RpcClient,
) {
    let start = tokio::time::Instant::now();
    for p in planned {
        tokio::time::sleep_until(start + Duration::from_millis(p.at_ms)).await;
        let op = Op {
            process: process.clone(),
            op: "transfer".into(),
            request_id: p.transfer.request_id.clone(),
            value: serde_json::to_value(&p.transfer).expect("transfers serialize"),
        };
        attempt(&history, &op, attempts, || answer(rpc, &p.transfer)).await;
    }
}

async fn answer(rpc: &dyn RpcClient, t: &Transfer) -> Answer {
    match rpc::call::<_, TransferReply>(rpc, TRANSFERS, t, CALL_TIMEOUT).await {
        Ok(Ok(())) => Answer::Ok(None),
        Ok(Err(TransferError::Rejected(e))) => Answer::Rejected(e),
        Ok(Err(TransferError::Unavailable(e))) => Answer::Failed(e),
        Ok(Err(TransferError::Unknown(e))) => Answer::Unknown(e),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_seeded_sorted_and_never_to_the_same_account() {
        let w = Workload {
            tellers: 3,
            accounts: 4,
            initial_balance: 100,
            transfers: 50,
            max_amount: 10,
            attempts: 5,
            ledgers: 2,
        };
        let a = draw(9, &w, 10_000);
        assert_eq!(a, draw(9, &w, 10_000));
        assert_ne!(a, draw(10, &w, 10_000));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|p| p[0].at_ms <= p[1].at_ms));
        assert!(a.iter().all(|p| p.transfer.from != p.transfer.to));
        assert!(a.iter().all(|p| (1..=10).contains(&p.transfer.amount)));
    }
}
