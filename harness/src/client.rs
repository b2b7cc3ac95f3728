//! What a client records: each attempt of an operation as an invoke and its
//! outcome (ok, fail, or info when the outcome is unknown), retried as a
//! careful client would. Checkers read these to know what a user was told.

use crate::history::{Event, History};
use crate::rpc::CallError;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// What one attempt of an operation came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// It happened; a read says what it returned.
    Ok(Option<Value>),
    /// It will never happen: do not retry.
    Rejected(String),
    /// It did not happen: retry.
    Failed(String),
    /// It may or may not have happened: retry.
    Unknown(String),
}

impl From<CallError> for Answer {
    fn from(e: CallError) -> Answer {
        match e {
            CallError::NotSent(e) => Answer::Failed(e),
            CallError::NoReply(e) => Answer::Unknown(e),
        }
    }
}

/// An operation as the history shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The client host.
    pub process: String,
    /// The operation's name, for example `pay`.
    pub op: String,
    /// The end-user request id the operation carries.
    pub request_id: String,
    /// The request, as the invoke records it.
    pub value: Value,
}

/// Pause before retry number `attempt` (1-based): 250 ms more each time.
pub fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(250 * u64::from(attempt))
}

/// Make one operation, retrying until it returns OK, is rejected, or runs out
/// of `attempts`; every attempt's invoke and outcome is recorded. Whether it
/// returned OK.
pub async fn attempt<F, Fut>(history: &History, op: &Op, attempts: u32, mut send: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Answer>,
{
    for attempt in 1..=attempts {
        history.record(Event::Invoke {
            process: op.process.clone(),
            op: op.op.clone(),
            request_id: op.request_id.clone(),
            attempt,
            value: op.value.clone(),
        });
        let answer = send().await;
        let (ok, give_up) = match &answer {
            Answer::Ok(_) => (true, true),
            Answer::Rejected(_) => (false, true),
            Answer::Failed(_) | Answer::Unknown(_) => (false, false),
        };
        history.record(outcome(op, attempt, answer));
        if give_up {
            return ok;
        }
        tokio::time::sleep(retry_pause(attempt)).await;
    }
    false
}

fn outcome(op: &Op, attempt: u32, answer: Answer) -> Event {
    let (process, name, request_id) = (op.process.clone(), op.op.clone(), op.request_id.clone());
    match answer {
        Answer::Ok(value) => Event::Ok {
            process,
            op: name,
            request_id,
            attempt,
            value,
        },
        Answer::Rejected(error) | Answer::Failed(error) => Event::Fail {
            process,
            op: name,
            request_id,
            attempt,
            error,
        },
        Answer::Unknown(error) => Event::Info {
            process,
            op: name,
            request_id,
            attempt,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> Op {
        Op {
            process: "client-1".into(),
            op: "pay".into(),
            request_id: "r1".into(),
            value: serde_json::json!({"amount": 3}),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_ok_and_records_every_attempt() {
        let history = History::new();
        let mut answers = vec![
            Answer::Ok(None),
            Answer::Unknown("timed out".into()),
            Answer::Failed("down".into()),
        ];
        let ok = attempt(&history, &op(), 5, || {
            let a = answers.pop().unwrap();
            async move { a }
        })
        .await;
        assert!(ok);
        let kinds: Vec<&str> = history
            .entries()
            .iter()
            .map(|e| match &e.event {
                Event::Invoke { .. } => "invoke",
                Event::Fail { .. } => "fail",
                Event::Info { .. } => "info",
                Event::Ok { .. } => "ok",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["invoke", "fail", "invoke", "info", "invoke", "ok"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejection_is_final_and_attempts_run_out() {
        let history = History::new();
        let rejected = attempt(&history, &op(), 5, || async {
            Answer::Rejected("not enough".into())
        })
        .await;
        assert!(!rejected);
        assert_eq!(history.len(), 2);
        let history = History::new();
        let failed = attempt(&history, &op(), 3, || async {
            Answer::Failed("down".into())
        })
        .await;
        assert!(!failed);
        assert_eq!(history.len(), 6);
    }
}
