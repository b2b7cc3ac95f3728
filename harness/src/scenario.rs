//! Scenario files: TOML, parsed strictly. The harness reads the common part
//! (name, system, expectation, faults, run timing); the system reads its own
//! sections ([`crate::system::System::configure`]). Any mistake — an unknown
//! key, a wrong type, an unknown variant, fault or invariant, a fault the
//! configured system cannot have — is an error naming the file, line and
//! column.

use crate::faults::{self, DrawnConfig, FaultPlan, FaultSpec};
use crate::system::{Config, Registry, System, Topology};
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
/// A value with its place in the file, for located errors in a system's
/// own checks ([`ScenarioText::error_at`] its `span().start`).
pub use toml::Spanned;

/// What a scenario expects of the sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every invariant holds on every seed.
    Holds,
    /// Each listed invariant is violated in at least one seed; every other
    /// invariant holds (unless tolerated).
    Violated(Vec<String>),
}

impl Expect {
    pub fn expected(&self) -> &[String] {
        match self {
            Expect::Holds => &[],
            Expect::Violated(list) => list,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Holds => f.write_str("holds"),
            Expect::Violated(list) => write!(f, "violates {}", list.join(", ")),
        }
    }
}

impl Serialize for Expect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Expect::Holds => s.serialize_str("holds"),
            Expect::Violated(list) => {
                #[derive(Serialize)]
                struct V<'a> {
                    violated: &'a [String],
                }
                V { violated: list }.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The report's form: "holds" or { "violated": [...] }.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Json {
            Word(String),
            Violated { violated: Vec<String> },
        }
        match Json::deserialize(d)? {
            Json::Word(w) if w == "holds" => Ok(Expect::Holds),
            Json::Word(w) => Err(de::Error::invalid_value(
                de::Unexpected::Str(&w),
                &r#""holds" or { "violated": [...] }"#,
            )),
            Json::Violated { violated } => Ok(Expect::Violated(violated)),
        }
    }
}

/// `expect` as written: `"holds"` or `{ violated = [...] }`, the names
/// located for the checks against the system's invariants.
enum ExpectFile {
    Holds,
    Violated(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for ExpectFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ExpectVisitor;
        impl<'de> Visitor<'de> for ExpectVisitor {
            type Value = ExpectFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""holds" or { violated = ["invariant", ...] }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExpectFile, E> {
                match v {
                    "holds" => Ok(ExpectFile::Holds),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExpectFile, A::Error> {
                let mut violated = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "violated" => violated = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["violated"])),
                    }
                }
                match violated {
                    Some(list) if Vec::is_empty(&list) => Err(de::Error::custom(
                        "`violated` must name at least one invariant",
                    )),
                    Some(list) => Ok(ExpectFile::Violated(list)),
                    None => Err(de::Error::missing_field("violated")),
                }
            }
        }
        d.deserialize_any(ExpectVisitor)
    }
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

    fn check(&self) -> Result<(), &'static str> {
        let checks = [
            (
                self.chaos_seconds > 0.0 && self.chaos_seconds <= 3600.0,
                "run.chaos_seconds must be in (0, 3600]",
            ),
            (
                self.drain_seconds > 0.0 && self.drain_seconds <= 3600.0,
                "run.drain_seconds must be in (0, 3600]",
            ),
            (
                (1..=64).contains(&self.partitions),
                "run.partitions must be 1 to 64",
            ),
            (
                (1..=50).contains(&self.tick_ms),
                "run.tick_ms must be 1 to 50",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message),
            None => Ok(()),
        }
    }
}

/// The keys every scenario file may have, whatever its system.
const COMMON_KEYS: [&str; 10] = [
    "name",
    "description",
    "pitfall",
    "system",
    "expect",
    "tolerate",
    "sometimes",
    "sometimes_min_seeds",
    "faults",
    "run",
];

/// Seeds a sweep must run of a scenario before its `sometimes` list is
/// judged, unless the scenario says otherwise: a rare event may well miss
/// a handful of seeds.
pub const SOMETIMES_MIN_SEEDS: u64 = 50;

#[derive(Deserialize)]
struct Common {
    name: Spanned<String>,
    description: String,
    pitfall: Option<Spanned<u8>>,
    expect: ExpectFile,
    #[serde(default)]
    tolerate: Vec<Spanned<String>>,
    #[serde(default)]
    sometimes: Vec<Spanned<String>>,
    sometimes_min_seeds: Option<Spanned<u64>>,
    faults: FileFaults,
    run: Option<Spanned<RunParams>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFaults {
    allowed: Vec<Spanned<String>>,
    /// Allowed faults every seed turns on; the rest are on in about half.
    #[serde(default)]
    always: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
struct WhichSystem {
    system: Option<Spanned<String>>,
}

/// A parsed, validated scenario.
#[derive(Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Which of the five pitfalls it shows (0 for all of them), if any.
    pub pitfall: Option<u8>,
    pub system: Arc<dyn System>,
    pub config: Arc<dyn Config>,
    pub topology: Topology,
    pub expect: Expect,
    /// Invariants a `violated` scenario may also break without failing.
    pub tolerate: Vec<String>,
    /// Coverage events ([`crate::coverage`]) some seed of a sweep must hit.
    pub sometimes: Vec<String>,
    /// Seeds a sweep must run before `sometimes` is judged.
    pub sometimes_min_seeds: u64,
    /// The faults it allows, in the order the draw walks them.
    pub faults: Vec<FaultSpec>,
    pub run: RunParams,
    pub path: PathBuf,
    /// SHA-256 of the file's text: which version of the file a report ran.
    pub source_sha256: String,
    /// A plan file's configuration and plan, replayed instead of every
    /// seed's draw ([`crate::plan_file`]).
    pub pinned: Option<Arc<crate::plan_file::Pinned>>,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("system", &self.system.name())
            .field("variants", &self.variants())
            .field("expect", &self.expect)
            .field("faults", &self.faults)
            .field("run", &self.run)
            .finish()
    }
}

impl Scenario {
    /// Component → variant name, as the history's run header records it.
    pub fn variants(&self) -> BTreeMap<String, String> {
        self.config.variants()
    }

    /// The drawn configuration and fault plan of a seed (a plan file's,
    /// when one is pinned).
    pub fn plan(&self, seed: u64) -> (DrawnConfig, FaultPlan) {
        match &self.pinned {
            Some(p) => (p.config.clone(), p.plan.clone()),
            None => faults::draw(seed, &self.faults, self.run.chaos_ms()),
        }
    }

    /// Every invariant checked on this scenario's histories.
    pub fn invariants(&self) -> Vec<crate::checkers::Invariant> {
        crate::checkers::all(&self.system)
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
}

/// One scenario file's text, as a system reads its sections from it.
#[derive(Clone, Copy)]
pub struct ScenarioText<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl ScenarioText<'_> {
    /// Deserialize the whole file into `T`, which names the sections it
    /// reads and ignores the others (the harness checks the top-level
    /// keys). Errors are located.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, InputError> {
        toml::from_str(self.text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => self.error_at(span.start, message),
                None => InputError::whole_file(self.path, message),
            }
        })
    }

    /// Check a section's values: the first check that fails is an error at
    /// `at` (the section's [`Spanned`] start) with its message.
    pub fn require(&self, at: usize, checks: &[(bool, &str)]) -> Result<(), InputError> {
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(self.error_at(at, *message)),
            None => Ok(()),
        }
    }

    /// An optional section checked by `check` (its error located at the
    /// section), or its defaults when the file has none.
    pub fn checked_section<T: Default>(
        &self,
        section: Option<Spanned<T>>,
        check: impl Fn(&T) -> Result<(), &'static str>,
    ) -> Result<T, InputError> {
        let Some(section) = section else {
            return Ok(T::default());
        };
        let at = section.span().start;
        let value = section.into_inner();
        check(&value).map_err(|message| self.error_at(at, message))?;
        Ok(value)
    }

    /// An error at a byte offset of the file (a [`Spanned`] value's start).
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> InputError {
        let (line, column) = line_and_column(self.text, offset);
        InputError {
            path: self.path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }
}

/// The 1-based line and column (in characters, as an editor counts them)
/// of a byte offset of `text`.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Decode a file's bytes as UTF-8, or say where the first invalid byte is.
pub fn utf8_text(path: &Path, bytes: Vec<u8>) -> Result<String, InputError> {
    String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))
}

/// [`utf8_text`] without taking the bytes: the text they are.
pub fn utf8_str<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, InputError> {
    std::str::from_utf8(bytes).map_err(|e| not_utf8(path, bytes, e))
}

/// Where the first invalid byte of `bytes` is, as bad input.
fn not_utf8(path: &Path, bytes: &[u8], error: std::str::Utf8Error) -> InputError {
    let valid = error.valid_up_to();
    let text = String::from_utf8_lossy(&bytes[..valid]).into_owned();
    let (line, column) = line_and_column(&text, valid);
    InputError {
        path: path.to_path_buf(),
        line: Some(line),
        column: Some(column),
        message: format!("not UTF-8: invalid byte 0x{:02x}", bytes[valid]),
    }
}

/// Parse and validate one scenario file's text.
pub fn parse(path: &Path, text: &str, registry: &Registry) -> Result<Scenario, InputError> {
    let file = ScenarioText { path, text };
    let system = which_system(&file, registry)?;
    check_top_level_keys(&file, system.sections())?;
    let common: Common = file.parse()?;
    let err = |offset: usize, message: String| file.error_at(offset, message);

    let name = common.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(err(
            common.name.span().start,
            format!("name {name:?} must be non-empty lowercase letters, digits and dashes"),
        ));
    }
    let pitfall = match &common.pitfall {
        Some(p) if *p.get_ref() > 5 => {
            return Err(err(
                p.span().start,
                format!(
                    "pitfall must be 1 to 5 (or 0 for all of them), not {}",
                    p.get_ref()
                ),
            ))
        }
        p => p.as_ref().map(|p| *p.get_ref()),
    };
    let run_offset = common.run.as_ref().map_or(0, |r| r.span().start);
    let run = common.run.map(Spanned::into_inner).unwrap_or_default();
    run.check().map_err(|m| err(run_offset, m.to_string()))?;

    let config = system.configure(&file)?;
    let topology = config.topology();
    topology
        .validate()
        .map_err(|m| InputError::whole_file(path, format!("the system's topology: {m}")))?;

    let known: Vec<&str> = crate::checkers::all(&system)
        .iter()
        .map(|i| i.name)
        .collect();
    let invariant = |s: &Spanned<String>| -> Result<String, InputError> {
        if known.contains(&s.get_ref().as_str()) {
            Ok(s.get_ref().clone())
        } else {
            Err(err(
                s.span().start,
                format!(
                    "unknown invariant `{}`, expected one of {}",
                    s.get_ref(),
                    known.join(", ")
                ),
            ))
        }
    };
    let expect = match &common.expect {
        ExpectFile::Holds => Expect::Holds,
        ExpectFile::Violated(violated) => {
            Expect::Violated(violated.iter().map(invariant).collect::<Result<_, _>>()?)
        }
    };
    let tolerate = common
        .tolerate
        .iter()
        .map(invariant)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(both) = common
        .tolerate
        .iter()
        .find(|t| expect.expected().contains(t.get_ref()))
    {
        return Err(err(
            both.span().start,
            format!(
                "`{}` is both expected to be violated and tolerated; list it in one of them",
                both.get_ref()
            ),
        ));
    }

    let sometimes = sometimes(&common.sometimes, &system, &err)?;
    let sometimes_min_seeds = match &common.sometimes_min_seeds {
        Some(n) if *n.get_ref() == 0 => {
            return Err(err(
                n.span().start,
                "sometimes_min_seeds must be at least 1".into(),
            ))
        }
        Some(n) => *n.get_ref(),
        None => SOMETIMES_MIN_SEEDS,
    };

    let mut faults: Vec<FaultSpec> = Vec::new();
    for name in &common.faults.allowed {
        let spec =
            FaultSpec::resolve(name.get_ref(), &topology).map_err(|m| err(name.span().start, m))?;
        if !faults.iter().any(|f| f.name == spec.name) {
            faults.push(spec);
        }
    }
    for name in &common.faults.always {
        let spec = faults.iter_mut().find(|f| &f.name == name.get_ref());
        match spec {
            Some(spec) => spec.always = true,
            None => {
                return Err(err(
                    name.span().start,
                    format!(
                        "`{}` is in `always` but not in `allowed`; `always` pins allowed faults on",
                        name.get_ref()
                    ),
                ))
            }
        }
    }
    if let Err(m) = FaultSpec::limit_crash_points(&mut faults) {
        let at = common
            .faults
            .allowed
            .iter()
            .find(|n| n.get_ref() == "crash-point")
            .map_or(0, |n| n.span().start);
        return Err(err(at, m));
    }
    faults::canonical_order(&mut faults);
    Ok(Scenario {
        name: common.name.into_inner(),
        description: common.description,
        pitfall,
        system,
        config,
        topology,
        expect,
        tolerate,
        sometimes,
        sometimes_min_seeds,
        faults,
        run,
        path: path.to_path_buf(),
        source_sha256: pitfall_ports::digest::sha256_hex(text.as_bytes()),
        pinned: None,
    })
}

/// The `sometimes` list: coverage events the harness or the system knows,
/// each once.
fn sometimes(
    listed: &[Spanned<String>],
    system: &Arc<dyn System>,
    err: &dyn Fn(usize, String) -> InputError,
) -> Result<Vec<String>, InputError> {
    let mut known: Vec<String> = crate::coverage::catalog()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    known.extend(system.coverage_events().iter().map(|(n, _)| n.to_string()));
    let mut names: Vec<String> = Vec::new();
    for s in listed {
        let name = s.get_ref();
        if !known.contains(name) {
            return Err(err(
                s.span().start,
                format!(
                    "unknown coverage event `{name}`, expected one of {}",
                    known.join(", ")
                ),
            ));
        }
        if names.contains(name) {
            return Err(err(s.span().start, format!("`{name}` is listed twice")));
        }
        names.push(name.clone());
    }
    Ok(names)
}

/// The system a file names, or the registry's default.
fn which_system(
    file: &ScenarioText<'_>,
    registry: &Registry,
) -> Result<Arc<dyn System>, InputError> {
    let which: WhichSystem = file.parse()?;
    match which.system {
        None => Ok(registry.default_system().clone()),
        Some(name) => registry.get(name.get_ref()).cloned().ok_or_else(|| {
            file.error_at(
                name.span().start,
                format!(
                    "unknown system `{}`, expected one of {}",
                    name.get_ref(),
                    registry.names().join(", ")
                ),
            )
        }),
    }
}

/// Every top-level key is a common one or one of the system's sections.
fn check_top_level_keys(file: &ScenarioText<'_>, sections: &[&str]) -> Result<(), InputError> {
    let keys: BTreeMap<Spanned<String>, IgnoredAny> = file.parse()?;
    for key in keys.keys() {
        let k = key.get_ref().as_str();
        if !COMMON_KEYS.contains(&k) && !sections.contains(&k) {
            let mut expected: Vec<&str> = COMMON_KEYS.to_vec();
            expected.extend(sections);
            return Err(file.error_at(
                key.span().start,
                format!(
                    "unknown field `{k}`, expected one of {}",
                    expected.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub fn load_file(path: &Path, registry: &Registry) -> Result<Scenario, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read: {e}")))?;
    let text = utf8_text(path, bytes)?;
    parse(path, &text, registry)
}

/// Load scenario files and folders (a folder's `*.toml`, sorted). Names must
/// be unique.
pub fn load(paths: &[PathBuf], registry: &Registry) -> Result<Vec<Scenario>, InputError> {
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
            return Err(InputError::whole_file(
                path,
                format!(
                    "no such file or folder (relative to {}); name scenario files or folders, or run from the folder that holds `scenarios/`",
                    std::env::current_dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|_| "the current folder".into())
                ),
            ));
        }
    }
    let mut scenarios: Vec<Scenario> = Vec::new();
    for file in files {
        let s = load_file(&file, registry)?;
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

/// Find a scenario by path, or by name or file stem (`1-cdc`) in `dir`.
pub fn find(name_or_path: &str, dir: &Path, registry: &Registry) -> Result<Scenario, InputError> {
    let as_path = Path::new(name_or_path);
    if as_path.is_file() {
        return load_file(as_path, registry);
    }
    let all = load(&[dir.to_path_buf()], registry)?;
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    let stem = |s: &Scenario| s.path.file_stem().map(|x| x.to_string_lossy().into_owned());
    all.iter()
        .find(|s| s.name == name_or_path)
        .or_else(|| {
            all.iter()
                .find(|s| stem(s).as_deref() == Some(name_or_path))
        })
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
    use crate::testing::ToySystem;

    const GOOD: &str = r#"
name = "toy"
description = "a toy"
pitfall = 1
expect = { violated = ["toy-invariant"] }

[variants]
mode = "naive"

[faults]
allowed = ["broker-outage", "crash-workers"]
"#;

    fn registry() -> Registry {
        Registry::new(vec![Arc::new(ToySystem)]).unwrap()
    }

    fn parse_str(text: &str) -> Result<Scenario, InputError> {
        parse(Path::new("s.toml"), text, &registry())
    }

    fn error_of(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_good_file() {
        let s = parse_str(GOOD).unwrap();
        assert_eq!(s.expect, Expect::Violated(vec!["toy-invariant".into()]));
        assert_eq!(s.system.name(), "toy");
        assert_eq!(s.variants()["mode"], "naive");
        let names: Vec<&str> = s.faults.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["broker-outage", "crash-workers"]);
        assert_eq!(s.faults[1].targets, ["worker"]);
        assert_eq!(s.run, RunParams::default());
        let holds =
            parse_str(&GOOD.replace(r#"{ violated = ["toy-invariant"] }"#, r#""holds""#)).unwrap();
        assert_eq!(holds.expect, Expect::Holds);
        let generic = parse_str(&GOOD.replace("toy-invariant", "queue")).unwrap();
        assert_eq!(generic.expect, Expect::Violated(vec!["queue".into()]));
    }

    #[test]
    fn always_pins_allowed_faults_on() {
        let s = parse_str(&format!("{GOOD}always = [\"crash-workers\"]\n")).unwrap();
        let pinned: Vec<(&str, bool)> = s
            .faults
            .iter()
            .map(|f| (f.name.as_str(), f.always))
            .collect();
        assert_eq!(pinned, [("broker-outage", false), ("crash-workers", true)]);
        let off = (0..40)
            .filter(|seed| !s.plan(*seed).0.enabled.contains(&"crash-workers".into()))
            .count();
        assert_eq!(off, 0, "an `always` fault is on in every seed");
    }

    #[test]
    fn columns_count_characters_and_non_utf8_is_located() {
        assert_eq!(line_and_column("ab\nüx", 5), (2, 2), "after the two-byte ü");
        assert_eq!(line_and_column("ab\nüx", 3), (2, 1));
        assert_eq!(
            line_and_column("ab\nüx", 4),
            (2, 1),
            "inside a character: its start"
        );
        let err = utf8_text(Path::new("s.toml"), b"a = 1\nb = \"\xc3\"\n".to_vec()).unwrap_err();
        assert_eq!(err.to_string(), "s.toml:2:6: not UTF-8: invalid byte 0xc3");
        assert_eq!(
            utf8_text(Path::new("s.toml"), b"ok".to_vec()).unwrap(),
            "ok"
        );
        let bad = b"a = 1\nb = \"\xc3\"\n";
        let borrowed = utf8_str(Path::new("s.toml"), bad).unwrap_err();
        assert_eq!(
            borrowed.to_string(),
            err.to_string(),
            "the same message borrowed"
        );
        assert_eq!(utf8_str(Path::new("s.toml"), b"ok").unwrap(), "ok");
    }

    #[test]
    fn bad_files_get_located_messages() {
        insta::assert_snapshot!(error_of(&GOOD.replace("mode = \"naive\"", "mode = \"naiv\"")),
            @"s.toml:8:8: unknown variant `naiv`, expected `naive` or `careful`");
        insta::assert_snapshot!(error_of(&GOOD.replace("[variants]", "colour = 1\n[variants]")),
            @"s.toml:7:1: unknown field `colour`, expected one of name, description, pitfall, system, expect, tolerate, sometimes, sometimes_min_seeds, faults, run, variants");
        insta::assert_snapshot!(error_of(&GOOD.replace("\"crash-workers\"", "\"crash-nobody\"")),
            @"s.toml:11:29: unknown fault `crash-nobody`, expected one of db-outage, db-slow, db-crash, db-lost-ack, broker-outage, broker-slow, broker-crash, broker-lost-ack, store-outage, store-slow, partition, crash, duplicate-delivery, reorder, crash-point, fail-point, api-outage, api-slow, api-lost-reply, crash-workers, crash:<host>");
        insta::assert_snapshot!(error_of(&GOOD.replace("\"crash-workers\"", "\"crash:db\"")),
            @"s.toml:11:29: `crash:db`: no service host `db`; the services are api, worker");
        insta::assert_snapshot!(error_of(&GOOD.replace("toy-invariant", "toy-invariannt")),
            @"s.toml:5:24: unknown invariant `toy-invariannt`, expected one of toy-invariant, converges, queue, context-complete");
        insta::assert_snapshot!(error_of(&GOOD.replace(r#"{ violated = ["toy-invariant"] }"#, r#""mostly""#)),
            @r#"s.toml:5:10: invalid value: string "mostly", expected "holds" or { violated = ["invariant", ...] }"#);
        insta::assert_snapshot!(error_of(&format!("{GOOD}\n[run]\ntick_ms = 0\n")),
            @"s.toml:13:1: run.tick_ms must be 1 to 50");
        insta::assert_snapshot!(error_of(&GOOD.replace("pitfall = 1", "pitfall = 9")),
            @"s.toml:4:11: pitfall must be 1 to 5 (or 0 for all of them), not 9");
        insta::assert_snapshot!(error_of(&GOOD.replace("[faults]\nallowed = [\"broker-outage\", \"crash-workers\"]\n", "")),
            @"s.toml:1:1: missing field `faults`");
        insta::assert_snapshot!(error_of(&GOOD.replace("[variants]", "tolerate = [\"toy-invariant\"]\n[variants]")),
            @"s.toml:7:13: `toy-invariant` is both expected to be violated and tolerated; list it in one of them");
        insta::assert_snapshot!(error_of(&GOOD.replace("description = \"a toy\"", "description = \"ü\" x")),
            @"s.toml:3:19: unexpected key or value, expected newline, `#`");
        insta::assert_snapshot!(error_of(&format!("{GOOD}always = [\"broker-slow\"]\n")),
            @"s.toml:12:11: `broker-slow` is in `always` but not in `allowed`; `always` pins allowed faults on");
        insta::assert_snapshot!(error_of(&format!("system = \"bank\"\n{GOOD}")),
            @"s.toml:1:10: unknown system `bank`, expected one of toy");
    }
}
