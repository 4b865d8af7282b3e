//! Yardsticks: what this machine does now at the simplest version of the work, measured in the
//! same run as our figures and printed beside them, because its speed drifts by 10–40 % between
//! hours (../shared/PERFORMANCE.md has the reference figures).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};

use super::load::{self, Workload};

/// How fast this machine is now: what `shared/PERFORMANCE.md` measured as 94k rows/s, raw SQLite
/// inserts of ~650-byte rows (15 columns, one unique key), 50 rows per transaction, WAL,
/// `synchronous=FULL`, no HTTP, measured again here in the same minutes as the benchmark (its
/// speed drifts by a third between hours, and every figure of a run moves with it). `disk` is
/// in the temporary directory the benchmarks use; `memory` the same in `/dev/shm` (tmpfs, where
/// a flush costs nothing), when the machine has it: the two together tell a slow disk from a
/// slow CPU.
pub struct Yardstick {
    pub disk: f64,
    pub memory: Option<f64>,
}

pub fn sqlite_yardstick(seconds: f64) -> Yardstick {
    let disk = tempfile::tempdir().expect("temp dir");
    // None where the machine has no /dev/shm: creating the directory then fails.
    let memory = tempfile::tempdir_in("/dev/shm").ok();
    Yardstick {
        disk: sqlite_inserts(disk.path(), seconds, 50),
        memory: memory.map(|dir| sqlite_inserts(dir.path(), seconds, 50)),
    }
}

/// The durable one-row transaction: raw SQLite inserts of the same rows, one per transaction,
/// WAL, `synchronous=FULL`, in the temporary directory the benches' databases are in
/// (`shared/PERFORMANCE.md`: 7.3k rows/s). Rows (= transactions) per second.
pub fn sqlite_one_row(seconds: f64) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    sqlite_inserts(dir.path(), seconds, 1)
}

/// ~650-byte rows: 15 columns, one unique key (as in `shared/PERFORMANCE.md`).
const TABLE: &str = "(id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, c1 TEXT, c2 TEXT, \
     c3 TEXT, c4 TEXT, c5 TEXT, c6 TEXT, c7 TEXT, c8 TEXT, c9 TEXT, c10 TEXT, c11 TEXT, \
     c12 TEXT, c13 TEXT)";
const INSERT_COLUMNS: &str = "(k, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13)";

fn filler() -> String {
    "x".repeat(46)
}

fn sqlite_inserts(dir: &std::path::Path, seconds: f64, rows_per_transaction: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("yardstick.db")).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t {TABLE};"
    ))
    .expect("schema");
    let filler = filler();
    let started = Instant::now();
    let mut rows = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO t {INSERT_COLUMNS} \
                     VALUES (?1, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2)"
                ))
                .expect("prepare");
            for _ in 0..rows_per_transaction {
                rows += 1;
                insert
                    .execute(rusqlite::params![format!("key-{rows:012}"), filler])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// The yardstick's figure in `shared/PERFORMANCE.md`.
pub const YARDSTICK_CEILING: f64 = 94_000.0;

/// The yardstick, as the webhook benches print it: rows/s and the ratio to the reference, and
/// in memory, with the share of the disk run's time that went to writing and flushing to disk.
pub fn yardstick_line(when: &str, y: &Yardstick) -> String {
    let mut line = format!(
        "this machine {when}: raw SQLite inserts, 50 rows per transaction, FULL: {:.0} rows/s \
         ({:.2} × the {YARDSTICK_CEILING:.0} of shared/PERFORMANCE.md)",
        y.disk,
        y.disk / YARDSTICK_CEILING
    );
    if let Some(memory) = y.memory {
        line.push_str(&format!(
            "; in /dev/shm (no disk): {memory:.0} rows/s, so writing and flushing to disk took {:.0} % of the disk run",
            100.0 * (1.0 - y.disk / memory).max(0.0)
        ));
    }
    line
}

/// The durable one-row transaction on PostgreSQL: `writers` connections, each inserting the
/// same rows one per (autocommitted, so flushed) transaction, into a table made for it in the
/// database at `url` and dropped after (`shared/PERFORMANCE.md`: 3.6k / 10.4k rows/s with 1 / 8
/// writers). Transactions per second, all writers together.
pub fn postgres_one_row(url: &str, writers: usize, seconds: f64) -> f64 {
    let table = format!("yardstick_{}", uuid::Uuid::new_v4().simple());
    let mut admin = diesel::PgConnection::establish(url).expect("yardstick connection");
    diesel::sql_query(format!(
        "CREATE TABLE {table} {}",
        TABLE.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
    ))
    .execute(&mut admin)
    .expect("yardstick table");
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (url, table) = (url.to_owned(), table.clone());
            std::thread::spawn(move || {
                let mut conn = diesel::PgConnection::establish(&url).expect("writer connection");
                let filler = filler();
                let insert = format!(
                    "INSERT INTO {table} {INSERT_COLUMNS} \
                     VALUES ($1, $2, $2, $2, $2, $2, $2, $2, $2, $2, $2, $2, $2, $2)"
                );
                let mut rows = 0u64;
                while started.elapsed().as_secs_f64() < seconds {
                    rows += 1;
                    diesel::sql_query(&insert)
                        .bind::<diesel::sql_types::Text, _>(format!("key-{w}-{rows:012}"))
                        .bind::<diesel::sql_types::Text, _>(&filler)
                        .execute(&mut conn)
                        .expect("insert");
                }
                rows
            })
        })
        .collect();
    let rows: u64 = threads.into_iter().map(|t| t.join().expect("writer")).sum();
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    let _ = diesel::sql_query(format!("DROP TABLE {table}")).execute(&mut admin);
    rate
}

/// `pgbench -S` (point reads by primary key, scale 1, prepared protocol, two threads) against
/// the database at `url`, which it fills with its tables first (`shared/PERFORMANCE.md`: 26.2k
/// tx/s at 16 clients). Transactions per second, or why it was not measured.
pub fn pgbench_select(url: &str, clients: usize, seconds: u64) -> Result<f64, String> {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = std::process::Command::new("pgbench")
            .args(args)
            .arg(url)
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "no pgbench binary on PATH".to_owned(),
                _ => format!("pgbench did not start: {e}"),
            })?;
        if !out.status.success() {
            return Err(format!(
                "pgbench failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run(&["-i", "-q", "-s", "1"])?;
    let report = run(&[
        "-S",
        "-M",
        "prepared",
        "-n",
        "-j",
        "2",
        "-c",
        &clients.to_string(),
        "-T",
        &seconds.max(1).to_string(),
    ])?;
    report
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| "no tps line in pgbench's report".to_owned())
}

/// The HTTP ceiling: an actix-web server (two workers, like the gateway) whose one route
/// answers GET with a short string, driven in this process by the load generator over
/// `connections` connections (`shared/PERFORMANCE.md`: 117–128k req/s with wrk). Returns
/// requests per second and p99 in ms.
pub fn http_ceiling(connections: usize, seconds: f64) -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().route("/", actix_web::web::get().to(|| async { "Hello, world!" }))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .expect("ceiling server")
    .run();
    let handle = server.handle();
    let thread = std::thread::spawn(move || actix_rt::System::new().block_on(server));
    let running = load::start(
        addr,
        Arc::new(Hello),
        connections,
        Duration::from_millis(500),
    );
    running.wait(Some(Duration::from_secs_f64(seconds)));
    let outcome = running.stop();
    actix_rt::System::new().block_on(handle.stop(true));
    let _ = thread.join();
    (outcome.rate(), outcome.percentile_ms(99.0))
}

struct Hello;

impl Workload for Hello {
    type Conn = ();

    fn open(&self, _conn: usize) {}

    fn request(&self, _: &mut (), _conn: usize, _n: usize, out: &mut String) -> bool {
        load::write_request(out, "GET", "/", &[], "");
        true
    }
}
