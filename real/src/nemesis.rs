//! Real mode's nemesis: how each fault window starts and stops against real
//! services — at the fault proxies (the broker's and one per host→DB link),
//! in the object-store adapter, at the in-process front doors, and by
//! aborting and restarting hosts' tasks, by switching crash and fail points
//! at the hosts' ports — and the heal before the drain.
//! Every parameter comes from the window; [`support`] says which kinds a
//! real broker cannot be made to show.

use crate::live::Live;
use crate::proxy::FaultProxy;
use pitfall_harness::driver::Applied;
use pitfall_harness::faults::{FaultKind, FaultWindow};
use std::sync::atomic::Ordering;

/// How real mode handles a fault kind: applied (how), or skipped (why).
pub fn support(kind: FaultKind, broker_proxied: bool) -> Result<String, String> {
    let broker = |what: &str| {
        if broker_proxied {
            Ok(what.to_string())
        } else {
            Err("skipped: the broker does not advertise the fault proxy's address".to_string())
        }
    };
    match kind {
        FaultKind::DbOutage => Ok("applied at the DB proxies (refuse, or blackhole then reset)".into()),
        FaultKind::DbSlow => Ok("applied at the DB proxies (the window's delay per chunk)".into()),
        FaultKind::DbCrash => Ok("emulated: the DB proxies reset every connection and refuse new ones; Postgres keeps running".into()),
        FaultKind::DbLostAck => Ok("applied at the DB proxies (a reply is dropped and the connection cut)".into()),
        FaultKind::BrokerOutage | FaultKind::BrokerSlow | FaultKind::BrokerLostAck => {
            broker("applied at the broker proxy")
        }
        FaultKind::BrokerCrash => broker("emulated: the broker proxy resets every connection and refuses new ones; the broker keeps running, so its acknowledged log survives as a crash keeps it (pitfall does not own the broker's process)"),
        FaultKind::StoreOutage | FaultKind::StoreSlow => Ok("injected in the object-store adapter (a local folder has no network)".into()),
        FaultKind::Partition => Ok("host→DB links at their proxies; client→service links at the in-process front doors; links to the broker or the object store skipped (clients reconnect to the one advertised address)".into()),
        FaultKind::Crash => Ok("applied: the host's tasks are aborted and started again; a host that consumes in a group crashes at its next offset commit in the window (after applying, before committing), or at the window's end".into()),
        FaultKind::DuplicateDelivery => Err("skipped: a real broker cannot be told to redeliver; redelivery comes from crashes and rebalances".into()),
        FaultKind::Reorder => Err("skipped: a real broker never reorders a partition; reordering comes from retries with several requests in flight".into()),
        FaultKind::ApiOutage | FaultKind::ApiSlow | FaultKind::ApiLostReply => Ok("applied at the in-process front doors (refuse, delay before the host sees the call, or lose the reply after it acted)".into()),
        FaultKind::CrashPoint => Ok("applied at the host's ports: a host that passes the boundary asks to be crashed there and waits; it is crashed and started again at once".into()),
        FaultKind::FailPoint => Ok("applied at the host's ports: the call at the boundary fails (skipped before it, its result lost after it)".into()),
    }
}

/// Start or stop one fault window.
pub fn apply(live: &mut Live<'_, '_>, w: &FaultWindow, start: bool) -> Applied {
    if support(w.kind, live.run.world.broker_proxied).is_err() {
        return Applied::Skipped;
    }
    match w.kind {
        FaultKind::DbOutage | FaultKind::BrokerOutage => {
            for p in proxies(live, w) {
                if w.blackhole {
                    p.set(|f| f.blackhole = start);
                    if !start {
                        p.reset_connections();
                    }
                } else {
                    p.set(|f| f.refuse = start);
                    if start {
                        p.reset_connections();
                    }
                }
            }
        }
        FaultKind::DbCrash | FaultKind::BrokerCrash => {
            for p in proxies(live, w) {
                p.set(|f| f.refuse = start);
                if start {
                    p.reset_connections();
                }
            }
        }
        FaultKind::DbSlow | FaultKind::BrokerSlow => {
            for p in proxies(live, w) {
                p.set(|f| f.latency_ms = w.delay_ms.filter(|_| start));
            }
        }
        FaultKind::DbLostAck | FaultKind::BrokerLostAck => {
            let p = if start {
                w.probability.unwrap_or(0.0)
            } else {
                0.0
            };
            for proxy in proxies(live, w) {
                proxy.set(|f| f.lost_response = p);
            }
        }
        FaultKind::StoreOutage => live.ctx.store_faults.lock().unwrap().down = start,
        FaultKind::StoreSlow => {
            live.ctx.store_faults.lock().unwrap().delay_ms = w.delay_ms.filter(|_| start)
        }
        FaultKind::ApiOutage => live.ctx.front.set_faults(&w.target, |f| f.down = start),
        FaultKind::ApiSlow => live
            .ctx
            .front
            .set_faults(&w.target, |f| f.delay_ms = w.delay_ms.filter(|_| start)),
        FaultKind::ApiLostReply => {
            let p = if start {
                w.probability.unwrap_or(0.0)
            } else {
                0.0
            };
            live.ctx.front.set_faults(&w.target, |f| f.lost_reply = p)
        }
        FaultKind::CrashPoint | FaultKind::FailPoint => {
            live.ctx.points.apply_window(w, start);
        }
        FaultKind::Partition => return partition(live, w, start),
        FaultKind::Crash => return crash(live, w, start),
        FaultKind::DuplicateDelivery | FaultKind::Reorder => return Applied::Skipped,
    }
    Applied::Now
}

/// The proxies a DB or broker window acts on.
fn proxies<'a>(live: &'a Live<'_, '_>, w: &FaultWindow) -> Vec<&'a FaultProxy> {
    match w.kind {
        FaultKind::BrokerOutage
        | FaultKind::BrokerSlow
        | FaultKind::BrokerLostAck
        | FaultKind::BrokerCrash => vec![&live.run.world.broker_proxy],
        _ => live
            .run
            .proxies
            .iter()
            .filter(|((_, db), _)| *db == w.target)
            .map(|(_, p)| p)
            .collect(),
    }
}

/// A host→DB link at its proxy, a client→service link at the front door.
fn partition(live: &mut Live<'_, '_>, w: &FaultWindow, start: bool) -> Applied {
    let (a, b) = w.target.split_once('|').expect("partition targets are a|b");
    let topology = &live.run.scenario.topology;
    if let Some(p) = live.run.proxies.get(&(a.to_string(), b.to_string())) {
        p.set(|f| f.blackhole = start);
        if !start {
            p.reset_connections();
        }
        Applied::Now
    } else if topology.services.iter().any(|s| s == b) {
        live.ctx.front.set_cut(a, b, start);
        Applied::Now
    } else {
        Applied::Skipped
    }
}

/// A host that consumes in a group crashes between applying and committing:
/// at its next offset commit while the window lasts, or when it ends if
/// none comes (a member that only crashed after a short grace was mostly
/// idle by then, so few crashes landed between a batch's effects and its
/// commit). Any other host crashes at once.
fn crash(live: &mut Live<'_, '_>, w: &FaultWindow, start: bool) -> Applied {
    let host = w.target.clone();
    let armed = live.ctx.armed(&host);
    if !start {
        // Armed and never reached a commit in the window: crash it now.
        if armed
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::SeqCst))
        {
            live.crash(&host);
        }
        live.armed_for.remove(&host);
        live.restart(&host);
        return Applied::Now;
    }
    let Some(flag) = armed else {
        live.crash(&host);
        return Applied::Now;
    };
    flag.store(true, Ordering::SeqCst);
    live.armed_for.insert(host.clone(), w.fault.clone());
    Applied::Later
}

/// Stop every fault: proxies healed and their connections reset, the store
/// and the front doors clear.
pub fn heal(live: &mut Live<'_, '_>) {
    for proxy in live
        .run
        .proxies
        .values()
        .chain(std::iter::once(&live.run.world.broker_proxy))
    {
        proxy.heal();
        proxy.reset_connections();
    }
    live.ctx.points.clear();
    let mut store = live.ctx.store_faults.lock().unwrap();
    store.down = false;
    store.delay_ms = None;
    drop(store);
    live.ctx.front.heal();
}
