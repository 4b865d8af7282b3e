//! The load generator. It works like wrk, with which ../shared/PERFORMANCE.md was measured: two
//! threads drive all the HTTP/1.1 keep-alive connections without blocking, each connection
//! sending its next request when the last is answered, so it takes little CPU from a server on
//! the same two cores. What each connection sends, and what it makes of the answers, is a
//! `Workload`'s business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The threads of the load generator; `Usage::now(LOAD_THREADS)` counts their CPU.
pub const LOAD_THREADS: &str = "bench-load";

/// What the connections of one run send.
pub trait Workload: Send + Sync + 'static {
    /// What one connection keeps across its requests (for instance the ids it was answered).
    type Conn: Send + 'static;

    fn open(&self, conn: usize) -> Self::Conn;

    /// Writes the `n`-th request of connection `conn` into `out` (empty); false when this
    /// connection has no more work (the run then ends when every connection has none).
    fn request(&self, state: &mut Self::Conn, conn: usize, n: usize, out: &mut String) -> bool;

    /// Sees every answer; status 0 when the connection broke (it is opened again).
    fn answered(&self, _state: &mut Self::Conn, _n: usize, _status: u16, _body: &[u8]) {}

    /// Whether an answer is a success; the others are counted, by status, as errors.
    fn success(&self, status: u16) -> bool {
        (200..300).contains(&status)
    }
}

/// Appends an HTTP/1.1 request to `out`.
pub fn write_request(
    out: &mut String,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) {
    for part in [method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n"] {
        out.push_str(part);
    }
    for (name, value) in headers {
        for part in [*name, ": ", *value, "\r\n"] {
            out.push_str(part);
        }
    }
    if !body.is_empty() || method != "GET" {
        out.push_str("Content-Length: ");
        out.push_str(&body.len().to_string());
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
}

/// What a run measured.
pub struct Outcome<C> {
    /// Requests answered over the whole run, warm-up included.
    pub sent: usize,
    /// Requests started after the warm-up: the ones the rate and the latencies are of.
    pub measured: usize,
    /// From the end of the warm-up to the stop, or to the moment the work ran out.
    pub seconds: f64,
    /// Whether every connection ran out of work before the run was stopped.
    pub ran_out: bool,
    /// Microseconds, of the measured requests.
    pub latency: Histogram<u64>,
    /// Answers that were not a success, by status (0: broken connection), whole run.
    pub errors: BTreeMap<u16, usize>,
    /// Each connection's state, in connection order.
    pub states: Vec<C>,
}

impl<C> Outcome<C> {
    pub fn rate(&self) -> f64 {
        self.measured as f64 / self.seconds.max(1e-9)
    }

    /// A latency percentile (0–100), in ms.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.latency.value_at_percentile(p) as f64 / 1000.0
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// "0", or the count with its statuses: "12 (409 ×10, 0 ×2)".
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        let by_status: Vec<String> = self
            .errors
            .iter()
            .map(|(status, n)| format!("{status} ×{n}"))
            .collect();
        format!("{} ({})", self.error_count(), by_status.join(", "))
    }
}

struct Shared {
    stop: AtomicBool,
    /// Connections still sending.
    active: AtomicUsize,
    measuring_from: Instant,
}

struct Connection<C> {
    state: C,
    sent: usize,
    measured: usize,
    latency: Histogram<u64>,
    errors: BTreeMap<u16, usize>,
    ran_out: Option<Instant>,
}

/// A run in progress: started by `start`, ended by `stop`.
pub struct Running<C> {
    runtime: tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<Connection<C>>>,
    shared: Arc<Shared>,
}

/// One microsecond to a minute, two significant digits: a few KiB per connection, so the
/// generator's memory stays small however many requests a run sends.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("histogram bounds")
}

/// Opens `connections` connections to `addr` and starts sending; requests started in the first
/// `warmup` are answered but not measured.
pub fn start<W: Workload>(
    addr: SocketAddr,
    workload: Arc<W>,
    connections: usize,
    warmup: Duration,
) -> Running<W::Conn> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(LOAD_THREADS)
        .enable_io()
        .build()
        .expect("load runtime");
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        active: AtomicUsize::new(connections),
        measuring_from: Instant::now() + warmup,
    });
    let tasks = (0..connections)
        .map(|c| runtime.spawn(connection(addr, workload.clone(), shared.clone(), c)))
        .collect();
    Running {
        runtime,
        tasks,
        shared,
    }
}

impl<C: Send + 'static> Running<C> {
    /// Waits until the warm-up is over, then for `limit` (`None`: no limit), or less if every
    /// connection runs out of work first.
    pub fn wait(&self, limit: Option<Duration>) {
        self.wait_until(Some(self.shared.measuring_from));
        self.wait_until(limit.map(|d| Instant::now() + d));
    }

    /// The end of the warm-up, or earlier if the work runs out.
    pub fn wait_warmup(&self) {
        self.wait_until(Some(self.shared.measuring_from));
    }

    fn wait_until(&self, deadline: Option<Instant>) {
        while self.shared.active.load(Ordering::Relaxed) > 0 {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return;
            }
            let step = Duration::from_millis(10);
            std::thread::sleep(deadline.map_or(step, |d| (d - now).min(step)));
        }
    }

    /// Stops every connection (after its request in flight) and gathers what they measured.
    pub fn stop(self) -> Outcome<C> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let stopped = Instant::now();
        let mut outcome = Outcome {
            sent: 0,
            measured: 0,
            seconds: 0.0,
            ran_out: true,
            latency: histogram(),
            errors: BTreeMap::new(),
            states: Vec::with_capacity(self.tasks.len()),
        };
        let mut end = None::<Instant>;
        for task in self.tasks {
            let c = self.runtime.block_on(task).expect("load connection");
            outcome.sent += c.sent;
            outcome.measured += c.measured;
            outcome
                .latency
                .add(&c.latency)
                .expect("same histogram bounds");
            for (status, n) in c.errors {
                *outcome.errors.entry(status).or_default() += n;
            }
            match c.ran_out {
                Some(at) => end = Some(end.map_or(at, |e| e.max(at))),
                None => outcome.ran_out = false,
            }
            outcome.states.push(c.state);
        }
        let end = if outcome.ran_out {
            end.unwrap_or(stopped)
        } else {
            stopped
        };
        outcome.seconds = end
            .saturating_duration_since(self.shared.measuring_from)
            .as_secs_f64();
        outcome
    }
}

async fn connection<W: Workload>(
    addr: SocketAddr,
    workload: Arc<W>,
    shared: Arc<Shared>,
    c: usize,
) -> Connection<W::Conn> {
    let mut me = Connection {
        state: workload.open(c),
        sent: 0,
        measured: 0,
        latency: histogram(),
        errors: BTreeMap::new(),
        ran_out: None,
    };
    let (mut req, mut line, mut body) = (String::new(), String::new(), Vec::new());
    let mut stream: Option<BufReader<TcpStream>> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        req.clear();
        if !workload.request(&mut me.state, c, me.sent, &mut req) {
            me.ran_out = Some(Instant::now());
            break;
        }
        let t = Instant::now();
        if stream.is_none() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    // Small requests must not wait for the previous segment's ACK.
                    s.set_nodelay(true).expect("nodelay");
                    stream = Some(BufReader::new(s));
                }
                Err(_) => {
                    // Nothing listens: every further request would fail the same way at once.
                    *me.errors.entry(0).or_default() += 1;
                    break;
                }
            }
        }
        let Some(reader) = stream.as_mut() else {
            break;
        };
        let status = match exchange(reader, req.as_bytes(), &mut line, &mut body).await {
            Ok((status, keep_alive)) => {
                if !keep_alive {
                    stream = None;
                }
                status
            }
            Err(_) => {
                stream = None;
                body.clear();
                0
            }
        };
        workload.answered(&mut me.state, me.sent, status, &body);
        if !workload.success(status) {
            *me.errors.entry(status).or_default() += 1;
        }
        if t >= shared.measuring_from {
            me.measured += 1;
            me.latency.saturating_record(t.elapsed().as_micros() as u64);
        }
        me.sent += 1;
    }
    shared.active.fetch_sub(1, Ordering::Relaxed);
    me
}

/// Sends one request and reads the response into `body`; returns the status and whether the
/// server keeps the connection open.
async fn exchange(
    reader: &mut BufReader<TcpStream>,
    req: &[u8],
    line: &mut String,
    body: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    reader.get_mut().write_all(req).await?;
    line.clear();
    if reader.read_line(line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut keep_alive) = (0usize, true);
    loop {
        line.clear();
        reader.read_line(line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("connection") {
                keep_alive = !v.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    body.resize(length, 0);
    reader.read_exact(body).await?;
    Ok((status, keep_alive))
}
