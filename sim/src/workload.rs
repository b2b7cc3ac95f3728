//! The workload: orders drawn from the seed, and the simulated shoppers that
//! send them over turmoil TCP — when the orders service runs, first "place
//! order" and a read of it straight after; then a payment, and for some
//! orders a refund soon after — retrying on failure and recording each
//! attempt's invoke and ok/fail/info (with what a read returned) in the
//! history.

use crate::history::{Event, History};
use crate::scenario::{Payloads, Workload};
use crate::seed;
use crate::topology::{ORDERS, ORDERS_PORT, PAYMENTS, PAYMENTS_PORT};
use crate::wire::{self, CallError};
use pitfall_system::services::orders::{
    GetOrder, OrdersCall, OrdersError, OrdersReply, PlaceOrder,
};
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
    /// Placing the order with the orders service, when it runs (pitfall 2).
    pub place: PlaceOrder,
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
    // Placement request ids come from their own sub-seed, so adding them
    // did not reshuffle the orders.
    let mut places = seed::rng(seed_value, "workload/orders");
    let span = (chaos_ms * 4 / 5).max(1);
    let mut orders: Vec<Order> = (0..w.orders)
        .map(|n| {
            let shopper = rng.random_range(1..=w.shoppers);
            let at_ms = rng.random_range(0..span);
            let request = PaymentRequest {
                order_id: format!("o{n}"),
                product: product_name(rng.random_range(0..w.products)),
                qty: rng.random_range(1..=w.max_qty),
                user_id: format!("u{shopper}"),
                request_id: format!("r{:08x}", rng.random::<u32>()),
                attachment: None,
            };
            let place = PlaceOrder {
                order_id: request.order_id.clone(),
                product: request.product.clone(),
                qty: request.qty,
                user_id: request.user_id.clone(),
                request_id: format!("r{:08x}", places.random::<u32>()),
            };
            Order {
                shopper,
                at_ms,
                request,
                refund: None,
                place,
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

/// How a shopper reaches the services.
#[async_trait::async_trait]
pub trait Checkout {
    async fn call(&self, call: &PaymentsCall) -> Result<PaymentReply, CallError>;
    async fn orders(&self, call: &OrdersCall) -> Result<OrdersReply, CallError>;
}

/// The RPCs over turmoil TCP.
pub struct TurmoilCheckout;

#[async_trait::async_trait]
impl Checkout for TurmoilCheckout {
    async fn call(&self, call: &PaymentsCall) -> Result<PaymentReply, CallError> {
        let addr = format!("{PAYMENTS}:{PAYMENTS_PORT}");
        let mut conn = wire::connect(&addr, CALL_TIMEOUT).await?;
        wire::call(&mut conn, call, CALL_TIMEOUT).await
    }

    async fn orders(&self, call: &OrdersCall) -> Result<OrdersReply, CallError> {
        let addr = format!("{ORDERS}:{ORDERS_PORT}");
        let mut conn = wire::connect(&addr, CALL_TIMEOUT).await?;
        wire::call(&mut conn, call, CALL_TIMEOUT).await
    }
}

/// What one attempt of a call came to.
enum Answer {
    /// It happened; a read says what it returned.
    Ok(Option<serde_json::Value>),
    /// It will never happen: do not retry.
    Rejected(String),
    /// It did not happen: retry.
    Failed(String),
    /// It may or may not have happened: retry.
    Unknown(String),
}

/// A shopper's client software: for each order in time order, place it and
/// read it back (when `place_orders`), pay, and refund those it means to;
/// each call retried up to `attempts` times (a read is tried once) and every
/// attempt recorded.
pub async fn shopper(
    process: String,
    orders: Vec<Order>,
    attempts: u32,
    place_orders: bool,
    history: History,
    checkout: impl Checkout,
) -> turmoil::Result {
    let start = tokio::time::Instant::now();
    let checkout = &checkout;
    for order in orders {
        tokio::time::sleep_until(start + Duration::from_millis(order.at_ms)).await;
        if place_orders {
            let place = OrdersCall::Place(order.place.clone());
            if !attempt(&process, &place, attempts, &history, || {
                orders_answer(checkout, &place)
            })
            .await
            {
                continue;
            }
            let read = OrdersCall::Get(GetOrder {
                order_id: order.place.order_id.clone(),
                user_id: order.place.user_id.clone(),
                request_id: format!("{}-read", order.place.request_id),
            });
            attempt(&process, &read, 1, &history, || {
                orders_answer(checkout, &read)
            })
            .await;
        }
        let pay = PaymentsCall::Pay(order.request);
        let paid = attempt(&process, &pay, attempts, &history, || {
            payments_answer(checkout, &pay)
        })
        .await;
        if let (true, Some(refund)) = (paid, order.refund) {
            tokio::time::sleep(Duration::from_millis(refund.after_ms)).await;
            let refund = PaymentsCall::Refund(refund.request);
            attempt(&process, &refund, attempts, &history, || {
                payments_answer(checkout, &refund)
            })
            .await;
        }
    }
    Ok(())
}

async fn payments_answer(checkout: &impl Checkout, call: &PaymentsCall) -> Answer {
    match checkout.call(call).await {
        Ok(Ok(())) => Answer::Ok(None),
        Ok(Err(PaymentError::Rejected(e))) => Answer::Rejected(e),
        Ok(Err(PaymentError::Unavailable(e))) | Err(CallError::NotSent(e)) => Answer::Failed(e),
        Ok(Err(PaymentError::Unknown(e))) | Err(CallError::NoReply(e)) => Answer::Unknown(e),
    }
}

async fn orders_answer(checkout: &impl Checkout, call: &OrdersCall) -> Answer {
    match checkout.orders(call).await {
        Ok(Ok(state)) => Answer::Ok(match call {
            OrdersCall::Get(_) => Some(serde_json::to_value(state).expect("state serializes")),
            OrdersCall::Place(_) => None,
        }),
        Ok(Err(OrdersError::Unavailable(e))) | Err(CallError::NotSent(e)) => Answer::Failed(e),
        Ok(Err(OrdersError::Unknown(e))) | Err(CallError::NoReply(e)) => Answer::Unknown(e),
    }
}

/// A call as the history shows it.
trait Op {
    fn op(&self) -> &'static str;
    fn request_id(&self) -> &str;
    fn value(&self) -> serde_json::Value;
}

impl Op for PaymentsCall {
    fn op(&self) -> &'static str {
        PaymentsCall::op(self)
    }
    fn request_id(&self) -> &str {
        PaymentsCall::request_id(self)
    }
    fn value(&self) -> serde_json::Value {
        match self {
            PaymentsCall::Pay(r) => serde_json::to_value(r),
            PaymentsCall::Refund(r) => serde_json::to_value(r),
        }
        .expect("request serializes")
    }
}

impl Op for OrdersCall {
    fn op(&self) -> &'static str {
        OrdersCall::op(self)
    }
    fn request_id(&self) -> &str {
        OrdersCall::request_id(self)
    }
    fn value(&self) -> serde_json::Value {
        match self {
            OrdersCall::Place(r) => serde_json::to_value(r),
            OrdersCall::Get(r) => serde_json::to_value(r),
        }
        .expect("request serializes")
    }
}

/// Make one call, retrying until it returns OK, is rejected, or runs out of
/// attempts. Whether it returned OK.
async fn attempt<F, Fut>(
    process: &str,
    call: &impl Op,
    attempts: u32,
    history: &History,
    mut send: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let op = call.op();
    let request_id = call.request_id().to_string();
    for attempt in 1..=attempts {
        history.record(Event::Invoke {
            process: process.to_string(),
            op: op.into(),
            request_id: request_id.clone(),
            attempt,
            value: call.value(),
        });
        let fail = |error| Event::Fail {
            process: process.to_string(),
            op: op.into(),
            request_id: request_id.clone(),
            attempt,
            error,
        };
        let (ok, give_up, event) = match send().await {
            Answer::Ok(value) => (
                true,
                true,
                Event::Ok {
                    process: process.to_string(),
                    op: op.into(),
                    request_id: request_id.clone(),
                    attempt,
                    value,
                },
            ),
            Answer::Rejected(error) => (false, true, fail(error)),
            Answer::Failed(error) => (false, false, fail(error)),
            Answer::Unknown(error) => (
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
