//! What the benchmarks measure a process by: its CPU time and its peak
//! resident set, both of this process alone.

fn rusage() -> libc::rusage {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a
    // valid value of it.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// User plus system CPU time of this process so far.
pub fn cpu_seconds() -> f64 {
    let u = rusage();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// This process's peak resident set size in kilobytes: `VmHWM`, which
/// (unlike `getrusage`'s `ru_maxrss`) starts again at `exec`, so a parent's
/// peak does not count in its child's.
pub fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(rusage().ru_maxrss as u64)
}
