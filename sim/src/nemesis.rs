//! The simulation's nemesis: how each fault window starts and stops in the
//! turmoil world — server and front-door fault switches, partitions and blackholes on
//! turmoil links, crashes and restarts of hosts, crash and fail points —
//! and the heal before the drain. Every parameter comes from the window.

use crate::servers::SharedFaults;
use crate::world::SimWorld;
use pitfall_harness::faults::{FaultKind, FaultWindow};

/// Start or stop one fault window.
pub fn apply(world: &mut SimWorld<'_>, w: &FaultWindow, start: bool) {
    match w.kind {
        FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage if w.blackhole => {
            let others: Vec<String> = world
                .topology
                .all_hosts()
                .into_iter()
                .filter(|h| *h != w.target)
                .collect();
            for other in others {
                if start {
                    cut(world, &w.target, &other);
                } else {
                    mend(world, &w.target, &other);
                }
            }
        }
        FaultKind::DbOutage | FaultKind::BrokerOutage | FaultKind::StoreOutage => {
            server(world, w).lock().unwrap().down = start;
        }
        FaultKind::ApiOutage => world.doors[&w.target].lock().unwrap().down = start,
        FaultKind::ApiSlow => {
            world.doors[&w.target].lock().unwrap().slow_ms = w.delay_ms.filter(|_| start);
        }
        FaultKind::ApiLostReply => {
            world.doors[&w.target].lock().unwrap().lost_ack = probability(w, start);
        }
        FaultKind::DbSlow | FaultKind::BrokerSlow | FaultKind::StoreSlow => {
            server(world, w).lock().unwrap().slow_ms = w.delay_ms.filter(|_| start);
        }
        FaultKind::DbLostAck | FaultKind::BrokerLostAck => {
            server(world, w).lock().unwrap().lost_ack = probability(w, start);
        }
        FaultKind::DuplicateDelivery => {
            server(world, w).lock().unwrap().duplicate_delivery = probability(w, start);
        }
        FaultKind::Reorder => {
            server(world, w).lock().unwrap().reorder = probability(w, start);
        }
        FaultKind::Partition => {
            let (a, b) = w.target.split_once('|').expect("partition targets are a|b");
            if start {
                cut(world, a, b);
            } else {
                mend(world, a, b);
            }
        }
        FaultKind::CrashPoint | FaultKind::FailPoint => {
            world.points.apply_window(w, start);
        }
        FaultKind::DbCrash | FaultKind::BrokerCrash | FaultKind::Crash => {
            if start {
                world.sim.crash(w.target.as_str());
            } else {
                world.sim.bounce(w.target.as_str());
            }
        }
    }
}

/// Make sure nothing is left broken when the drain starts.
pub fn heal(world: &mut SimWorld<'_>) {
    for (a, b) in std::mem::take(&mut world.cuts).into_keys() {
        world.sim.repair(a.as_str(), b.as_str());
    }
    for db in world.dbs.values() {
        db.faults.lock().unwrap().heal();
    }
    world.broker.faults.lock().unwrap().heal();
    world.points.clear();
    world.store.faults.lock().unwrap().heal();
    for door in world.doors.values() {
        door.lock().unwrap().heal();
    }
    let hosts: Vec<String> = world.topology.all_hosts();
    for host in hosts.iter().filter(|h| !world.topology.clients.contains(h)) {
        if !world.sim.is_host_running(host.as_str()) {
            world.sim.bounce(host.as_str());
        }
    }
}

/// The window's probability while it runs; none once it stops.
fn probability(w: &FaultWindow, start: bool) -> f64 {
    if start {
        w.probability.unwrap_or(0.0)
    } else {
        0.0
    }
}

/// The fault switch of the server a window targets.
fn server<'w>(world: &'w SimWorld<'_>, w: &FaultWindow) -> &'w SharedFaults {
    match w.kind {
        FaultKind::DbOutage | FaultKind::DbSlow | FaultKind::DbLostAck => {
            &world.dbs[&w.target].faults
        }
        FaultKind::StoreOutage | FaultKind::StoreSlow => &world.store.faults,
        _ => &world.broker.faults,
    }
}

fn key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

fn cut(world: &mut SimWorld<'_>, a: &str, b: &str) {
    let n = world.cuts.entry(key(a, b)).or_insert(0);
    if *n == 0 {
        world.sim.partition(a, b);
    }
    *n += 1;
}

fn mend(world: &mut SimWorld<'_>, a: &str, b: &str) {
    let k = key(a, b);
    if let Some(n) = world.cuts.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            world.cuts.remove(&k);
            world.sim.repair(a, b);
        }
    }
}
