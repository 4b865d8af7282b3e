//! The benches' settings from the environment, and what /proc says about this process and the
//! machine (Linux only: zeros elsewhere).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A comma-separated list from the environment, or `default`.
pub fn env_list(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A number from the environment, or `default` when unset or unreadable.
pub fn env_number<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// CPU and disk counters, read at both ends of a measured window and subtracted.
#[derive(Default, Clone, Copy)]
pub struct Usage {
    /// CPU ticks of the threads whose name starts with the prefix given to `now`.
    pub thread_ticks: u64,
    pub process_ticks: u64,
    /// Bytes this process has had written to storage.
    pub write_bytes: u64,
    pub machine_busy_ticks: u64,
    pub machine_total_ticks: u64,
}

impl Usage {
    /// Clock ticks per second of /proc's CPU times (USER_HZ; 100 on Linux).
    pub const HZ: f64 = 100.0;

    /// The counters now; `threads` names the threads counted in `thread_ticks` by prefix.
    pub fn now(threads: &str) -> Self {
        let ticks_of = |stat: &str| -> u64 {
            // Fields after the command name (which is in parentheses): utime and stime are
            // the 12th and 13th of them.
            stat.rsplit_once(')')
                .map(|(_, rest)| {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                })
                .unwrap_or(0)
        };
        let thread_ticks = tasks_named(threads)
            .map(|t| ticks_of(&read(t.join("stat"))))
            .sum();
        let write_bytes = read("/proc/self/io")
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let cpu: Vec<u64> = read("/proc/stat")
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        Self {
            thread_ticks,
            process_ticks: ticks_of(&read("/proc/self/stat")),
            write_bytes,
            machine_busy_ticks: total - idle,
            machine_total_ticks: total,
        }
    }

    /// Cores this process used on average from `self` to `later`, over `seconds`.
    pub fn process_cores(&self, later: &Self, seconds: f64) -> f64 {
        later.process_ticks.saturating_sub(self.process_ticks) as f64 / Self::HZ / seconds
    }

    /// The share of the machine's CPU time that was busy from `self` to `later`.
    pub fn machine_busy(&self, later: &Self) -> f64 {
        later
            .machine_busy_ticks
            .saturating_sub(self.machine_busy_ticks) as f64
            / later
                .machine_total_ticks
                .saturating_sub(self.machine_total_ticks)
                .max(1) as f64
    }
}

fn read(path: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// This process's threads (their /proc directories) whose name starts with `prefix`.
fn tasks_named(prefix: &str) -> impl Iterator<Item = std::path::PathBuf> + '_ {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| t.path())
        .filter(move |t| read(t.join("comm")).starts_with(prefix))
}

/// Nanoseconds the threads named `prefix…` have run (`schedstat`, first field): finer than
/// the ticks of `Usage`.
pub fn threads_cpu_ns(prefix: &str) -> u64 {
    tasks_named(prefix)
        .filter_map(|t| {
            read(t.join("schedstat"))
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// This process's anonymous resident memory (heap and stacks, not mapped files), in KiB.
pub fn rss_anon_kib() -> u64 {
    read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples `RssAnon` on its own thread until stopped, keeping the highest value: a peak
/// between two reads at the ends of a run would otherwise be missed.
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    const EVERY: Duration = Duration::from_millis(50);

    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                let mut peak = rss_anon_kib();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Self::EVERY);
                    peak = peak.max(rss_anon_kib());
                }
                peak
            })
            .expect("spawn the RssAnon sampler");
        Self { stop, thread }
    }

    /// The highest `RssAnon` seen, in MiB.
    pub fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.thread.join().expect("RssAnon sampler");
        peak.max(rss_anon_kib()) as f64 / 1024.0
    }
}
