//! The workload: orders drawn from the seed, and the shoppers that send
//! them to the services' front doors — when the orders service runs, first
//! "place order" and a read of it straight after; then a payment, and for
//! some orders a refund soon after — retrying on failure and recording each
//! attempt's invoke and ok/fail/info (with what a read returned) in the
//! history.

use crate::config::{Payloads, Workload};
use crate::services::orders::{GetOrder, OrdersCall, OrdersError, OrdersReply, PlaceOrder};
use crate::services::payments::{
    AttachmentSpec, PaymentError, PaymentRequest, PaymentsCall, RefundRequest,
};
use crate::topology::{ORDERS, PAYMENTS};
use pitfall_harness::client::{attempt, Answer, Op};
use pitfall_harness::history::History;
use pitfall_harness::rpc::{self, RpcClient};
use pitfall_harness::seed;
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

/// How long a shopper waits for a service.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

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
    rpc: &dyn RpcClient,
) {
    let start = tokio::time::Instant::now();
    for order in orders {
        tokio::time::sleep_until(start + Duration::from_millis(order.at_ms)).await;
        if place_orders {
            let place = OrdersCall::Place(order.place.clone());
            let placed = attempt(&history, &orders_op(&process, &place), attempts, || {
                orders_answer(rpc, &place)
            })
            .await;
            if !placed {
                continue;
            }
            let read = OrdersCall::Get(GetOrder {
                order_id: order.place.order_id.clone(),
                user_id: order.place.user_id.clone(),
                request_id: format!("{}-read", order.place.request_id),
            });
            attempt(&history, &orders_op(&process, &read), 1, || {
                orders_answer(rpc, &read)
            })
            .await;
        }
        let pay = PaymentsCall::Pay(order.request);
        let paid = attempt(&history, &payments_op(&process, &pay), attempts, || {
            payments_answer(rpc, &pay)
        })
        .await;
        if let (true, Some(refund)) = (paid, order.refund) {
            tokio::time::sleep(Duration::from_millis(refund.after_ms)).await;
            let refund = PaymentsCall::Refund(refund.request);
            attempt(&history, &payments_op(&process, &refund), attempts, || {
                payments_answer(rpc, &refund)
            })
            .await;
        }
    }
}

async fn payments_answer(rpc: &dyn RpcClient, call: &PaymentsCall) -> Answer {
    match rpc::call::<_, PaymentReply>(rpc, PAYMENTS, call, CALL_TIMEOUT).await {
        Ok(Ok(())) => Answer::Ok(None),
        Ok(Err(PaymentError::Rejected(e))) => Answer::Rejected(e),
        Ok(Err(PaymentError::Unavailable(e))) => Answer::Failed(e),
        Ok(Err(PaymentError::Unknown(e))) => Answer::Unknown(e),
        Err(e) => e.into(),
    }
}

async fn orders_answer(rpc: &dyn RpcClient, call: &OrdersCall) -> Answer {
    match rpc::call::<_, OrdersReply>(rpc, ORDERS, call, CALL_TIMEOUT).await {
        Ok(Ok(state)) => Answer::Ok(match call {
            OrdersCall::Get(_) => Some(serde_json::to_value(state).expect("state serializes")),
            OrdersCall::Place(_) => None,
        }),
        Ok(Err(OrdersError::Unavailable(e))) => Answer::Failed(e),
        Ok(Err(OrdersError::Unknown(e))) => Answer::Unknown(e),
        Err(e) => e.into(),
    }
}

fn payments_op(process: &str, call: &PaymentsCall) -> Op {
    Op {
        process: process.to_string(),
        op: call.op().into(),
        request_id: call.request_id().into(),
        value: match call {
            PaymentsCall::Pay(r) => serde_json::to_value(r),
            PaymentsCall::Refund(r) => serde_json::to_value(r),
        }
        .expect("requests serialize"),
    }
}

fn orders_op(process: &str, call: &OrdersCall) -> Op {
    Op {
        process: process.to_string(),
        op: call.op().into(),
        request_id: call.request_id().into(),
        value: match call {
            OrdersCall::Place(r) => serde_json::to_value(r),
            OrdersCall::Get(r) => serde_json::to_value(r),
        }
        .expect("requests serialize"),
    }
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
            inventory_consumers: 2,
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
