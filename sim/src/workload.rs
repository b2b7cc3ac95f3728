//! The workload: orders drawn from the seed, and the simulated shoppers that
//! send them to the payments service over turmoil TCP — a payment, and for
//! some orders a refund soon after — retrying on failure and recording each
//! attempt's invoke and ok/fail/info in the history.

use crate::history::{Event, History};
use crate::scenario::{Payloads, Workload};
use crate::seed;
use crate::topology::{PAYMENTS, PAYMENTS_PORT};
use crate::wire::{self, CallError};
use pitfall_system::services::payments::{
    AttachmentSpec, PaymentError, PaymentRequest, PaymentsCall, RefundRequest,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One order a shopper will pay for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub shopper: u32,
    pub at_ms: u64,
    pub request: PaymentRequest,
    /// Refund it this long after the payment returned OK.
    pub refund: Option<Refund>,
}

/// A refund a shopper asks for after paying.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub after_ms: u64,
    pub request: RefundRequest,
}

pub fn product_name(i: u32) -> String {
    format!("product-{i}")
}

/// Draw the orders of a run: spread over the first 80% of the chaos phase,
/// each from a random shopper, for a random product and quantity; some
/// refunded soon after, some carrying an attachment.
pub fn draw_orders(
    seed_value: u64,
    w: &Workload,
    payloads: Option<&Payloads>,
    chaos_ms: u64,
) -> Vec<Order> {
    let mut rng = seed::rng(seed_value, "workload");
    let span = (chaos_ms * 4 / 5).max(1);
    let mut orders: Vec<Order> = (0..w.orders)
        .map(|n| {
            let shopper = rng.random_range(1..=w.shoppers);
            Order {
                shopper,
                at_ms: rng.random_range(0..span),
                request: PaymentRequest {
                    order_id: format!("o{n}"),
                    product: product_name(rng.random_range(0..w.products)),
                    qty: rng.random_range(1..=w.max_qty),
                    user_id: format!("u{shopper}"),
                    request_id: format!("r{:08x}", rng.random::<u32>()),
                    attachment: None,
                },
                refund: None,
            }
        })
        .collect();
    // Refunds come from their own sub-seed, so turning them on does not
    // reshuffle the orders.
    let mut refunds = seed::rng(seed_value, "workload/refunds");
    for order in &mut orders {
        if w.refunds > 0.0 && refunds.random_bool(w.refunds) {
            order.refund = Some(Refund {
                after_ms: refunds.random_range(0..1_500),
                request: RefundRequest {
                    order_id: order.request.order_id.clone(),
                    user_id: order.request.user_id.clone(),
                    request_id: format!("r{:08x}", refunds.random::<u32>()),
                },
            });
        }
    }
    // Attachments too: sizes log-uniform, so small ones are common and a
    // few reach past the broker's maximum message size.
    if let Some(p) = payloads {
        let mut draw = seed::rng(seed_value, "workload/attachments");
        let (lo, hi) = ((p.min_kib * 1024) as f64, (p.max_kib * 1024) as f64);
        for order in &mut orders {
            if p.share > 0.0 && draw.random_bool(p.share) {
                let size = (lo * (hi / lo).powf(draw.random::<f64>())) as u64;
                order.request.attachment = Some(AttachmentSpec {
                    size,
                    seed: draw.random(),
                });
            }
        }
    }
    orders.sort_by_key(|o| (o.at_ms, o.shopper));
    orders
}

/// The reply the payments RPC sends.
pub type PaymentReply = Result<(), PaymentError>;

/// How long a shopper waits for the payments service.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How a shopper reaches the payments service.
#[async_trait::async_trait]
pub trait Checkout {
    async fn call(&self, call: &PaymentsCall) -> Result<PaymentReply, CallError>;
}

/// The payments RPC over turmoil TCP.
pub struct TurmoilCheckout;

#[async_trait::async_trait]
impl Checkout for TurmoilCheckout {
    async fn call(&self, call: &PaymentsCall) -> Result<PaymentReply, CallError> {
        let addr = format!("{PAYMENTS}:{PAYMENTS_PORT}");
        let mut conn = wire::connect(&addr, CALL_TIMEOUT).await?;
        wire::call(&mut conn, call, CALL_TIMEOUT).await
    }
}

/// A shopper's client software: pay for its orders in time order, and
/// refund those it means to, retrying each call up to `attempts` times and
/// recording every attempt.
pub async fn shopper(
    process: String,
    orders: Vec<Order>,
    attempts: u32,
    history: History,
    checkout: impl Checkout,
) -> turmoil::Result {
    let start = tokio::time::Instant::now();
    for order in orders {
        tokio::time::sleep_until(start + Duration::from_millis(order.at_ms)).await;
        let paid = attempt(
            &process,
            &PaymentsCall::Pay(order.request),
            attempts,
            &history,
            &checkout,
        )
        .await;
        if let (true, Some(refund)) = (paid, order.refund) {
            tokio::time::sleep(Duration::from_millis(refund.after_ms)).await;
            attempt(
                &process,
                &PaymentsCall::Refund(refund.request),
                attempts,
                &history,
                &checkout,
            )
            .await;
        }
    }
    Ok(())
}

/// Make one call, retrying until it returns OK, is rejected, or runs out of
/// attempts. Whether it returned OK.
async fn attempt(
    process: &str,
    call: &PaymentsCall,
    attempts: u32,
    history: &History,
    checkout: &impl Checkout,
) -> bool {
    let op = call.op();
    let request_id = call.request_id().to_string();
    for attempt in 1..=attempts {
        let value = match call {
            PaymentsCall::Pay(r) => serde_json::to_value(r),
            PaymentsCall::Refund(r) => serde_json::to_value(r),
        };
        history.record(Event::Invoke {
            process: process.to_string(),
            op: op.into(),
            request_id: request_id.clone(),
            attempt,
            value: value.expect("request serializes"),
        });
        let fail = |error| Event::Fail {
            process: process.to_string(),
            op: op.into(),
            request_id: request_id.clone(),
            attempt,
            error,
        };
        let (ok, give_up, event) = match checkout.call(call).await {
            Ok(Ok(())) => (
                true,
                true,
                Event::Ok {
                    process: process.to_string(),
                    op: op.into(),
                    request_id: request_id.clone(),
                    attempt,
                },
            ),
            Ok(Err(PaymentError::Rejected(error))) => (false, true, fail(error)),
            Ok(Err(PaymentError::Unavailable(error))) | Err(CallError::NotSent(error)) => {
                (false, false, fail(error))
            }
            Ok(Err(PaymentError::Unknown(error))) | Err(CallError::NoReply(error)) => (
                false,
                false,
                Event::Info {
                    process: process.to_string(),
                    op: op.into(),
                    request_id: request_id.clone(),
                    attempt,
                    error,
                },
            ),
        };
        history.record(event);
        if give_up {
            return ok;
        }
        tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_seeded_and_sorted() {
        let w = Workload {
            shoppers: 3,
            products: 2,
            initial_stock: 10,
            orders: 20,
            max_qty: 3,
            attempts: 6,
            refunds: 0.0,
        };
        let a = draw_orders(5, &w, None, 10_000);
        assert_eq!(a, draw_orders(5, &w, None, 10_000));
        assert_ne!(a, draw_orders(6, &w, None, 10_000));
        assert_eq!(a.len(), 20);
        assert!(a.windows(2).all(|p| p[0].at_ms <= p[1].at_ms));
        assert!(a
            .iter()
            .all(|o| o.at_ms < 8_000 && (1..=3).contains(&o.request.qty)));
    }
}
