//! The services' log lines in simulated time: `repro --log` prints them,
//! `trace` captures them.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Stamps log lines with simulated time instead of the wall clock.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>9.3}s", t.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}

/// Install the process's log subscriber: events at `level` and above,
/// inside every span (turmoil's `node{name=…}` names the host, `request{…}`
/// the request), written by `writer`.
fn install<W>(level: Level, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        tracing_subscriber::filter::filter_fn(move |meta| meta.is_span() || *meta.level() <= level);
    let fmt = tracing_subscriber::fmt::layer()
        .with_timer(SimTime)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .init();
}

/// Print log lines to stderr.
pub fn to_stderr(level: Level) {
    install(level, std::io::stderr, std::io::stderr().is_terminal());
}

/// Print librdkafka's debug lines (and every service's warnings) on stderr,
/// stamped with the time since the run began: what real mode shows when
/// [`pitfall_real::kafka::RDKAFKA_DEBUG_ENV`] is set.
pub fn rdkafka_to_stderr() {
    let filter = tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_span() || meta.target() == "librdkafka" || *meta.level() <= Level::WARN
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(false)
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .init();
}

/// Capture log lines in memory; read them back with [`Captured::lines`].
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    pub fn install(level: Level) -> Captured {
        let captured = Captured::default();
        install(level, captured.clone(), false);
        captured
    }

    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }
}
