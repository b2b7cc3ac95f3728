//! A toy system for the harness's own tests: two services (`api`, `worker`)
//! on one DB, a crash group, one variant switch and one invariant. Its
//! hosts do nothing; it exists so scenario parsing, fault resolution and the
//! report can be tested without a real system.

use crate::checkers::Invariant;
use crate::history::Event;
use crate::scenario::{InputError, RunParams, ScenarioText};
use crate::system::{
    Client, Config, CrashGroup, DbSpec, HostFuture, Infra, Probe, System, Topology, BROKER,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct ToySystem;

#[derive(Deserialize)]
struct File {
    variants: Variants,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Variants {
    mode: Mode,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Naive,
    Careful,
}

struct ToyConfig {
    mode: Mode,
}

impl System for ToySystem {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn describe(&self) -> &'static str {
        "a toy for the harness's tests"
    }

    fn sections(&self) -> &'static [&'static str] {
        &["variants"]
    }

    fn configure(&self, scenario: &ScenarioText<'_>) -> Result<Arc<dyn Config>, InputError> {
        let file: File = scenario.parse()?;
        Ok(Arc::new(ToyConfig {
            mode: file.variants.mode,
        }))
    }

    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::new(
            "toy-invariant",
            "no phase called `bad`",
            |history| {
                history
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| matches!(&e.event, Event::Phase { phase } if phase == "bad"))
                    .map(|(i, _)| ("a bad phase".to_string(), vec![i]))
                    .collect()
            },
        )]
    }
}

impl Config for ToyConfig {
    fn variants(&self) -> BTreeMap<String, String> {
        let mode = match self.mode {
            Mode::Naive => "naive",
            Mode::Careful => "careful",
        };
        BTreeMap::from([("mode".to_string(), mode.to_string())])
    }

    fn topology(&self) -> Topology {
        Topology {
            dbs: vec![DbSpec {
                name: "db".into(),
                tables: vec!["rows".into()],
                ..DbSpec::default()
            }],
            topics: vec!["events".into()],
            services: vec!["api".into(), "worker".into()],
            clients: vec!["client-1".into()],
            links: vec![
                ("api".into(), "db".into()),
                ("worker".into(), BROKER.into()),
                ("client-1".into(), "api".into()),
            ],
            probes: vec![Probe::Lag {
                label: "worker".into(),
                group: "workers".into(),
                topic: "events".into(),
            }],
            crash_groups: vec![CrashGroup {
                name: "crash-workers".into(),
                describe: "the worker crashes".into(),
                hosts: vec!["worker".into()],
            }],
        }
    }

    fn spawn(&self, _host: &str, _infra: &dyn Infra) -> HostFuture {
        Box::pin(std::future::pending())
    }

    fn clients(&self, _seed: u64, _run: &RunParams) -> Vec<Client> {
        Vec::new()
    }
}
