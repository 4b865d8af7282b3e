//! What both webhook benchmarks share: the bindings they seed and the notifications they send.

use axe_gateway::db::models::Binding;
use axe_gateway::db::{self, bindings, Db};
use axe_gateway::huawei::notify::EVENT_TYPES;

pub const APP_KEY: &str = "bench-app-key";
pub const BINDINGS: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    /// One call event per notification.
    Events,
    /// One `fee` notification with 50 CDRs.
    Cdr50,
}

/// Live bindings with subscription ids, inserted directly (no Huawei involved).
pub fn seed_bindings(db: &Db) -> Vec<(String, String)> {
    db.run_blocking(|conn| {
        let now = db::now();
        let mut out = Vec::new();
        for i in 0..BINDINGS {
            let sub = uuid::Uuid::new_v4().to_string();
            let ext = format!("{:04}", i + 1);
            bindings::insert(
                conn,
                &Binding {
                    id: uuid::Uuid::now_v7().to_string(),
                    order_id: format!("bench-{i}"),
                    status: "active".into(),
                    bind_num: format!("+86138{:08}", i),
                    virtual_num: Some("+8617000000001".into()),
                    extend_num: Some(ext.clone()),
                    number_choice: "client".into(),
                    subscription_id: Some(sub.clone()),
                    area_code: None,
                    record: false,
                    record_hint_tone: None,
                    callback_num: None,
                    callback_tone: None,
                    ttl_minutes: None,
                    callback_ttl_minutes: None,
                    expires_at: None,
                    user_data: None,
                    created_by: "bench".into(),
                    created_at: now,
                    updated_at: now,
                    released_at: None,
                    last_error: None,
                    in_quarantine: false,
                },
            )?;
            out.push((sub, ext));
        }
        Ok::<_, db::DbError>(out)
    })
    .expect("seed bindings")
}

/// The n-th notification body of connection `conn`: a distinct event or 50 distinct CDRs.
pub fn body(scenario: Scenario, conn: usize, n: usize, subs: &[(String, String)]) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date");
    match scenario {
        Scenario::Events => {
            let call = n / 6;
            let kind = EVENT_TYPES[n % EVENT_TYPES.len()];
            let (sub, ext) = &subs[(conn * 7919 + call) % subs.len()];
            let at = base + chrono::Duration::seconds((call * 10 + n % 6) as i64);
            let session = format!("bench-{conn}-{call}");
            let extra = match kind {
                "callin" => r#","caller":"+8613900000001","called":"+8617000000001""#.to_owned(),
                "collectInfo" => format!(r#","digitInfo":"{ext}""#),
                "disconnect" => format!(
                    r#","caller":"+8613900000001","called":"+8613800000001","subscriptionId":"{sub}","stateCode":0,"stateDesc":"The user releases the call.""#
                ),
                _ => format!(
                    r#","caller":"+8613900000001","called":"+8613800000001","subscriptionId":"{sub}""#
                ),
            };
            format!(
                r#"{{"eventType":"{kind}","statusInfo":{{"sessionId":"{session}","timestamp":"{}"{extra}}}}}"#,
                at.format("%Y-%m-%d %H:%M:%S")
            )
        }
        Scenario::Cdr50 => {
            let fees: Vec<String> = (0..50)
                .map(|i| {
                    let binding = (conn * 31 + n * 50 + i) % subs.len();
                    let (sub, ext) = &subs[binding];
                    let id = format!("{conn}-{n}-{i}");
                    // Like a real message: every call has its own caller and times, and the
                    // calls of later messages started later (as every connection sends its n-th
                    // message at about the same time, so do their calls).
                    let call = conn * 1_000_003 + n * 50 + i;
                    let caller = format!("+86139{:08}", call % 100_000_000);
                    let started = n * 60 + i + conn % 8;
                    let time = |seconds: usize| {
                        (base + chrono::Duration::seconds((started + seconds) as i64))
                            .format("%Y-%m-%d %H:%M:%S")
                    };
                    let talk = 20 + call % 300;
                    format!(
                        r#"{{"direction":0,"spId":"sp","appKey":"{APP_KEY}","icid":"icid-{id}","bindNum":"+8617000000001","sessionId":"cdr-{id}","subscriptionId":"{sub}","callerNum":"{caller}","calleeNum":"+8617000000001","fwdDisplayNum":"+8617000000001","fwdDstNum":"+86138{binding:08}","callInTime":"{}","fwdStartTime":"{}","fwdAlertingTime":"{}","fwdAnswerTime":"{}","callEndTime":"{}","fwdUnaswRsn":0,"ulFailReason":0,"sipStatusCode":0,"recordFlag":0,"serviceType":"004","hostName":"bench","extendNum":"{ext}"}}"#,
                        time(0),
                        time(6),
                        time(8),
                        time(15),
                        time(15 + talk)
                    )
                })
                .collect();
            format!(r#"{{"eventType":"fee","feeLst":[{}]}}"#, fees.join(","))
        }
    }
}

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
        disk: yardstick_in(disk.path(), seconds),
        memory: memory.map(|dir| yardstick_in(dir.path(), seconds)),
    }
}

fn yardstick_in(dir: &std::path::Path, seconds: f64) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("yardstick.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, c1 TEXT, c2 TEXT,
           c3 TEXT, c4 TEXT, c5 TEXT, c6 TEXT, c7 TEXT, c8 TEXT, c9 TEXT, c10 TEXT, c11 TEXT,
           c12 TEXT, c13 TEXT);",
    )
    .expect("schema");
    let filler = "x".repeat(46);
    let started = std::time::Instant::now();
    let mut rows = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO t (k, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13) \
                     VALUES (?1, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2, ?2)",
                )
                .expect("prepare");
            for _ in 0..50 {
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

/// Rows in a table of the gateway's database; -1 if it cannot be counted (shown as a mismatch).
pub fn count_rows(db: &Db, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    db.run_blocking(|conn| {
        diesel::RunQueryDsl::get_result::<Count>(
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")),
            conn,
        )
        .map(|c| c.n)
        .map_err(db::DbError::from)
    })
    .unwrap_or(-1)
}

/// The yardstick, as both benches print it: rows/s and the ratio to the reference, and in
/// memory, with the share of the disk run's time that went to writing and flushing to disk.
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
