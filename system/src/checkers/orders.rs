//! Pitfall 2's invariants over the orders service and its order-status view:
//!
//! - **read-after-write**: once a shopper got OK for placing an order, every
//!   read of that order invoked afterwards shows it placed;
//! - **view-convergence**: after a converged drain, the orders service's
//!   truth agrees with the upstream truths (payments, inventory effects,
//!   refunds), the `order_view` projection shows exactly that truth, and
//!   (event-sourced) every order's final snapshot plus the events after it
//!   replays to it;
//! - **snapshot-consistency** (event-sourced): every snapshot written equals
//!   the fold of the events it claims to cover, all committed by then.
//!
//! The orders service's truth is its own store: the last `orders` row under
//! `crud-cdc`, the fold of the order's `order_events` under `event-sourced`.
//! Every checker is silent unless the run's `orders` variant names a model.
//! Rows that do not parse are skipped.

use super::state::{rows, Written};
use crate::events::PaymentCompleted;
use crate::schema::{
    EffectRow, RefundRow, EFFECTS, ORDERS, ORDER_EVENTS, ORDER_SNAPSHOTS, ORDER_VIEW, PAYMENTS,
    REFUNDS,
};
use crate::services::orders::{
    OrderEventRow, OrderFact, OrderRow, OrderState, SnapshotRow, ViewRow,
};
use crate::topology::{INVENTORY_DB, ORDERS_DB, PAYMENTS_DB};
use pitfall_harness::checkers::Finding;
use pitfall_harness::history::compact::{Compact, Ev};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

use pitfall_harness::lookup::LookupMap;

/// (process, request id, attempt).
type Attempt<'h> = (&'h str, &'h str, u32);
/// (op, invoke entry, order id).
type Invoked<'h> = (&'h str, usize, Cow<'h, str>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Model {
    EventSourced,
    CrudCdc,
}

/// The orders model the run used, from its `orders` variant.
fn model(history: &Compact<'_>) -> Option<Model> {
    let name = history.lines().iter().find_map(|e| match e.event {
        Ev::Run { variants, .. } => Some(variants.iter().find(|(k, _)| *k == "orders")),
        _ => None,
    })??;
    match name.1 {
        "event-sourced" => Some(Model::EventSourced),
        "crud-cdc" => Some(Model::CrudCdc),
        _ => None,
    }
}

/// The last row written per key.
fn last_by<T>(rows: &[Written<T>], key: impl Fn(&T) -> String) -> BTreeMap<String, &Written<T>> {
    let mut out = BTreeMap::new();
    for w in rows {
        out.insert(key(&w.row), w);
    }
    out
}

/// Order id → seq → (the event's fact, its commit's entry). The first event
/// written at a sequence number wins (the store never changes one).
type Events = BTreeMap<String, BTreeMap<u64, (OrderFact, usize)>>;

fn record_event(events: &mut Events, entry: usize, row: OrderEventRow) {
    events
        .entry(row.order_id)
        .or_default()
        .entry(row.seq)
        .or_insert((row.fact, entry));
}

fn events(history: &Compact<'_>) -> Events {
    let mut out = Events::new();
    for w in rows::<OrderEventRow>(history, ORDERS_DB, ORDER_EVENTS).iter() {
        record_event(&mut out, w.entry, w.row.clone());
    }
    out
}

/// The orders service's truth about one order, and where it was last written.
struct Truth {
    state: OrderState,
    /// The commit of the orders row, or of the order's last event.
    entry: usize,
    /// What the truth is, for messages.
    source: String,
}

fn truths(history: &Compact<'_>, model: Model) -> BTreeMap<String, Truth> {
    match model {
        Model::CrudCdc => last_by(&rows::<OrderRow>(history, ORDERS_DB, ORDERS), |r| {
            r.order_id.clone()
        })
        .into_iter()
        .map(|(order, w)| {
            let truth = Truth {
                state: w.row.state.clone(),
                entry: w.entry,
                source: format!("its orders row (version {})", w.version),
            };
            (order, truth)
        })
        .collect(),
        Model::EventSourced => events(history)
            .into_iter()
            .map(|(order, evs)| {
                let state = OrderState::fold(&order, evs.values().map(|(f, _)| f));
                let truth = Truth {
                    state,
                    entry: evs.values().map(|(_, i)| *i).max().unwrap_or(0),
                    source: format!("the fold of its {} events", evs.len()),
                };
                (order, truth)
            })
            .collect(),
    }
}

/// The fields in which two states differ, as `field: a ≠ b`.
fn diff(a: &OrderState, b: &OrderState) -> String {
    let (Ok(Value::Object(x)), Ok(Value::Object(y))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return format!("{a:?} ≠ {b:?}");
    };
    let show = |v: Option<&Value>| v.map_or("-".to_string(), Value::to_string);
    let fields: Vec<String> = x
        .keys()
        .chain(y.keys().filter(|k| !x.contains_key(*k)))
        .filter(|k| x.get(*k) != y.get(*k))
        .map(|k| format!("{k}: {} ≠ {}", show(x.get(k)), show(y.get(k))))
        .collect();
    if fields.is_empty() {
        format!("{a:?} ≠ {b:?}")
    } else {
        fields.join(", ")
    }
}

fn evidence(mut entries: Vec<usize>) -> Vec<usize> {
    entries.sort_unstable();
    entries.dedup();
    entries
}

pub fn check_read_after_write(history: &Compact<'_>) -> Vec<Finding> {
    if model(history).is_none() {
        return vec![];
    }
    // (process, request id, attempt) → (op, invoke entry, order id).
    let mut invokes: LookupMap<Attempt, Invoked> = LookupMap::default();
    // Order id → the first OK of a placement of it, and who got it.
    let mut placed: LookupMap<Cow<str>, (usize, &str)> = LookupMap::default();
    let mut found = Vec::new();
    let lines = history.lines();
    for (i, e) in lines.iter().enumerate() {
        match e.event {
            Ev::Invoke {
                process,
                op,
                request_id,
                attempt,
                value,
            } if op == "place" || op == "read" => {
                if let Some(order) = value.get("order_id").and_then(|v| v.as_str()) {
                    invokes.insert((process, request_id, attempt), (op, i, order));
                }
            }
            Ev::Ok {
                process,
                op,
                request_id,
                attempt,
                value,
            } => {
                let Some((invoked_op, invoked, order)) =
                    invokes.get(&(process, request_id, attempt)).cloned()
                else {
                    continue;
                };
                if invoked_op != op {
                    continue;
                }
                if op == "place" {
                    placed.entry(order).or_insert((i, process));
                    continue;
                }
                let Some(&(place_ok, placer)) = placed.get(&order) else {
                    continue;
                };
                if place_ok > invoked {
                    continue;
                }
                // A `null` read result may have been dropped by a JSONL round trip.
                let saw = match value {
                    None => "nothing",
                    Some(v) if v.is_null() => "nothing",
                    Some(v) => match v.decode::<OrderState>() {
                        Some(state) if state.placed => continue,
                        Some(_) => "the order not placed",
                        None => continue,
                    },
                };
                let (t_place, t_invoke) = (lines[place_ok].t, lines[invoked].t);
                found.push((
                    format!(
                        "{process} read order {order} (invoked t={t_invoke}, ok t={}) and saw {saw}, though {placer} got OK placing it at t={t_place}",
                        e.t
                    ),
                    vec![place_ok, invoked, i],
                ));
            }
            _ => {}
        }
    }
    found
}

pub fn check_view_convergence(history: &Compact<'_>) -> Vec<Finding> {
    let Some(model) = model(history) else {
        return vec![];
    };
    let drained = history.lines().iter().rev().find_map(|e| match e.event {
        Ev::Drain { converged, .. } => Some(converged),
        _ => None,
    });
    if drained != Some(true) {
        // No drain, or it did not converge: `converges` reports that.
        return vec![];
    }
    let truth = truths(history, model);
    let mut found = Vec::new();

    // (a) The orders service's truth agrees with the upstream truths.
    let payment_rows = rows::<PaymentCompleted>(history, PAYMENTS_DB, PAYMENTS);
    let payments = last_by(&payment_rows, |p| p.order_id.clone());
    for (order, w) in &payments {
        let (status, revision) = (w.row.status, w.version);
        let Some(t) = truth.get(order) else {
            found.push((
                format!(
                    "order {order}: payments-db ends at {status:?} (revision {revision}), but the orders service has no state for it"
                ),
                vec![w.entry],
            ));
            continue;
        };
        if t.state.payment != Some(status) || t.state.payment_revision != revision {
            found.push((
                format!(
                    "order {order}: {} says payment {:?} at revision {}, but payments-db ends at {status:?} (revision {revision})",
                    t.source, t.state.payment, t.state.payment_revision
                ),
                evidence(vec![t.entry, w.entry]),
            ));
        }
    }
    // Effects are keyed by payment; the row names the order.
    let effect_rows = rows::<EffectRow>(history, INVENTORY_DB, EFFECTS);
    let mut effects: BTreeMap<&str, &Written<EffectRow>> = BTreeMap::new();
    for w in effect_rows.iter() {
        effects.insert(w.key.as_str(), w);
    }
    for (payment, w) in &effects {
        let order = &w.row.order_id;
        if order.is_empty() {
            continue;
        }
        let (status, version) = (w.row.status, w.version);
        let Some(t) = truth.get(order) else {
            found.push((
                format!(
                    "order {order}: inventory-db's effect for payment {payment} ends at {status:?} (version {version}), but the orders service has no state for it"
                ),
                vec![w.entry],
            ));
            continue;
        };
        if t.state.stock != Some(status) || t.state.stock_version != version {
            found.push((
                format!(
                    "order {order}: {} says stock {:?} at version {}, but inventory-db's effect for payment {payment} ends at {status:?} (version {version})",
                    t.source, t.state.stock, t.state.stock_version
                ),
                evidence(vec![t.entry, w.entry]),
            ));
        }
    }
    let refund_rows = rows::<RefundRow>(history, PAYMENTS_DB, REFUNDS);
    let refunds = last_by(&refund_rows, |r| r.order_id.clone());
    for (order, w) in &refunds {
        let refund = &w.row.refund_id;
        let Some(t) = truth.get(order) else {
            found.push((
                format!(
                    "order {order}: payments-db has refund {refund}, but the orders service has no state for it"
                ),
                vec![w.entry],
            ));
            continue;
        };
        if t.state.refund_id.as_ref() != Some(refund) {
            found.push((
                format!(
                    "order {order}: {} says refund {:?}, but payments-db has refund {refund}",
                    t.source, t.state.refund_id
                ),
                evidence(vec![t.entry, w.entry]),
            ));
        }
    }

    // (b) The view shows the truth.
    let view_rows = rows::<ViewRow>(history, ORDERS_DB, ORDER_VIEW);
    let views = last_by(&view_rows, |r| r.order_id.clone());
    for (order, t) in &truth {
        match views.get(order) {
            None => found.push((
                format!(
                    "order {order}: order_view has no row, but {} exists",
                    t.source
                ),
                vec![t.entry],
            )),
            Some(v) if v.row.state != t.state => found.push((
                format!(
                    "order {order}: order_view (revision {}) differs from {} (view ≠ truth): {}",
                    v.row.revision,
                    t.source,
                    diff(&v.row.state, &t.state)
                ),
                evidence(vec![t.entry, v.entry]),
            )),
            Some(_) => {}
        }
    }

    // (c) Event-sourced: the final snapshot plus the events after it replay
    // to the truth.
    if model == Model::EventSourced {
        let events = events(history);
        let snapshot_rows = rows::<SnapshotRow>(history, ORDERS_DB, ORDER_SNAPSHOTS);
        let snapshots = last_by(&snapshot_rows, |r| r.order_id.clone());
        for (order, w) in &snapshots {
            let upto = w.row.upto;
            let mut state = w.row.state.clone();
            let mut after = 0;
            let mut last_event = None;
            if let Some(evs) = events.get(order) {
                for (fact, i) in evs.range(upto.saturating_add(1)..).map(|(_, v)| v) {
                    state.apply(fact);
                    after += 1;
                    last_event = Some(*i);
                }
            }
            let (expected, truth_entry, source) = match truth.get(order) {
                Some(t) => (t.state.clone(), Some(t.entry), t.source.as_str()),
                None => (OrderState::new(order), None, "no events at all"),
            };
            if state != expected {
                let mut ev = vec![w.entry];
                ev.extend(last_event.or(truth_entry));
                found.push((
                    format!(
                        "order {order}: its final snapshot (up to {upto}) plus the {after} events after it differs from {source} (replay ≠ truth): {}",
                        diff(&state, &expected)
                    ),
                    evidence(ev),
                ));
            }
        }
    }
    found
}

pub fn check_snapshot_consistency(history: &Compact<'_>) -> Vec<Finding> {
    if model(history) != Some(Model::EventSourced) {
        return vec![];
    }
    let mut events = Events::new();
    let mut found = Vec::new();
    for (i, e) in history.lines().iter().enumerate() {
        let Ev::DbCommit { db, changes, .. } = e.event else {
            continue;
        };
        if db != ORDERS_DB {
            continue;
        }
        // Events committed in the same transaction count as existing.
        for c in changes.iter().filter(|c| c.table == ORDER_EVENTS) {
            if let Some(row) = c.data.decode::<OrderEventRow>() {
                record_event(&mut events, i, row);
            }
        }
        for c in changes.iter().filter(|c| c.table == ORDER_SNAPSHOTS) {
            let Some(snap) = c.data.decode::<SnapshotRow>() else {
                continue;
            };
            let (order, upto) = (&snap.order_id, snap.upto);
            let empty = BTreeMap::new();
            let evs = events.get(order).unwrap_or(&empty);
            let covered: Vec<&(OrderFact, usize)> = evs.range(..=upto).map(|(_, v)| v).collect();
            let mut ev = vec![i];
            ev.extend(covered.iter().map(|(_, j)| *j).max());
            let ev = evidence(ev);
            let have = covered.len() as u64;
            if have < upto {
                let missing: Vec<String> = (1..=upto)
                    .filter(|s| !evs.contains_key(s))
                    .take(5)
                    .map(|s| s.to_string())
                    .collect();
                found.push((
                    format!(
                        "snapshot of {order} up to {upto} (t={}) when only {have} events existed (missing seq {}{})",
                        e.t,
                        missing.join(", "),
                        if upto - have > 5 { ", …" } else { "" }
                    ),
                    ev,
                ));
                continue;
            }
            let fold = OrderState::fold(order, covered.iter().map(|(f, _)| f));
            if snap.state != fold {
                found.push((
                    format!(
                        "snapshot of {order} up to {upto} (t={}) differs from the fold of its first {upto} events (snapshot ≠ fold): {}",
                        e.t,
                        diff(&snap.state, &fold)
                    ),
                    ev,
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::PaymentStatus;
    use crate::schema::EffectStatus;
    use pitfall_harness::history::compact::with_entries;
    use pitfall_harness::history::{Entry, Event};
    use pitfall_ports::{Change, ChangeOp};

    fn check_read_after_write(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_read_after_write)
    }

    fn check_view_convergence(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_view_convergence)
    }

    fn check_snapshot_consistency(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check_snapshot_consistency)
    }
    use serde_json::json;

    const ES: &str = "event-sourced";
    const CRUD: &str = "crud-cdc";

    fn run(model: Option<&str>) -> Entry {
        Entry {
            t: 0,
            event: Event::Run {
                scenario: "orders".into(),
                seed: 1,
                mode: "sim".into(),
                system: "shop".into(),
                variants: model
                    .map(|m| ("orders".to_string(), m.to_string()))
                    .into_iter()
                    .collect(),
            },
        }
    }

    fn commit(t: u64, db: &str, changes: Vec<(&str, &str, u64, Value)>) -> Entry {
        Entry {
            t,
            event: Event::DbCommit {
                db: db.into(),
                process: "test".into(),
                lsn: t,
                changes: changes
                    .into_iter()
                    .map(|(table, key, version, data)| Change {
                        lsn: t,
                        table: table.into(),
                        key: key.into(),
                        op: if version == 1 {
                            ChangeOp::Insert
                        } else {
                            ChangeOp::Update
                        },
                        version,
                        data,
                    })
                    .collect(),
            },
        }
    }

    fn drain(t: u64, converged: bool) -> Entry {
        Entry {
            t,
            event: Event::Drain {
                converged,
                pending: vec![],
            },
        }
    }

    fn invoke(t: u64, process: &str, op: &str, req: &str, order: &str) -> Entry {
        Entry {
            t,
            event: Event::Invoke {
                process: process.into(),
                op: op.into(),
                request_id: req.into(),
                attempt: 1,
                value: json!({ "order_id": order, "user_id": "u1", "request_id": req }),
            },
        }
    }

    fn ok(t: u64, process: &str, op: &str, req: &str, value: Option<Value>) -> Entry {
        Entry {
            t,
            event: Event::Ok {
                process: process.into(),
                op: op.into(),
                request_id: req.into(),
                attempt: 1,
                value,
            },
        }
    }

    fn placed_fact() -> OrderFact {
        OrderFact::Placed {
            user_id: "u1".into(),
            product: "apple".into(),
            qty: 2,
        }
    }

    fn paid(revision: u64, status: PaymentStatus) -> OrderFact {
        OrderFact::Payment { status, revision }
    }

    fn stocked(version: u64, status: EffectStatus) -> OrderFact {
        OrderFact::Stock { status, version }
    }

    fn state(order: &str, facts: &[OrderFact]) -> OrderState {
        OrderState::fold(order, facts)
    }

    fn orders_row(t: u64, order: &str, version: u64, facts: &[OrderFact]) -> Entry {
        let row = OrderRow {
            order_id: order.into(),
            state: state(order, facts),
            last: facts.last().cloned().unwrap_or_else(placed_fact),
            request_id: "r".into(),
            user_id: "u1".into(),
        };
        commit(t, ORDERS_DB, vec![(ORDERS, order, version, json!(row))])
    }

    fn event(t: u64, order: &str, seq: u64, fact: OrderFact) -> Entry {
        let row = OrderEventRow {
            order_id: order.into(),
            seq,
            fact,
            request_id: "r".into(),
            user_id: "u1".into(),
        };
        let key = crate::services::orders::event_key(order, seq);
        commit(t, ORDERS_DB, vec![(ORDER_EVENTS, &key, 1, json!(row))])
    }

    fn snapshot(t: u64, order: &str, version: u64, upto: u64, state: OrderState) -> Entry {
        let row = SnapshotRow {
            order_id: order.into(),
            upto,
            state,
        };
        commit(
            t,
            ORDERS_DB,
            vec![(ORDER_SNAPSHOTS, order, version, json!(row))],
        )
    }

    fn view(t: u64, order: &str, version: u64, revision: u64, state: OrderState) -> Entry {
        let row = ViewRow {
            order_id: order.into(),
            revision,
            state,
        };
        commit(t, ORDERS_DB, vec![(ORDER_VIEW, order, version, json!(row))])
    }

    fn payment(t: u64, order: &str, version: u64, status: PaymentStatus) -> Entry {
        let p = PaymentCompleted {
            payment_id: format!("pay-{order}"),
            order_id: order.into(),
            product: "apple".into(),
            qty: 2,
            user_id: "u1".into(),
            request_id: "r".into(),
            revision: version,
            status,
            attachment: None,
        };
        commit(t, PAYMENTS_DB, vec![(PAYMENTS, order, version, json!(p))])
    }

    fn effect(t: u64, order: &str, version: u64, status: EffectStatus) -> Entry {
        let row = EffectRow {
            revision: version,
            status,
            product: "apple".into(),
            held: 0,
            order_id: order.into(),
            request_id: "r".into(),
            user_id: "u1".into(),
        };
        let key = format!("pay-{order}");
        commit(t, INVENTORY_DB, vec![(EFFECTS, &key, version, json!(row))])
    }

    fn refund(t: u64, order: &str, refund_id: &str) -> Entry {
        let row = RefundRow {
            refund_id: refund_id.into(),
            order_id: order.into(),
            payment_id: format!("pay-{order}"),
            request_id: "r".into(),
            user_id: "u1".into(),
        };
        commit(t, PAYMENTS_DB, vec![(REFUNDS, order, 1, json!(row))])
    }

    fn place_then_read(read: Option<Value>) -> Vec<Entry> {
        vec![
            run(Some(ES)),
            invoke(10, "shopper-1", "place", "r1", "o1"),
            event(11, "o1", 1, placed_fact()),
            ok(12, "shopper-1", "place", "r1", None),
            invoke(20, "shopper-1", "read", "r2", "o1"),
            ok(21, "shopper-1", "read", "r2", read),
        ]
    }

    #[test]
    fn read_after_write_catches_a_read_that_misses_the_placed_order() {
        let v = check_read_after_write(&place_then_read(Some(Value::Null)));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains(
                "shopper-1 read order o1 (invoked t=20, ok t=21) and saw nothing, though shopper-1 got OK placing it at t=12"
            ),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![3, 4, 5]);

        // The same `null` after a JSONL round trip.
        let v = check_read_after_write(&place_then_read(None));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].0.contains("saw nothing"), "{}", v[0].0);

        let unplaced = state("o1", &[paid(1, PaymentStatus::Completed)]);
        let v = check_read_after_write(&place_then_read(Some(json!(unplaced))));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].0.contains("saw the order not placed"), "{}", v[0].0);
    }

    #[test]
    fn read_after_write_holds_when_the_read_shows_the_order_placed() {
        let placed = state("o1", &[placed_fact()]);
        let v = check_read_after_write(&place_then_read(Some(json!(placed))));
        assert_eq!(v.len(), 0, "{v:?}");
        // An unparseable read result is skipped, not a panic.
        let v = check_read_after_write(&place_then_read(Some(json!({ "weird": 1 }))));
        assert_eq!(v.len(), 0, "{v:?}");
    }

    #[test]
    fn read_after_write_ignores_reads_invoked_before_the_place_ok() {
        let h = vec![
            run(Some(CRUD)),
            invoke(10, "shopper-1", "place", "r1", "o1"),
            invoke(11, "shopper-2", "read", "r2", "o1"),
            ok(12, "shopper-1", "place", "r1", None),
            ok(13, "shopper-2", "read", "r2", Some(Value::Null)),
            // A later read by another shopper must see it.
            invoke(20, "shopper-2", "read", "r3", "o1"),
            ok(21, "shopper-2", "read", "r3", Some(Value::Null)),
        ];
        let v = check_read_after_write(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains("shopper-2 read order o1 (invoked t=20"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![3, 5, 6]);
        assert_eq!(check_read_after_write(&h[..5]).len(), 0);
    }

    /// A crud-cdc order o1 placed, paid, reserved, with the upstream rows
    /// agreeing and the view row `view_state`.
    fn crud_history(view_state: OrderState, converged: bool) -> Vec<Entry> {
        let facts = [
            placed_fact(),
            paid(1, PaymentStatus::Completed),
            stocked(1, EffectStatus::Reserved),
        ];
        vec![
            run(Some(CRUD)),
            payment(5, "o1", 1, PaymentStatus::Completed),
            orders_row(6, "o1", 1, &facts[..1]),
            orders_row(7, "o1", 2, &facts[..2]),
            effect(8, "o1", 1, EffectStatus::Reserved),
            orders_row(9, "o1", 3, &facts),
            view(10, "o1", 1, 3, view_state),
            drain(100, converged),
        ]
    }

    fn crud_truth() -> OrderState {
        state(
            "o1",
            &[
                placed_fact(),
                paid(1, PaymentStatus::Completed),
                stocked(1, EffectStatus::Reserved),
            ],
        )
    }

    #[test]
    fn view_convergence_holds_when_the_view_matches_the_orders_row() {
        let v = check_view_convergence(&crud_history(crud_truth(), true));
        assert_eq!(v.len(), 0, "{v:?}");
    }

    #[test]
    fn view_convergence_catches_a_stale_view() {
        let stale = state("o1", &[placed_fact(), paid(1, PaymentStatus::Completed)]);
        let h = crud_history(stale, true);
        let v = check_view_convergence(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains(
                "order o1: order_view (revision 3) differs from its orders row (version 3)"
            ),
            "{}",
            v[0].0
        );
        assert!(
            v[0].0
                .contains("stock: null ≠ \"reserved\", stock_version: 0 ≠ 1"),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![5, 6]);
    }

    #[test]
    fn view_convergence_catches_a_refund_the_orders_service_missed() {
        let mut h = crud_history(crud_truth(), true);
        h.insert(7, payment(50, "o1", 2, PaymentStatus::Refunded));
        h.insert(8, refund(51, "o1", "rf-1"));
        let v = check_view_convergence(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].0.contains(
                "order o1: its orders row (version 3) says payment Some(Completed) at revision 1, but payments-db ends at Refunded (revision 2)"
            ),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![5, 7]);
        assert!(
            v[1].0
                .contains("says refund None, but payments-db has refund rf-1"),
            "{}",
            v[1].0
        );
    }

    #[test]
    fn view_convergence_catches_missing_state_and_missing_views() {
        let h = vec![
            run(Some(CRUD)),
            effect(5, "o2", 1, EffectStatus::Rejected),
            orders_row(6, "o3", 1, &[placed_fact()]),
            drain(100, true),
        ];
        let v = check_view_convergence(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].0.contains("effect for payment pay-o2 ends at Rejected (version 1), but the orders service has no state"),
            "{}",
            v[0].0
        );
        assert!(
            v[1].0.contains("order o3: order_view has no row"),
            "{}",
            v[1].0
        );
    }

    #[test]
    fn view_convergence_says_nothing_without_a_converged_drain() {
        let stale = state("o1", &[placed_fact()]);
        assert_eq!(
            check_view_convergence(&crud_history(stale.clone(), false)).len(),
            0
        );
        let mut h = crud_history(stale, true);
        h.pop();
        assert_eq!(check_view_convergence(&h).len(), 0);
    }

    fn es_history(snap: OrderState) -> Vec<Entry> {
        let o = "o1";
        let two = state(o, &[placed_fact(), paid(1, PaymentStatus::Completed)]);
        let all = state(
            o,
            &[
                placed_fact(),
                paid(1, PaymentStatus::Completed),
                paid(2, PaymentStatus::Refunded),
            ],
        );
        vec![
            run(Some(ES)),
            event(5, o, 1, placed_fact()),
            event(6, o, 2, paid(1, PaymentStatus::Completed)),
            snapshot(7, o, 1, 2, snap),
            event(8, o, 3, paid(2, PaymentStatus::Refunded)),
            view(9, o, 1, 2, two),
            view(10, o, 2, 3, all),
            drain(100, true),
        ]
    }

    #[test]
    fn view_convergence_checks_the_final_snapshot_under_event_sourcing() {
        let good = state("o1", &[placed_fact(), paid(1, PaymentStatus::Completed)]);
        let v = check_view_convergence(&es_history(good));
        assert_eq!(v.len(), 0, "{v:?}");

        let bad = state("o1", &[paid(1, PaymentStatus::Completed)]);
        let v = check_view_convergence(&es_history(bad));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains(
                "order o1: its final snapshot (up to 2) plus the 1 events after it differs from the fold of its 3 events"
            ),
            "{}",
            v[0].0
        );
        assert!(v[0].0.contains("placed: false ≠ true"), "{}", v[0].0);
        assert_eq!(v[0].1, vec![3, 4]);
    }

    #[test]
    fn snapshot_consistency_holds_when_snapshots_match_the_fold() {
        let good = state("o1", &[placed_fact(), paid(1, PaymentStatus::Completed)]);
        let v = check_snapshot_consistency(&es_history(good));
        assert_eq!(v.len(), 0, "{v:?}");
    }

    #[test]
    fn snapshot_consistency_catches_a_wrong_snapshot() {
        let bad = state("o1", &[placed_fact(), paid(2, PaymentStatus::Refunded)]);
        let v = check_snapshot_consistency(&es_history(bad));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains(
                "snapshot of o1 up to 2 (t=7) differs from the fold of its first 2 events"
            ),
            "{}",
            v[0].0
        );
        assert!(
            v[0].0.contains("payment: \"refunded\" ≠ \"completed\""),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![2, 3]);
    }

    #[test]
    fn snapshot_consistency_catches_a_snapshot_ahead_of_the_events() {
        let o = "o3";
        let facts = [
            placed_fact(),
            paid(1, PaymentStatus::Completed),
            stocked(1, EffectStatus::Reserved),
            paid(2, PaymentStatus::Refunded),
            stocked(2, EffectStatus::Released),
            OrderFact::Refunded {
                refund_id: "rf".into(),
            },
        ];
        let mut h = vec![run(Some(ES))];
        for (n, f) in facts.iter().take(4).enumerate() {
            h.push(event(10 + n as u64, o, n as u64 + 1, f.clone()));
        }
        // A snapshot of all six, written before events 5 and 6 committed.
        h.push(snapshot(20, o, 1, 6, state(o, &facts)));
        h.push(event(21, o, 5, facts[4].clone()));
        h.push(event(22, o, 6, facts[5].clone()));
        let v = check_snapshot_consistency(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].0.contains(
                "snapshot of o3 up to 6 (t=20) when only 4 events existed (missing seq 5, 6)"
            ),
            "{}",
            v[0].0
        );
        assert_eq!(v[0].1, vec![4, 5]);

        // The same snapshot written after the events is fine, and so is one
        // committed in the same transaction as its last event.
        let mut later = h.clone();
        later.push(snapshot(30, o, 2, 6, state(o, &facts)));
        assert_eq!(check_snapshot_consistency(&later).len(), 1);
        let mut together = h[..5].to_vec();
        let Event::DbCommit { changes, .. } = &mut together[4].event else {
            unreachable!()
        };
        let Event::DbCommit { changes: snap, .. } =
            &snapshot(20, o, 1, 4, state(o, &facts[..4])).event
        else {
            unreachable!()
        };
        changes.extend(snap.iter().cloned());
        assert_eq!(check_snapshot_consistency(&together).len(), 0);
    }

    #[test]
    fn nothing_is_checked_without_the_orders_variant() {
        let stale = state("o1", &[placed_fact()]);
        let mut raw = place_then_read(Some(Value::Null));
        let mut view = crud_history(stale, true);
        let bad = state("o1", &[placed_fact(), paid(2, PaymentStatus::Refunded)]);
        let mut snap = es_history(bad);
        // Sanity: with the variant, each one is a violation.
        assert_eq!(check_read_after_write(&raw).len(), 1);
        assert_eq!(check_view_convergence(&view).len(), 1);
        assert_eq!(check_snapshot_consistency(&snap).len(), 1);
        for h in [&mut raw, &mut view, &mut snap] {
            h[0] = run(None);
        }
        assert_eq!(check_read_after_write(&raw).len(), 0);
        assert_eq!(check_view_convergence(&view).len(), 0);
        assert_eq!(check_snapshot_consistency(&snap).len(), 0);
        // Snapshots are not checked under crud-cdc.
        snap[0] = run(Some(CRUD));
        assert_eq!(check_snapshot_consistency(&snap).len(), 0);
    }

    #[test]
    fn unparseable_rows_are_skipped() {
        let h = vec![
            run(Some(ES)),
            commit(
                5,
                ORDERS_DB,
                vec![(ORDER_EVENTS, "o1/000001", 1, json!("junk"))],
            ),
            commit(
                6,
                ORDERS_DB,
                vec![(ORDER_SNAPSHOTS, "o1", 1, json!({ "upto": "x" }))],
            ),
            commit(7, ORDERS_DB, vec![(ORDER_VIEW, "o1", 1, json!(null))]),
            commit(8, PAYMENTS_DB, vec![(PAYMENTS, "o1", 1, json!([]))]),
            invoke(9, "shopper-1", "read", "r1", "o1"),
            ok(10, "shopper-1", "read", "r1", Some(json!(3))),
            drain(100, true),
        ];
        assert_eq!(check_read_after_write(&h).len(), 0);
        assert_eq!(check_view_convergence(&h).len(), 0);
        assert_eq!(check_snapshot_consistency(&h).len(), 0);
    }
}
