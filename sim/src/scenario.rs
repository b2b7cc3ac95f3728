//! Scenario files: TOML under `scenarios/`, parsed strictly. Any mistake — an
//! unknown key, a wrong type, an unknown variant, fault kind or invariant, a
//! fault kind the chosen variants cannot have — is an error naming the file,
//! line and column.

use crate::checkers::Invariant;
use crate::faults::FaultKind;
use crate::topology::Topology;
use pitfall_system::blocks::payload::{Codec, Strategy};
use pitfall_system::ports::ProducerConfig;
use pitfall_system::variants::{Context, Idempotency, Ordering, OrdersModel, Publish};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What a scenario expects of the sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every invariant holds on every seed.
    Holds,
    /// Each listed invariant is violated in at least one seed; every other
    /// invariant holds (unless tolerated).
    Violated(Vec<Invariant>),
}

impl Serialize for Expect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expect::Holds => s.serialize_str("holds"),
            Expect::Violated(list) => {
                #[derive(Serialize)]
                struct V<'a> {
                    violated: &'a [Invariant],
                }
                V { violated: list }.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ExpectVisitor;
        impl<'de> Visitor<'de> for ExpectVisitor {
            type Value = Expect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""holds" or { violated = ["invariant", ...] }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Expect, E> {
                match v {
                    "holds" => Ok(Expect::Holds),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Expect, A::Error> {
                let mut violated: Option<Vec<Invariant>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "violated" => violated = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["violated"])),
                    }
                }
                match violated {
                    Some(list) if !list.is_empty() => Ok(Expect::Violated(list)),
                    Some(_) => Err(de::Error::custom(
                        "`violated` must name at least one invariant",
                    )),
                    None => Err(de::Error::missing_field("violated")),
                }
            }
        }
        d.deserialize_any(ExpectVisitor)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variants {
    /// Pitfall 1: how payments gets its event out.
    pub producer: Publish,
    /// Pitfall 5: how inventory applies what it consumes.
    pub consumer: Idempotency,
    /// Pitfall 3: whether every hop carries the request context.
    #[serde(default)]
    pub context: Context,
    /// Ordering: whether inventory discards stale updates by revision
    /// (default `order-naive`).
    #[serde(default)]
    pub ordering: Ordering,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub shoppers: u32,
    pub products: u32,
    pub initial_stock: i64,
    pub orders: u32,
    /// Largest quantity of one order (drawn from 1 to this).
    #[serde(default = "default_max_qty")]
    pub max_qty: i64,
    /// How many times a shopper tries one order before giving up.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Share of paid orders the shopper refunds soon after (0 to 1). A refund
    /// is a second revision of the payment, so it is what ordering bugs act
    /// on.
    #[serde(default)]
    pub refunds: f64,
}

fn default_max_qty() -> i64 {
    3
}

fn default_attempts() -> u32 {
    6
}

/// Pitfall 4: orders that carry an attachment (an invoice), and how it
/// travels to the archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payloads {
    pub strategy: Strategy,
    /// The codec of the `compressed` strategy.
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Share of orders that carry an attachment (0 to 1).
    #[serde(default = "default_share")]
    pub share: f64,
    /// Attachment sizes are drawn log-uniformly from `min_kib` to `max_kib`.
    #[serde(default = "default_min_kib")]
    pub min_kib: u64,
    #[serde(default = "default_max_kib")]
    pub max_kib: u64,
    /// Chunk size of the chunked strategies.
    #[serde(default = "default_chunk_kib")]
    pub chunk_kib: u64,
}

impl Payloads {
    /// The settings of the producer that sends attachments: the scenario's,
    /// with batch compression by `codec` under the `compressed` strategy.
    pub fn producer_config(&self, base: &ProducerConfig) -> ProducerConfig {
        ProducerConfig {
            compression: (self.strategy == Strategy::Compressed).then_some(self.codec),
            ..base.clone()
        }
    }
}

fn default_codec() -> Codec {
    Codec::Lz4
}

fn default_share() -> f64 {
    0.3
}

fn default_min_kib() -> u64 {
    16
}

fn default_max_kib() -> u64 {
    20 * 1024
}

fn default_chunk_kib() -> u64 {
    256
}

/// Pitfall 2: the orders service, its order-status view and how it keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Orders {
    pub model: OrdersModel,
    /// `event-sourced`: take a snapshot once this many events accumulated.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
}

fn default_snapshot_every() -> u64 {
    3
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    pub allowed: Vec<FaultKind>,
}

/// Timing and sizing of a run; all optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunParams {
    /// Length of the chaos phase (simulated seconds).
    pub chaos_seconds: f64,
    /// Bound on the heal-and-drain phase (simulated seconds).
    pub drain_seconds: f64,
    /// Partitions per topic.
    pub partitions: u32,
    /// Inventory consumers in the group.
    pub inventory_consumers: u32,
    /// Simulated time per turmoil step, in milliseconds. Message latencies
    /// and timers are rounded up to it; smaller is finer and slower.
    pub tick_ms: u64,
}

impl Default for RunParams {
    fn default() -> Self {
        RunParams {
            chaos_seconds: 20.0,
            drain_seconds: 60.0,
            partitions: 3,
            inventory_consumers: 2,
            tick_ms: 5,
        }
    }
}

impl RunParams {
    pub fn chaos_ms(&self) -> u64 {
        (self.chaos_seconds * 1000.0) as u64
    }

    pub fn drain_ms(&self) -> u64 {
        (self.drain_seconds * 1000.0) as u64
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Spanned<String>,
    description: String,
    pitfall: Spanned<u8>,
    expect: Expect,
    #[serde(default)]
    tolerate: Vec<Invariant>,
    variants: Variants,
    workload: Spanned<Workload>,
    faults: FileFaults,
    run: Option<Spanned<RunParams>>,
    #[serde(default)]
    producer: ProducerConfig,
    payloads: Option<Spanned<Payloads>>,
    orders: Option<Spanned<Orders>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFaults {
    allowed: Vec<Spanned<FaultKind>>,
}

/// A parsed, validated scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub pitfall: u8,
    pub expect: Expect,
    /// Invariants a `violated` scenario may also break without failing.
    pub tolerate: Vec<Invariant>,
    pub variants: Variants,
    pub workload: Workload,
    pub faults: Faults,
    pub run: RunParams,
    /// Producer settings for the services that produce directly.
    pub producer: ProducerConfig,
    /// Pitfall 4: attachments, when the scenario has them.
    pub payloads: Option<Payloads>,
    /// Pitfall 2: the orders service, when the scenario has it.
    pub orders: Option<Orders>,
    #[serde(skip)]
    pub path: PathBuf,
}

impl Scenario {
    /// Component → variant name, as the history's run header records it.
    pub fn variant_names(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::from([
            (
                "producer".to_string(),
                self.variants.producer.name().to_string(),
            ),
            (
                "consumer".to_string(),
                self.variants.consumer.name().to_string(),
            ),
            (
                "context".to_string(),
                self.variants.context.name().to_string(),
            ),
            (
                "ordering".to_string(),
                self.variants.ordering.name().to_string(),
            ),
        ])
        .into_iter()
        .chain(
            self.payloads
                .as_ref()
                .map(|p| ("payloads".to_string(), p.strategy.name().to_string())),
        )
        .chain(
            self.orders
                .as_ref()
                .map(|o| ("orders".to_string(), o.model.name().to_string())),
        )
        .collect()
    }

    pub fn topology(&self) -> Topology {
        Topology::new(
            self.variants.producer,
            self.run.inventory_consumers,
            self.workload.shoppers,
        )
        .with_archive(self.payloads.is_some())
        .with_orders(self.orders.as_ref().map(|o| o.model))
    }
}

/// A located problem with an input file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), location(*line, *column))]
pub struct InputError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

impl InputError {
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        InputError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    fn at(path: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        InputError {
            path: path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }
}

/// Parse and validate one scenario file's text.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, InputError> {
    let file: File = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => InputError::at(path, text, span.start, message),
            None => InputError::whole_file(path, message),
        }
    })?;
    let err = |offset: usize, message: String| InputError::at(path, text, offset, message);

    let name = file.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(err(
            file.name.span().start,
            format!("name {name:?} must be non-empty lowercase letters, digits and dashes"),
        ));
    }
    let pitfall = *file.pitfall.get_ref();
    if !(0..=5).contains(&pitfall) {
        return Err(err(
            file.pitfall.span().start,
            format!("pitfall must be 1 to 5 (or 0 for all of them), not {pitfall}"),
        ));
    }
    let w = file.workload.get_ref();
    let checks = [
        (w.shoppers >= 1, "workload.shoppers must be at least 1"),
        (w.products >= 1, "workload.products must be at least 1"),
        (w.orders >= 1, "workload.orders must be at least 1"),
        (
            w.initial_stock >= 0,
            "workload.initial_stock must not be negative",
        ),
        (w.max_qty >= 1, "workload.max_qty must be at least 1"),
        (
            (0.0..=1.0).contains(&w.refunds),
            "workload.refunds must be between 0 and 1",
        ),
        (
            (1..=100).contains(&w.attempts),
            "workload.attempts must be 1 to 100",
        ),
    ];
    if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(err(file.workload.span().start, message.to_string()));
    }
    let run_offset = file.run.as_ref().map_or(0, |r| r.span().start);
    let run = file.run.map(Spanned::into_inner).unwrap_or_default();
    let r = &run;
    let checks = [
        (
            r.chaos_seconds > 0.0 && r.chaos_seconds <= 3600.0,
            "run.chaos_seconds must be in (0, 3600]",
        ),
        (
            r.drain_seconds > 0.0 && r.drain_seconds <= 3600.0,
            "run.drain_seconds must be in (0, 3600]",
        ),
        (
            (1..=64).contains(&r.partitions),
            "run.partitions must be 1 to 64",
        ),
        (
            (1..=8).contains(&r.inventory_consumers),
            "run.inventory_consumers must be 1 to 8",
        ),
        ((1..=50).contains(&r.tick_ms), "run.tick_ms must be 1 to 50"),
    ];
    if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(err(run_offset, message.to_string()));
    }
    let payloads = match file.payloads {
        None => None,
        Some(p) => {
            let at = p.span().start;
            let p = p.into_inner();
            let checks = [
                (
                    (0.0..=1.0).contains(&p.share),
                    "payloads.share must be between 0 and 1",
                ),
                (
                    p.min_kib >= 1 && p.min_kib <= p.max_kib,
                    "payloads.min_kib must be at least 1 and at most max_kib",
                ),
                (
                    p.max_kib <= 64 * 1024,
                    "payloads.max_kib must be at most 65536 (64 MiB)",
                ),
                (
                    (1..=1024).contains(&p.chunk_kib),
                    "payloads.chunk_kib must be 1 to 1024",
                ),
            ];
            if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
                return Err(err(at, message.to_string()));
            }
            Some(p)
        }
    };
    let orders = match file.orders {
        None => None,
        Some(o) => {
            let at = o.span().start;
            let o = o.into_inner();
            if !(1..=100).contains(&o.snapshot_every) {
                return Err(err(at, "orders.snapshot_every must be 1 to 100".into()));
            }
            if file.variants.producer != Publish::Cdc {
                return Err(err(
                    at,
                    "[orders] needs variants.producer = \"cdc\": the orders service reads the payments, inventory and refunds change logs".into(),
                ));
            }
            Some(o)
        }
    };
    let topo = Topology::new(file.variants.producer, r.inventory_consumers, w.shoppers)
        .with_archive(payloads.is_some())
        .with_orders(orders.as_ref().map(|o| o.model));
    let mut allowed = Vec::new();
    for kind in &file.faults.allowed {
        let k = *kind.get_ref();
        if k.targets(&topo).is_empty() {
            return Err(err(
                kind.span().start,
                format!(
                    "fault kind `{}` does not apply: the `{}` producer variant has no such component",
                    k.name(),
                    file.variants.producer.name()
                ),
            ));
        }
        if !allowed.contains(&k) {
            allowed.push(k);
        }
    }
    Ok(Scenario {
        name: file.name.into_inner(),
        description: file.description,
        pitfall,
        expect: file.expect,
        tolerate: file.tolerate,
        variants: file.variants,
        workload: file.workload.into_inner(),
        faults: Faults { allowed },
        run,
        producer: file.producer,
        payloads,
        orders,
        path: path.to_path_buf(),
    })
}

pub fn load_file(path: &Path) -> Result<Scenario, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read: {e}")))?;
    parse(path, &text)
}

/// Load scenario files and folders (a folder's `*.toml`, sorted). Names must
/// be unique.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Scenario>, InputError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| InputError::whole_file(path, format!("cannot read folder: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(InputError::whole_file(
                    path,
                    "no scenario files (*.toml) in this folder",
                ));
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(InputError::whole_file(path, "no such file or folder"));
        }
    }
    let mut scenarios: Vec<Scenario> = Vec::new();
    for file in files {
        let s = load_file(&file)?;
        if let Some(other) = scenarios.iter().find(|o| o.name == s.name) {
            return Err(InputError::whole_file(
                &file,
                format!(
                    "scenario name `{}` is already used by {}",
                    s.name,
                    other.path.display()
                ),
            ));
        }
        scenarios.push(s);
    }
    Ok(scenarios)
}

/// Find a scenario by name in `dir`, or load it as a path.
pub fn find(name_or_path: &str, dir: &Path) -> Result<Scenario, InputError> {
    let as_path = Path::new(name_or_path);
    if as_path.is_file() {
        return load_file(as_path);
    }
    let all = load(&[dir.to_path_buf()])?;
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    all.iter()
        .find(|s| s.name == name_or_path)
        .cloned()
        .ok_or_else(|| {
            InputError::whole_file(
                dir,
                format!(
                    "no scenario named `{name_or_path}`; known: {}",
                    names.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "dual-write"
description = "naive dual write"
pitfall = 1
expect = { violated = ["no-lost-payment"] }

[variants]
producer = "dual-write"
consumer = "dedupe-event-id"

[workload]
shoppers = 3
products = 2
initial_stock = 20
orders = 30

[faults]
allowed = ["broker-outage", "crash-payments"]
"#;

    fn parse_str(text: &str) -> Result<Scenario, InputError> {
        parse(Path::new("s.toml"), text)
    }

    #[test]
    fn parses_a_good_file() {
        let s = parse_str(GOOD).unwrap();
        assert_eq!(s.expect, Expect::Violated(vec![Invariant::NoLostPayment]));
        assert_eq!(s.variants.producer, Publish::DualWrite);
        assert_eq!(
            s.faults.allowed,
            vec![FaultKind::BrokerOutage, FaultKind::CrashPayments]
        );
        assert_eq!(s.run, RunParams::default());
        let holds = parse_str(&GOOD.replace(r#"{ violated = ["no-lost-payment"] }"#, r#""holds""#))
            .unwrap();
        assert_eq!(holds.expect, Expect::Holds);
    }

    fn error_of(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn a_payloads_section_is_parsed_and_checked() {
        let ok = parse_str(&format!(
            "{GOOD}\n[payloads]\nstrategy = \"chunked-seek\"\n"
        ))
        .unwrap();
        let p = ok.payloads.clone().unwrap();
        assert_eq!(
            (p.strategy.name(), p.share, p.max_kib),
            ("chunked-seek", 0.3, 20 * 1024)
        );
        assert_eq!(ok.variant_names()["payloads"], "chunked-seek");
        let bad = error_of(&format!("{GOOD}\n[payloads]\nstrategy = \"chunked\"\n"));
        assert!(
            bad.starts_with("s.toml:21:12: unknown variant `chunked`"),
            "{bad}"
        );
        let bad = error_of(&format!(
            "{GOOD}\n[payloads]\nstrategy = \"inline\"\nshare = 2.0\n"
        ));
        assert!(
            bad.contains("payloads.share must be between 0 and 1"),
            "{bad}"
        );
        assert!(bad.starts_with("s.toml:20:"), "{bad}");
    }

    #[test]
    fn an_orders_section_is_parsed_and_checked() {
        let cdc = GOOD.replace("producer = \"dual-write\"", "producer = \"cdc\"");
        let ok = parse_str(&format!("{cdc}\n[orders]\nmodel = \"event-sourced\"\n")).unwrap();
        let o = ok.orders.clone().unwrap();
        assert_eq!((o.model, o.snapshot_every), (OrdersModel::EventSourced, 3));
        assert_eq!(ok.variant_names()["orders"], "event-sourced");
        assert_eq!(ok.topology().dbs().len(), 3);
        let bad = error_of(&format!("{GOOD}\n[orders]\nmodel = \"crud-cdc\"\n"));
        assert!(
            bad.starts_with("s.toml:20:") && bad.contains("needs variants.producer = \"cdc\""),
            "{bad}"
        );
        let bad = error_of(&format!(
            "{cdc}\n[orders]\nmodel = \"crud-cdc\"\nsnapshot_every = 0\n"
        ));
        assert!(
            bad.contains("orders.snapshot_every must be 1 to 100"),
            "{bad}"
        );
        let bad = error_of(&format!("{cdc}\n[orders]\nmodel = \"crud\"\n"));
        assert!(
            bad.starts_with("s.toml:21:9: unknown variant `crud`"),
            "{bad}"
        );
    }

    #[test]
    fn bad_files_get_located_messages() {
        insta::assert_snapshot!(error_of(&GOOD.replace("producer = \"dual-write\"", "producer = \"dual-writ\"")),
            @"s.toml:8:12: unknown variant `dual-writ`, expected one of `dual-write`, `produce-first`, `resilient-producer`, `cdc`");
        insta::assert_snapshot!(error_of(&GOOD.replace("orders = 30", "orders = 30\ncolour = 1")),
            @"s.toml:16:1: unknown field `colour`, expected one of `shoppers`, `products`, `initial_stock`, `orders`, `max_qty`, `attempts`, `refunds`");
        insta::assert_snapshot!(error_of(&GOOD.replace("shoppers = 3", "shoppers = \"three\"")),
            @r#"s.toml:12:12: invalid type: string "three", expected u32"#);
        insta::assert_snapshot!(error_of(&GOOD.replace("\"crash-payments\"", "\"crash-cdc\"")),
            @"s.toml:18:29: fault kind `crash-cdc` does not apply: the `dual-write` producer variant has no such component");
        insta::assert_snapshot!(error_of(&GOOD.replace("no-lost-payment", "no-lost-paymnt")),
            @"s.toml:5:24: unknown variant `no-lost-paymnt`, expected one of `stock-conservation`, `no-lost-payment`, `no-double-effect`, `no-phantom`, `converges`, `queue`, `context-complete`, `per-key-order`, `payload-integrity`, `no-dangling-reference`, `no-partial-assembly`, `read-after-write`, `view-convergence`, `snapshot-consistency`");
        insta::assert_snapshot!(error_of(&GOOD.replace(r#"{ violated = ["no-lost-payment"] }"#, r#""mostly""#)),
            @r#"s.toml:5:10: invalid value: string "mostly", expected "holds" or { violated = ["invariant", ...] }"#);
        insta::assert_snapshot!(error_of(&format!("{GOOD}\n[run]\ntick_ms = 0\n")),
            @"s.toml:20:1: run.tick_ms must be 1 to 50");
        insta::assert_snapshot!(error_of(&GOOD.replace("pitfall = 1", "pitfall = 9")),
            @"s.toml:4:11: pitfall must be 1 to 5 (or 0 for all of them), not 9");
        insta::assert_snapshot!(error_of(&GOOD.replace("[faults]\nallowed = [\"broker-outage\", \"crash-payments\"]\n", "")),
            @"s.toml:1:1: missing field `faults`");
    }
}
