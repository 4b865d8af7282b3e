//! Webhook ingest: writer threads store Huawei's notifications with group commit.
//!
//! Handlers parse and authenticate a notification, turning its events and CDRs into the rows they
//! become (on the HTTP workers, in parallel), then hand it to [`Ingestor::submit`] and wait.
//! A writer takes everything queued for it (up to a batch limit), stores it in ONE transaction,
//! commits, and hands the batch to its acknowledger thread, which answers each waiting handler
//! (and so Huawei 200) only once the commit is durable: on PostgreSQL at once, on SQLite after
//! it flushed the WAL (see [`WalSync`]), while the writer already stores the next batch. SQLite
//! gets one writer (no lock fight); PostgreSQL gets several, each owning the calls whose session
//! hashes to it. Batching makes each flush count for many notifications. If a batch fails, its
//! notifications are retried one by one, so one bad notification cannot fail the others.

use std::borrow::Cow;
// foldhash instead of SipHash for the batch's maps, keyed by session ids and dedup keys: hashing
// was 3 % of the writer's instructions. Its seed is random per map, which is the protection
// against crafted keys that these (authenticated) notifications need.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use chrono::NaiveDateTime;
use tokio::sync::oneshot;

use crate::config::Backend;
use crate::db::calls::{self, Call, CallEvent, CallRecord, InboxRow, Linked, NewLink};
use crate::db::events::{self, NewEvent};
use crate::db::ingest::{IngestConnector, IngestStore, WalSync};
use crate::db::{self, Db, DbError};
use crate::domain::{mask_phone, NumberStatus};
use crate::huawei::notify::{parse_time, talk_seconds, FeeInfo, NumInfo, StatusInfo};

/// One item of a notification, parsed at the edge into the row it becomes: the writer only
/// settles which call and binding a row belongs to, and copies nothing.
#[derive(Debug, Clone)]
pub enum Item {
    /// A call event (`call_id`/`binding_id` are the writer's to settle).
    Event(Box<CallEvent>),
    /// A CDR (likewise); `session_id` is its call's session, or its dedup key when Huawei sent
    /// no sessionId.
    Cdr(Box<CallRecord>),
    NumStatus(NumInfo),
    /// An item that cannot become a row (why, for the log); it survives in the raw inbox only.
    /// A reason starting with [`UNSTORABLE_TEXT`] is counted apart.
    Unusable(String),
}

/// The reason of an item kept raw only because a value it needs (an id) cannot be stored as
/// text (it holds a NUL, which PostgreSQL refuses) and would change meaning if cleaned.
pub const UNSTORABLE_TEXT: &str = "unstorable_text";

/// A notification to store: its raw form for the inbox and its parsed items.
#[derive(Clone)]
pub struct Notification {
    /// Its `webhook_inbox` row id, which its events and CDRs refer to.
    pub inbox_id: String,
    pub received_at: NaiveDateTime,
    pub route: String,
    pub remote_addr: Option<String>,
    pub verified: bool,
    /// When Huawei signed it (the verified X-AKSK `Created`): orders `numStatus` pushes, which
    /// carry no time of their own.
    pub signed_at: Option<NaiveDateTime>,
    pub auth_note: Option<String>,
    pub event_type: String,
    pub body: String,
    pub parse_note: Option<String>,
    pub items: Vec<Item>,
    /// Text values whose NUL characters were removed so that they could be stored.
    pub cleaned_values: u32,
}

crate::debug_masking!(
    Notification {
        inbox_id, received_at, route, remote_addr, verified, signed_at, auth_note, event_type, items,
        cleaned_values
    } masking { body, parse_note }
);

impl Notification {
    /// A notification received now, with no items yet.
    pub fn new(
        route: String,
        remote_addr: Option<String>,
        verified: bool,
        auth_note: Option<String>,
        event_type: String,
        body: String,
    ) -> Self {
        Self {
            inbox_id: uuid::Uuid::now_v7().to_string(),
            received_at: db::now(),
            route,
            remote_addr,
            verified,
            signed_at: None,
            auth_note,
            event_type,
            body,
            parse_note: None,
            items: Vec::new(),
            cleaned_values: 0,
        }
    }

    /// Adds a call event of `event_type`.
    pub fn push_event(&mut self, event_type: &str, info: StatusInfo) {
        let at = info.timestamp.as_deref().and_then(parse_time);
        let (Some(session_id), Some(event_at)) = (info.session_id.filter(|s| !s.is_empty()), at)
        else {
            self.items.push(Item::Unusable(format!(
                "{event_type} event without a sessionId or a valid timestamp"
            )));
            return;
        };
        self.items.push(Item::Event(Box::new(CallEvent {
            id: 0,
            call_id: String::new(),
            binding_id: None,
            session_id,
            event_type: event_type.to_owned(),
            event_at,
            caller: info.caller,
            called: info.called,
            state_code: info.state_code.and_then(|c| i32::try_from(c).ok()),
            state_desc: info.state_desc,
            digit_info: info.digit_info,
            subscription_id: info.subscription_id,
            user_data: info.user_data,
            inbox_id: self.inbox_id.clone(),
            received_at: self.received_at,
        })));
    }

    /// Adds a CDR read from `raw`, its JSON as received. The JSON is stored with it only when
    /// the columns would not hold everything it said (see `CallRecord::raw`).
    pub fn push_cdr(&mut self, fee: FeeInfo, raw: &serde_json::Value) {
        let Some(dedup_key) =
            calls::record_dedup_key(fee.icid.as_deref(), fee.session_id.as_deref())
        else {
            self.items
                .push(Item::Unusable("CDR without icid or sessionId".to_owned()));
            return;
        };
        let mut complete = fee.holds_all_of(raw);
        let session_id = fee
            .session_id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| dedup_key.clone());
        // A time that does not parse, or a number out of range, is lost to its column.
        let lost = std::cell::Cell::new(false);
        let t = |v: Option<String>| {
            let parsed = v.as_deref().and_then(parse_time);
            lost.set(lost.get() || (v.is_some() && parsed.is_none()));
            parsed
        };
        let int = |v: Option<i64>| {
            let fits = v.and_then(|x| i32::try_from(x).ok());
            lost.set(lost.get() || (v.is_some() && fits.is_none()));
            fits
        };
        let fwd_answer_time = t(fee.fwd_answer_time);
        let call_end_time = t(fee.call_end_time);
        let talk = talk_seconds(fwd_answer_time, call_end_time);
        let mut record = CallRecord {
            id: 0,
            dedup_key,
            call_id: String::new(),
            binding_id: None,
            icid: fee.icid,
            session_id,
            subscription_id: fee.subscription_id,
            direction: int(fee.direction),
            sp_id: fee.sp_id,
            app_key: fee.app_key,
            bind_num: fee.bind_num,
            caller_num: fee.caller_num,
            callee_num: fee.callee_num,
            fwd_display_num: fee.fwd_display_num,
            fwd_dst_num: fee.fwd_dst_num,
            call_in_time: t(fee.call_in_time),
            fwd_start_time: t(fee.fwd_start_time),
            fwd_alerting_time: t(fee.fwd_alerting_time),
            fwd_answer_time,
            call_end_time,
            fwd_unaswrsn: int(fee.fwd_unaswrsn),
            fail_time: t(fee.fail_time),
            ul_fail_reason: int(fee.ul_fail_reason),
            sip_status_code: int(fee.sip_status_code),
            call_out_unaswrsn: int(fee.call_out_unaswrsn),
            record_flag: int(fee.record_flag),
            record_start_time: t(fee.record_start_time),
            record_object_name: fee.record_object_name,
            record_bucket_name: fee.record_bucket_name,
            record_domain: fee.record_domain,
            record_file_download_url: fee.record_file_download_url,
            service_type: fee.service_type,
            host_name: fee.host_name,
            extend_num: fee.extend_num,
            user_data: fee.user_data,
            area_code: fee.area_code,
            call_duration: int(fee.call_duration),
            call_rel_direction: fee.call_rel_direction,
            talk_seconds: Some(i32::try_from(talk).unwrap_or(i32::MAX)),
            raw: None,
            inbox_id: self.inbox_id.clone(),
            received_at: self.received_at,
        };
        complete &= !lost.get();
        if !complete {
            record.raw = Some(raw.to_string());
        }
        self.items.push(Item::Cdr(Box::new(record)));
    }

    pub fn push_num_status(&mut self, info: NumInfo) {
        self.items.push(Item::NumStatus(info));
    }
}

/// What storing a notification did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    pub new_items: u32,
    pub duplicates: u32,
    /// Items naming a binding we do not know (stored with a null binding).
    pub unlinked: u32,
    /// Items that could not be stored as rows (kept raw in the inbox only).
    pub skipped: u32,
    /// Of those, the items kept raw only for [`UNSTORABLE_TEXT`].
    pub unstorable: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the webhook queue is full")]
    Overloaded,
    #[error("the webhook writer has stopped")]
    Stopped,
    #[error("storing the notification failed: {0}")]
    Database(#[from] DbError),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub notifications: AtomicU64,
    pub items: AtomicU64,
    pub duplicates: AtomicU64,
    pub unlinked: AtomicU64,
    pub skipped: AtomicU64,
    /// Of the skipped items, those kept raw only for [`UNSTORABLE_TEXT`].
    pub unstorable: AtomicU64,
    pub batches: AtomicU64,
    pub failed: AtomicU64,
    /// Flushes of SQLite's WAL before answering (none on PostgreSQL, whose commit is durable).
    pub wal_flushes: AtomicU64,
    /// Their total duration, in microseconds: when the disk is slow, this is what bounds
    /// ingest (each flush answers one or more committed batches).
    pub wal_flush_micros: AtomicU64,
    /// Notifications waiting in the writers' queues.
    pub queued: AtomicU64,
    /// Notifications per batch, once the application's metrics are attached.
    pub batch_size: std::sync::OnceLock<metrics::Histogram>,
}

impl IngestMetrics {
    /// Flushes the WAL and counts the flush and its duration.
    fn timed_sync(&self, wal: &WalSync) -> Result<(), DbError> {
        let started = std::time::Instant::now();
        let flushed = wal.sync();
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.wal_flushes.fetch_add(1, Ordering::Relaxed);
        self.wal_flush_micros.fetch_add(micros, Ordering::Relaxed);
        flushed
    }
}

struct Job {
    notification: Notification,
    reply: oneshot::Sender<Result<Stored, IngestError>>,
}

/// Handle to the writers; cheap to clone, `Send`.
#[derive(Clone)]
pub struct Ingestor {
    /// One queue per writer thread; a notification goes to the writer of its call's session.
    shards: Arc<[SyncSender<Job>]>,
    metrics: Arc<IngestMetrics>,
    /// The writer and acknowledger threads, to tell readiness whether they still run.
    threads: Arc<[std::thread::JoinHandle<()>]>,
}

#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// Most notifications committed in one transaction.
    pub batch_max: usize,
    /// Notifications waiting for the writers before new ones are refused with 503.
    pub queue: usize,
    /// Writer threads. SQLite has one write lock, so it always gets one; on PostgreSQL
    /// several writers commit in parallel, each with its own share of the queue.
    pub writers: usize,
}

impl Ingestor {
    /// Starts the writer threads. They stop when every `Ingestor` clone is dropped.
    pub fn start(db: Db, settings: IngestSettings) -> std::io::Result<Self> {
        let writers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => settings.writers.max(1),
        };
        let metrics = Arc::new(IngestMetrics::default());
        let mut shards = Vec::with_capacity(writers);
        let mut threads = Vec::with_capacity(2 * writers);
        for n in 0..writers {
            let (tx, rx) = mpsc::sync_channel((settings.queue / writers).max(1));
            let (done_tx, done_rx) = mpsc::sync_channel(UNACKNOWLEDGED_BATCHES);
            let suffix = if writers == 1 {
                String::new()
            } else {
                format!("-{n}")
            };
            let m = metrics.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("webhook-ack{suffix}"))
                    .spawn(move || acknowledger_loop(&done_rx, &m))?,
            );
            let (db, m) = (db.clone(), metrics.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("webhook-writer{suffix}"))
                    .spawn(move || {
                        writer_loop(
                            IngestConnector::new(db),
                            &rx,
                            &done_tx,
                            settings.batch_max,
                            &m,
                        )
                    })?,
            );
            shards.push(tx);
        }
        Ok(Self {
            shards: shards.into(),
            metrics,
            threads: threads.into(),
        })
    }

    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// Records each batch's size in `histogram` from now on.
    pub fn observe_batch_sizes(&self, histogram: metrics::Histogram) {
        let _ = self.metrics.batch_size.set(histogram);
    }

    /// Whether every writer and acknowledger thread still runs (they end only by panicking
    /// while the gateway runs).
    pub fn writers_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Queues the notification and waits until it is committed (or failed).
    pub async fn submit(&self, notification: Notification) -> Result<Stored, IngestError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            notification,
            reply,
        };
        let shard = &self.shards[shard_of(&job.notification, self.shards.len())];
        // Counted before the send, so the writer never takes out one not yet counted.
        self.metrics.queued.fetch_add(1, Ordering::Relaxed);
        let sent = shard.try_send(job);
        if sent.is_err() {
            self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(IngestError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(IngestError::Stopped),
        }
        rx.await.map_err(|_| IngestError::Stopped)?
    }
}

/// The writer a notification goes to: by the session of its first item, so that the events
/// and CDR of one call are stored by one writer, in order, and writers rarely wait on each
/// other's row locks. (A CDR message may span sessions; a call touched by two writers at once
/// is still safe: its row is locked `FOR UPDATE`, and a new call both insert is retried.)
fn shard_of(notification: &Notification, shards: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if shards <= 1 {
        return 0;
    }
    let key = notification.items.first().and_then(|item| match item {
        Item::Event(event) => Some(event.session_id.as_str()),
        Item::Cdr(record) => Some(record.session_id.as_str()),
        Item::NumStatus(info) => info.number.as_deref(),
        Item::Unusable(_) => None,
    });
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.unwrap_or(&notification.body).hash(&mut hasher);
    usize::try_from(hasher.finish() % (shards as u64)).unwrap_or(0)
}

/// Subscription id → binding id, kept by the writer across batches. Only found bindings are
/// cached: a binding's subscription id never changes once Huawei gave it, while an unknown one
/// may become known later.
#[derive(Default)]
struct SubscriptionCache(HashMap<String, String>);

impl SubscriptionCache {
    const MAX: usize = 100_000;

    fn get(&self, subscription_id: &str) -> Option<String> {
        self.0.get(subscription_id).cloned()
    }

    fn put(&mut self, subscription_id: &str, binding_id: &str) {
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0
            .insert(subscription_id.to_owned(), binding_id.to_owned());
    }
}

/// Committed batches that may wait for the acknowledger: none. The writer hands a batch over only
/// once the acknowledger has finished its previous flush, so while a flush is under way exactly
/// one batch is committed behind it, and whatever arrives meanwhile waits in the queue to form the
/// next batch. A slow disk (0.5–5 ms a flush in production) then still gets big batches, as group
/// commit intends, instead of many small commits that would all wait for the same flush; and a
/// disk that stops answering stops the writer, so the queue fills and new notifications get 503
/// instead of piling up in memory. (Measured with 2 ms added to every flush: a queue of 4 made
/// commits of 4 events; this makes commits of 17.)
const UNACKNOWLEDGED_BATCHES: usize = 0;

fn writer_loop(
    mut connector: IngestConnector,
    rx: &Receiver<Job>,
    done: &SyncSender<Committed>,
    batch_max: usize,
    metrics: &IngestMetrics,
) {
    let mut cache = SubscriptionCache::default();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics.batches.fetch_add(1, Ordering::Relaxed);
        metrics
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        if let Some(sizes) = metrics.batch_size.get() {
            sizes.record(batch.len() as f64);
        }
        let results = store_batch(&mut connector, &batch, &mut cache);
        let committed = Committed {
            jobs: batch,
            results,
            wal_sync: connector.wal_sync().cloned(),
        };
        // Only if the acknowledger is gone (it panicked): answer here.
        if let Err(mpsc::SendError(committed)) = done.send(committed) {
            committed.acknowledge(metrics);
        }
    }
}

/// A batch the writer has committed, with each notification's result, waiting to be answered.
struct Committed {
    jobs: Vec<Job>,
    results: Vec<Result<Stored, IngestError>>,
    /// Set when the commit is durable only once the WAL is flushed.
    wal_sync: Option<WalSync>,
}

impl Committed {
    /// Answers each waiting handler, after flushing the WAL if the commit needs it.
    fn acknowledge(self, metrics: &IngestMetrics) {
        let flushed = self
            .wal_sync
            .as_ref()
            .map_or(Ok(()), |wal| metrics.timed_sync(wal));
        self.answer(&flushed, metrics);
    }

    /// Answers each waiting handler: its result if `flushed` is Ok, 503 otherwise (the rows are
    /// committed but may not survive a power cut; Huawei's retry is then deduplicated).
    fn answer(self, flushed: &Result<(), DbError>, metrics: &IngestMetrics) {
        for (job, result) in self.jobs.into_iter().zip(self.results) {
            let result = match (result, flushed) {
                (Ok(_), Err(e)) => Err(IngestError::Database(DbError::Unavailable(match e {
                    DbError::Unavailable(why) => why.clone(),
                    other => other.to_string(),
                }))),
                (result, _) => result,
            };
            match &result {
                Ok(s) => {
                    metrics.notifications.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .items
                        .fetch_add(u64::from(s.new_items), Ordering::Relaxed);
                    metrics
                        .duplicates
                        .fetch_add(u64::from(s.duplicates), Ordering::Relaxed);
                    metrics
                        .unlinked
                        .fetch_add(u64::from(s.unlinked), Ordering::Relaxed);
                    metrics
                        .skipped
                        .fetch_add(u64::from(s.skipped), Ordering::Relaxed);
                    metrics
                        .unstorable
                        .fetch_add(u64::from(s.unstorable), Ordering::Relaxed);
                }
                Err(_) => {
                    metrics.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            // The handler may have gone (client hung up); the data is committed either way.
            let _ = job.reply.send(result);
        }
    }
}

/// Answers committed batches: takes every batch committed meanwhile, flushes the WAL once for
/// all of them (when they need it), then answers their handlers. It also frees the batches'
/// notifications, off the writer's thread.
fn acknowledger_loop(rx: &Receiver<Committed>, metrics: &IngestMetrics) {
    while let Ok(first) = rx.recv() {
        let mut done = vec![first];
        while let Ok(more) = rx.try_recv() {
            done.push(more);
        }
        // One flush covers every commit made before it; all batches name the same file.
        let flushed = done
            .iter()
            .rev()
            .find_map(|c| c.wal_sync.as_ref())
            .map_or(Ok(()), |wal| metrics.timed_sync(wal));
        if let Err(e) = &flushed {
            log::error!("webhook writer: {e}; answering 503 to the batch(es) it covered");
        }
        let durable_already = Ok(());
        for committed in done {
            // A batch that needed no flush was durable when committed.
            let flushed = if committed.wal_sync.is_some() {
                &flushed
            } else {
                &durable_already
            };
            committed.answer(flushed, metrics);
        }
    }
}

/// Stores a batch in one transaction; on failure, each notification alone.
fn store_batch(
    connector: &mut IngestConnector,
    batch: &[Job],
    cache: &mut SubscriptionCache,
) -> Vec<Result<Stored, IngestError>> {
    let together = connector
        .with_store(|store| in_transaction(store, batch, cache, RecordLookup::OfKnownCalls));
    match together {
        Ok(stored) => stored.into_iter().map(Ok).collect(),
        // Retrying one by one cannot help when the database itself is away.
        Err(e) if e.is_unavailable() => {
            log::error!(
                "webhook writer: storing {} notification(s) failed: {e}",
                batch.len()
            );
            let message = e.to_string();
            batch
                .iter()
                .map(|_| Err(IngestError::Database(DbError::Unavailable(message.clone()))))
                .collect()
        }
        Err(e) if batch.len() == 1 && !e.is_write_conflict() => {
            log::error!("webhook writer: storing a notification failed: {e}");
            vec![Err(e.into())]
        }
        Err(e) => {
            log::warn!(
                "webhook writer: batch of {} failed ({e}); storing one by one",
                batch.len()
            );
            batch
                .iter()
                .map(|job| store_alone(connector, job, cache))
                .collect()
        }
    }
}

/// Stores one notification in a transaction of its own, again if it lost a race with another
/// writer (PostgreSQL: another writer thread or gateway instance). A unique violation is only
/// reported once that writer has committed, so a fresh attempt reads its row and folds into
/// it; a deadlock victim simply runs again.
fn store_alone(
    connector: &mut IngestConnector,
    job: &Job,
    cache: &mut SubscriptionCache,
) -> Result<Stored, IngestError> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        let job = std::slice::from_ref(job);
        match connector.with_store(|store| in_transaction(store, job, cache, RecordLookup::All)) {
            Ok(mut stored) => return Ok(stored.remove(0)),
            Err(e) if e.is_write_conflict() && attempt < ATTEMPTS => {
                log::info!("webhook writer: {e}; another writer stored it first, retrying");
                attempt += 1;
            }
            Err(e) => {
                log::error!("webhook writer: storing a notification failed: {e}");
                return Err(e.into());
            }
        }
    }
}

/// Which of a batch's CDRs are looked up by dedup key before they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordLookup {
    /// Only the CDRs of calls stored before: a CDR of a call not stored yet cannot have been
    /// stored either (a redelivered CDR has the same session as the first delivery). Should
    /// one have been all the same (the same icid under another session, or another writer
    /// storing it meanwhile), its insert is skipped, the transaction is rolled back
    /// (`RecordStoredMeanwhile`) and the notification is stored again with `All`.
    OfKnownCalls,
    /// Every CDR.
    All,
}

fn in_transaction(
    store: &mut dyn IngestStore,
    jobs: &[Job],
    cache: &mut SubscriptionCache,
    lookup: RecordLookup,
) -> Result<Vec<Stored>, DbError> {
    let mut stored = Vec::new();
    store.transaction(&mut |store| {
        stored = store_jobs(store, jobs, cache, lookup)?;
        Ok(())
    })?;
    Ok(stored)
}

/// Stores the jobs inside the caller's transaction, set-wise: the calls they touch and their
/// stored event and CDR keys are read first, every item is folded in memory, and then the rows
/// are written (see `BatchCtx::write`). Per item only lookups of its binding remain (by
/// subscription, cached across batches, or by X+E).
fn store_jobs(
    store: &mut dyn IngestStore,
    jobs: &[Job],
    cache: &mut SubscriptionCache,
    lookup: RecordLookup,
) -> Result<Vec<Stored>, DbError> {
    let mut sessions: Vec<&str> = Vec::new();
    let mut records: Vec<&CallRecord> = Vec::new();
    for job in jobs {
        for item in &job.notification.items {
            match item {
                Item::Event(event) => sessions.push(&event.session_id),
                Item::Cdr(record) => {
                    sessions.push(&record.session_id);
                    records.push(record);
                }
                Item::NumStatus(_) | Item::Unusable(_) => {}
            }
        }
    }
    sessions.sort_unstable();
    sessions.dedup();
    // The batch's maps are keyed by the items' own strings; what the database returns is
    // matched back to them.
    let borrowed = |keys: &[&'_ str], key: &str| -> Option<usize> {
        keys.binary_search_by(|k| (*k).cmp(key)).ok()
    };
    let stored_calls = store.calls_by_session(&sessions)?;
    let call_ids: Vec<&str> = stored_calls.iter().map(|c| c.id.as_str()).collect();
    let mut seen_events = HashSet::new();
    let mut with_stored_events = HashSet::new();
    if !call_ids.is_empty() {
        // Events are keyed by call in the database and by session in the batch.
        let session_of: HashMap<&str, &str> = stored_calls
            .iter()
            .filter_map(|c| Some((c.id.as_str(), sessions[borrowed(&sessions, &c.session_id)?])))
            .collect();
        for (call_id, kind, at) in store.event_keys(&call_ids)? {
            if let Some(session) = session_of.get(call_id.as_str()) {
                with_stored_events.insert(*session);
                seen_events.insert((*session, Cow::Owned(kind), at));
            }
        }
    }
    let mut calls = HashMap::with_capacity(sessions.len());
    for call in stored_calls {
        if let Some(i) = borrowed(&sessions, &call.session_id) {
            calls.insert(sessions[i], (Some(Box::new(call.clone())), call));
        }
    }
    let mut record_keys: Vec<&str> = records
        .iter()
        .filter(|r| lookup == RecordLookup::All || calls.contains_key(r.session_id.as_str()))
        .map(|r| r.dedup_key.as_str())
        .collect();
    record_keys.sort_unstable();
    record_keys.dedup();
    let seen_records = store
        .record_keys(&record_keys)?
        .iter()
        .filter_map(|key| borrowed(&record_keys, key).map(|i| record_keys[i]))
        .collect();
    let mut batch = BatchCtx {
        calls,
        seen_events,
        with_stored_events,
        seen_records,
        sessions,
        ..BatchCtx::default()
    };
    // The writer's subscription cache travels with the batch and is handed back below.
    std::mem::swap(&mut batch.by_subscription, cache);
    let stored = jobs
        .iter()
        .map(|job| batch.store(store, job))
        .collect::<Result<Vec<_>, DbError>>();
    // Hand the cache back whatever happened: what it learned is true regardless of this batch.
    std::mem::swap(&mut batch.by_subscription, cache);
    let stored = stored?;
    batch.write(store)?;
    Ok(stored)
}

/// What a batch read and is about to write. Everything is keyed by, and every row borrowed
/// from, the batch's own notifications: the writer copies no item.
#[derive(Default)]
struct BatchCtx<'a> {
    /// Per session: the call as stored before this batch (if any; boxed, since most calls of a
    /// CDR batch are new), and as it is now.
    calls: HashMap<&'a str, (Option<Box<Call>>, Call)>,
    /// (session, event type, time) of the events stored or seen in this batch.
    seen_events: HashSet<(&'a str, Cow<'a, str>, NaiveDateTime)>,
    /// Sessions whose call has events stored by earlier batches.
    with_stored_events: HashSet<&'a str>,
    seen_records: HashSet<&'a str>,
    /// Every session the batch's items name, sorted: calls are written in this order, so that
    /// concurrent writers lock call rows in one order. A call no item was folded into (all its
    /// items were duplicates) is left as it was read and so is not written.
    sessions: Vec<&'a str>,
    events: Vec<&'a CallEvent>,
    records: Vec<&'a CallRecord>,
    inbox: Vec<InboxRow<'a>>,
    by_subscription: SubscriptionCache,
}

impl<'a> BatchCtx<'a> {
    fn store(&mut self, store: &mut dyn IngestStore, job: &'a Job) -> Result<Stored, DbError> {
        let n = &job.notification;
        let mut stored = Stored::default();
        for item in &n.items {
            match item {
                Item::Event(event) => self.store_event(store, event, &mut stored)?,
                Item::Cdr(record) => self.store_cdr(store, record, &mut stored)?,
                Item::NumStatus(info) => store_num_status(
                    store,
                    info,
                    n.signed_at.unwrap_or(n.received_at),
                    &mut stored,
                )?,
                Item::Unusable(why) => {
                    stored.skipped += 1;
                    if why.starts_with(UNSTORABLE_TEXT) {
                        stored.unstorable += 1;
                    }
                    log::warn!("webhook: {why}; kept raw only");
                }
            }
        }
        self.inbox.push(InboxRow {
            id: &n.inbox_id,
            received_at: n.received_at,
            route: &n.route,
            remote_addr: n.remote_addr.as_deref(),
            verified: n.verified,
            auth_note: n.auth_note.as_deref(),
            event_type: &n.event_type,
            items: i32::try_from(n.items.len()).unwrap_or(i32::MAX),
            duplicates: i32::try_from(stored.duplicates).unwrap_or(i32::MAX),
            parse_note: match (&n.parse_note, stored.skipped) {
                (note, 0) => note.clone(),
                (None, k) => Some(format!(
                    "{k} item(s) kept raw only (no sessionId/icid, bad time, unknown status or an id holding a NUL)"
                )),
                (Some(note), k) => Some(format!(
                    "{note}; {k} item(s) kept raw only (no sessionId/icid, bad time, unknown status or an id holding a NUL)"
                )),
            },
            body: &n.body,
        });
        Ok(stored)
    }

    /// Writes what the batch gathered: its outbound events, then calls (events and CDRs refer
    /// to them), then the new rows, then the bindings of calls linked in this batch onto their
    /// older rows.
    fn write(self, store: &mut dyn IngestStore) -> Result<(), DbError> {
        // The outbox first: on PostgreSQL it locks the bindings' rows (in id order), and taking
        // them before any insert keeps two writers from each waiting on the other, one for a
        // binding, the other for a unique key the first has just inserted.
        let announced = self.announcements();
        if !announced.is_empty() {
            store.append_events(&announced)?;
        }
        let mut linked = Vec::new();
        let (mut new, mut changed, mut rekeyed) = (Vec::new(), Vec::new(), Vec::new());
        for session in &self.sessions {
            let Some((before, call)) = self.calls.get(session) else {
                continue;
            };
            let Some(before) = before else {
                new.push(call);
                continue;
            };
            if let (None, Some(binding_id)) = (&before.binding_id, &call.binding_id) {
                linked.push(NewLink {
                    call_id: &call.id,
                    binding_id,
                    events: self.with_stored_events.contains(session),
                    records: before.has_cdr,
                });
            }
            // A redelivered notification folds to the same call: nothing to write.
            if same_but_updated_at(before, call) {
                continue;
            }
            // Indexed columns of a stored call changed: write them too.
            if before.binding_id != call.binding_id
                || before.started_at != call.started_at
                || before.icid != call.icid
            {
                rekeyed.push(call);
            }
            changed.push(call);
        }
        store.write_calls(&new, &changed, &rekeyed)?;
        // Each row gets its call as the whole batch left it, so a row stored before a later
        // item of the batch linked its call gets the binding too; only rows stored by earlier
        // batches need `link_calls`.
        store.insert_events(&self.linked(&self.events, |e| &e.session_id)?)?;
        let inserted = store.insert_records(&self.linked(&self.records, |r| &r.session_id)?)?;
        if inserted != self.records.len() {
            return Err(DbError::RecordStoredMeanwhile(format!(
                "{} of {} CDRs",
                self.records.len().saturating_sub(inserted),
                self.records.len()
            )));
        }
        store.link_calls(&linked)?;
        store.insert_inbox(&self.inbox)
    }

    /// The outbound events of the batch, written in its transaction: `call.started` for each
    /// call this batch linked to a binding, then those of its new call events and CDRs (of
    /// calls linked to a binding).
    fn announcements(&self) -> Vec<NewEvent> {
        let call_of = |session: &str| self.calls.get(session).map(|(_, call)| call);
        let mut out: Vec<NewEvent> = self
            .sessions
            .iter()
            .filter_map(|s| self.calls.get(s))
            .filter(|(before, call)| {
                call.binding_id.is_some() && before.as_ref().is_none_or(|b| b.binding_id.is_none())
            })
            .filter_map(|(_, call)| events::call_started(call))
            .collect();
        out.extend(
            self.events
                .iter()
                .filter_map(|e| events::call_event(e, call_of(&e.session_id)?)),
        );
        for r in &self.records {
            if let Some(call) = call_of(&r.session_id) {
                out.extend(events::record_events(r, call));
            }
        }
        out
    }

    /// Pairs each row with its session's call as the batch left it.
    fn linked<'s, T>(
        &'s self,
        rows: &[&'s T],
        session_of: impl Fn(&T) -> &str,
    ) -> Result<Vec<Linked<'s, T>>, DbError> {
        rows.iter()
            .map(|&row| {
                let session = session_of(row);
                let (_, call) = self.calls.get(session).ok_or_else(|| {
                    DbError::Inconsistent(format!("no call folded for session {session}"))
                })?;
                Ok(Linked {
                    row,
                    call_id: &call.id,
                    binding_id: call.binding_id.as_deref(),
                })
            })
            .collect()
    }

    /// Folds one item into its session's call (created if this batch is the first to hear of
    /// it), links the call to its binding, and returns what the item's row needs of the call.
    fn fold_into_call(
        &mut self,
        store: &mut dyn IngestStore,
        session_id: &'a str,
        started: NaiveDateTime,
        now: NaiveDateTime,
        fold: impl FnOnce(&mut Call),
    ) -> Result<Folded, DbError> {
        let (_, call) = self
            .calls
            .entry(session_id)
            .or_insert_with(|| (None, new_call(session_id, started, now)));
        fold(call);
        let known = link(store, &mut self.by_subscription, call);
        call.updated_at = now;
        let folded = Folded {
            linked: call.binding_id.is_some(),
            known_subscription: known.as_ref().is_ok_and(|k| *k),
        };
        known.map(|_| folded)
    }

    fn store_event(
        &mut self,
        store: &mut dyn IngestStore,
        event: &'a CallEvent,
        stored: &mut Stored,
    ) -> Result<(), DbError> {
        if !self.seen_events.insert((
            &event.session_id,
            Cow::Borrowed(&event.event_type),
            event.event_at,
        )) {
            stored.duplicates += 1;
            return Ok(());
        }
        let folded = self.fold_into_call(
            store,
            &event.session_id,
            event.event_at,
            event.received_at,
            |call| apply_event(call, event),
        )?;
        if !folded.known_subscription {
            stored.unlinked += 1;
            log::warn!(
                "webhook: {} event for unknown subscription {}; stored unlinked",
                event.event_type,
                event.subscription_id.as_deref().unwrap_or("?")
            );
        }
        self.events.push(event);
        stored.new_items += 1;
        Ok(())
    }

    fn store_cdr(
        &mut self,
        store: &mut dyn IngestStore,
        record: &'a CallRecord,
        stored: &mut Stored,
    ) -> Result<(), DbError> {
        if !self.seen_records.insert(&record.dedup_key) {
            stored.duplicates += 1;
            return Ok(());
        }
        let started = record
            .call_in_time
            .or(record.fwd_start_time)
            .or(record.call_end_time)
            .unwrap_or(record.received_at);
        let folded = self.fold_into_call(
            store,
            &record.session_id,
            started,
            record.received_at,
            |call| apply_record(call, record),
        )?;
        if !folded.linked {
            stored.unlinked += 1;
            log::warn!(
                "webhook: CDR {} for X {} matches no binding{}; stored unlinked",
                record.icid.as_deref().unwrap_or("?"),
                record
                    .bind_num
                    .as_deref()
                    .map(mask_phone)
                    .unwrap_or_default(),
                if folded.known_subscription {
                    ""
                } else {
                    " (unknown subscription)"
                }
            );
        }
        self.records.push(record);
        stored.new_items += 1;
        Ok(())
    }
}

/// The binding of a subscription id: from the writer's cache, else the database (and cached
/// when found).
fn binding_by_subscription(
    store: &mut dyn IngestStore,
    cache: &mut SubscriptionCache,
    subscription_id: &str,
) -> Result<Option<String>, DbError> {
    if let Some(found) = cache.get(subscription_id) {
        return Ok(Some(found));
    }
    let found = store.binding_by_subscription(subscription_id)?;
    if let Some(binding_id) = &found {
        cache.put(subscription_id, binding_id);
    }
    Ok(found)
}

/// Links the call to its binding if it is not yet, by subscription id or X+E.
/// Returns false when a subscription id was given that matches no binding of ours.
fn link(
    store: &mut dyn IngestStore,
    cache: &mut SubscriptionCache,
    call: &mut Call,
) -> Result<bool, DbError> {
    if call.binding_id.is_some() {
        return Ok(true);
    }
    let mut known_subscription = true;
    let mut found = None;
    if let Some(sub) = &call.subscription_id {
        found = binding_by_subscription(store, cache, sub)?;
        known_subscription = found.is_some();
    }
    if found.is_none() {
        if let (Some(x), Some(e)) = (&call.virtual_num, &call.extend_num) {
            found = store.binding_by_number_at(x, e, call.started_at)?;
        }
    }
    call.binding_id = found;
    Ok(known_subscription)
}

/// Whether a call folded in this batch equals its stored form, apart from `updated_at` (which
/// every fold sets): then there is nothing to write. Every field is named, so a new one cannot
/// be forgotten here.
fn same_but_updated_at(before: &Call, now: &Call) -> bool {
    let Call {
        id,
        session_id,
        binding_id,
        subscription_id,
        virtual_num,
        extend_num,
        caller,
        called,
        icid,
        started_at,
        answered_at,
        ended_at,
        talk_seconds,
        last_event,
        last_event_at,
        state_code,
        has_cdr,
        created_at,
        updated_at: _,
    } = before;
    *id == now.id
        && *session_id == now.session_id
        && *binding_id == now.binding_id
        && *subscription_id == now.subscription_id
        && *virtual_num == now.virtual_num
        && *extend_num == now.extend_num
        && *caller == now.caller
        && *called == now.called
        && *icid == now.icid
        && *started_at == now.started_at
        && *answered_at == now.answered_at
        && *ended_at == now.ended_at
        && *talk_seconds == now.talk_seconds
        && *last_event == now.last_event
        && *last_event_at == now.last_event_at
        && *state_code == now.state_code
        && *has_cdr == now.has_cdr
        && *created_at == now.created_at
}

/// What an event's or CDR's row needs of its call once the item is folded in.
struct Folded {
    /// The call has a binding.
    linked: bool,
    /// False when the call names a subscription id no binding of ours has.
    known_subscription: bool,
}

fn new_call(session_id: &str, started_at: NaiveDateTime, now: NaiveDateTime) -> Call {
    Call::new(
        uuid::Uuid::now_v7().to_string(),
        session_id,
        started_at,
        now,
    )
}

fn min_time(a: Option<NaiveDateTime>, b: NaiveDateTime) -> NaiveDateTime {
    a.map_or(b, |a| a.min(b))
}

/// Folds one event into its call. Order-independent: every field keeps the earliest start,
/// the latest event, and values from the event type that owns them.
fn apply_event(call: &mut Call, e: &CallEvent) {
    call.started_at = call.started_at.min(e.event_at);
    if call.subscription_id.is_none() {
        call.subscription_id.clone_from(&e.subscription_id);
    }
    match e.event_type.as_str() {
        // In the A-called flow, `called` of callin is X; `caller` is whoever dialled it.
        "callin" => {
            call.caller = e.caller.clone().or(call.caller.take());
            call.virtual_num = e.called.clone().or(call.virtual_num.take());
            call.called = e.called.clone().or(call.called.take());
        }
        "collectInfo" if call.extend_num.is_none() => {
            call.extend_num.clone_from(&e.digit_info);
        }
        "answer" => call.answered_at = Some(min_time(call.answered_at, e.event_at)),
        "disconnect" => {
            call.ended_at = Some(call.ended_at.map_or(e.event_at, |t| t.max(e.event_at)));
            call.state_code = e.state_code;
        }
        _ => {}
    }
    if call.caller.is_none() {
        call.caller.clone_from(&e.caller);
    }
    if call.last_event_at.is_none_or(|t| t <= e.event_at) {
        call.last_event = Some(e.event_type.clone());
        call.last_event_at = Some(e.event_at);
    }
}

/// Folds a CDR into its call; the CDR is the final word on times and talk time.
fn apply_record(call: &mut Call, r: &CallRecord) {
    if let Some(t) = r.call_in_time {
        call.started_at = call.started_at.min(t);
    }
    call.has_cdr = true;
    call.icid = r.icid.clone().or(call.icid.take());
    if call.subscription_id.is_none() {
        call.subscription_id.clone_from(&r.subscription_id);
    }
    // A CDR's bindNum is X.
    call.virtual_num = r.bind_num.clone().or(call.virtual_num.take());
    call.extend_num = r.extend_num.clone().or(call.extend_num.take());
    call.caller = r.caller_num.clone().or(call.caller.take());
    call.called = r.callee_num.clone().or(call.called.take());
    if let Some(t) = r.fwd_answer_time {
        call.answered_at = Some(min_time(call.answered_at, t));
    }
    if let Some(t) = r.call_end_time.or(r.fail_time) {
        call.ended_at = Some(t);
    }
    call.talk_seconds = r.talk_seconds;
    // A call known only from its CDR still shows how it ended; any real event replaces this.
    if call.last_event.is_none() {
        call.last_event = Some(crate::huawei::notify::FEE.to_owned());
        call.last_event_at = r.call_end_time.or(r.fail_time);
    }
}

/// Applies a number status pushed at `pushed_at` (see [`Notification::signed_at`]), unless the
/// number's current status came from a later push: then this one is a late retry of an older
/// push, and applying it would undo a newer status. Pushes of the same second apply in the
/// order they are stored.
fn store_num_status(
    store: &mut dyn IngestStore,
    info: &NumInfo,
    pushed_at: NaiveDateTime,
    stored: &mut Stored,
) -> Result<(), DbError> {
    let (Some(number), Some(status)) = (
        info.number.as_deref(),
        info.status
            .as_deref()
            .and_then(NumberStatus::from_huawei_code),
    ) else {
        stored.skipped += 1;
        log::warn!(
            "webhook: numStatus entry without a number or with an unknown status {:?}; kept raw only",
            info.status
        );
        return Ok(());
    };
    let Some((current, current_cause, current_pushed_at)) = store.number_status(number)? else {
        stored.unlinked += 1;
        log::warn!(
            "webhook: numStatus for {} which is not in the pool; kept raw only",
            mask_phone(number)
        );
        return Ok(());
    };
    let cause = if status == NumberStatus::Normal {
        None
    } else {
        info.cause.clone()
    };
    if current_pushed_at.is_some_and(|last| pushed_at < last) {
        stored.skipped += 1;
        log::warn!(
            "webhook: numStatus {:?} for {} was pushed at {pushed_at}, before the push its current status {current} came from; not applied",
            info.status,
            mask_phone(number),
        );
        return Ok(());
    }
    if current == status.as_str() && current_cause == cause {
        stored.duplicates += 1;
        store.set_number_status(
            number,
            status.as_str(),
            cause.as_deref(),
            db::now(),
            pushed_at,
        )?;
        return Ok(());
    }
    log::info!(
        "virtual number {} is now {} (Huawei status {:?}, cause {:?})",
        mask_phone(number),
        status.as_str(),
        info.status,
        info.cause
    );
    store.set_number_status(
        number,
        status.as_str(),
        cause.as_deref(),
        db::now(),
        pushed_at,
    )?;
    stored.new_items += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification() -> Notification {
        Notification::new(
            "/huawei/cdr".into(),
            None,
            true,
            None,
            "fee".into(),
            String::new(),
        )
    }

    fn pushed(cdr: serde_json::Value) -> Item {
        let mut n = notification();
        let fee = FeeInfo::from_value(&cdr).expect("a CDR object");
        n.push_cdr(fee, &cdr);
        n.items.pop().expect("one item")
    }

    fn record(item: Item) -> CallRecord {
        match item {
            Item::Cdr(record) => *record,
            other => panic!("expected a CDR row, got {other:?}"),
        }
    }

    /// A committed batch of one notification whose handler waits on the returned receiver.
    fn committed(
        wal_sync: Option<WalSync>,
    ) -> (Committed, oneshot::Receiver<Result<Stored, IngestError>>) {
        let (reply, rx) = oneshot::channel();
        let stored = Stored {
            new_items: 1,
            ..Stored::default()
        };
        let committed = Committed {
            jobs: vec![Job {
                notification: notification(),
                reply,
            }],
            results: vec![Ok(stored)],
            wal_sync,
        };
        (committed, rx)
    }

    /// A flush of a database in a folder that does not exist: it always fails.
    fn unflushable(dir: &tempfile::TempDir) -> WalSync {
        let missing = dir.path().join("no-such-dir").join("g.db");
        WalSync::of(&missing.display().to_string())
    }

    #[test]
    fn a_commit_is_answered_ok_once_its_wal_is_flushed() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("g.db");
        std::fs::write(&db, b"").expect("file");
        let metrics = IngestMetrics::default();
        let (done, mut rx) = committed(Some(WalSync::of(&db.display().to_string())));
        done.acknowledge(&metrics);
        let stored = rx.try_recv().expect("answered").expect("stored");
        assert_eq!(stored.new_items, 1);
        assert_eq!(metrics.notifications.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.items.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_commit_whose_wal_cannot_be_flushed_is_answered_503_not_200() {
        let dir = tempfile::tempdir().expect("dir");
        let metrics = IngestMetrics::default();
        let (done, mut rx) = committed(Some(unflushable(&dir)));
        done.acknowledge(&metrics);
        let err = rx.try_recv().expect("answered").expect_err("not durable");
        assert!(
            matches!(err, IngestError::Database(ref e) if e.is_unavailable()),
            "{err}"
        );
        let said = err.to_string();
        assert!(said.contains("flushing"), "{said}");
        assert_eq!(said.matches("no database connection").count(), 1, "{said}");
        assert_eq!(metrics.notifications.load(Ordering::Relaxed), 0);
        assert_eq!(metrics.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_acknowledger_answers_every_batch_waiting_by_the_one_flush_that_covers_them() {
        let dir = tempfile::tempdir().expect("dir");
        let sync = unflushable(&dir);
        // Three batches waiting at once, as the acknowledger would find them after a long flush.
        let (tx, rx) = mpsc::sync_channel(3);
        let (first, mut first_rx) = committed(Some(sync.clone()));
        let (second, mut second_rx) = committed(Some(sync));
        // Durable when committed (synchronous=FULL): the failed flush does not concern it.
        let (third, mut third_rx) = committed(None);
        for batch in [first, second, third] {
            tx.send(batch).expect("queued");
        }
        drop(tx);
        let metrics = IngestMetrics::default();
        acknowledger_loop(&rx, &metrics);
        for rx in [&mut first_rx, &mut second_rx] {
            assert!(rx.try_recv().expect("answered").is_err());
        }
        assert!(third_rx.try_recv().expect("answered").is_ok());
        assert_eq!(metrics.failed.load(Ordering::Relaxed), 2);
        assert_eq!(metrics.notifications.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_call_that_only_got_a_new_updated_at_is_not_written_again() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .expect("time");
        let before = new_call("s-1", t, t);
        let mut now = before.clone();
        now.updated_at = t + chrono::Duration::seconds(5);
        assert!(same_but_updated_at(&before, &now));
        now.answered_at = Some(t);
        assert!(!same_but_updated_at(&before, &now));
        let mut relinked = before.clone();
        relinked.binding_id = Some("b".into());
        assert!(!same_but_updated_at(&before, &relinked));
    }

    fn documented() -> serde_json::Value {
        json!({
            "icid": "i-1", "sessionId": "s-1", "direction": 0, "bindNum": "+8617000000001",
            "callInTime": "2026-11-29 08:00:00", "fwdAnswerTime": "2026-11-29 08:00:15",
            "callEndTime": "2026-11-29 08:03:10", "recordFlag": "0", "userData": null
        })
    }

    #[test]
    fn a_cdr_whose_columns_hold_everything_keeps_no_raw_copy() {
        let r = record(pushed(documented()));
        assert_eq!(r.raw, None);
        assert_eq!(r.dedup_key, "icid:i-1");
        assert_eq!(r.session_id, "s-1");
        assert_eq!(r.talk_seconds, Some(175));
        assert_eq!(r.record_flag, Some(0), "a number sent as a string is read");
    }

    #[test]
    fn a_cdr_with_more_than_its_columns_keeps_its_raw_json() {
        let mut extra = documented();
        extra["ttsPlayTimes"] = json!(2);
        let r = record(pushed(extra.clone()));
        let raw: serde_json::Value = serde_json::from_str(r.raw.as_deref().unwrap()).unwrap();
        assert_eq!(raw, extra);

        let mut bad_time = documented();
        bad_time["callEndTime"] = json!("yesterday");
        let r = record(pushed(bad_time));
        assert_eq!(r.call_end_time, None);
        assert!(r.raw.unwrap().contains("yesterday"));

        let mut huge = documented();
        huge["callDuration"] = json!(1_i64 << 40);
        let r = record(pushed(huge));
        assert_eq!(r.call_duration, None);
        assert!(r.raw.is_some());

        let mut odd_shape = documented();
        odd_shape["direction"] = json!({"in": true});
        let r = record(pushed(odd_shape));
        assert_eq!(r.direction, None);
        assert!(r.raw.is_some());
    }

    #[test]
    fn a_cdr_without_ids_and_an_event_without_time_are_unusable() {
        assert!(matches!(
            pushed(json!({"callInTime": "2026-11-29 08:00:00"})),
            Item::Unusable(_)
        ));
        let mut n = notification();
        n.push_event(
            "answer",
            StatusInfo {
                session_id: Some("s-1".into()),
                timestamp: Some("not a time".into()),
                ..StatusInfo::default()
            },
        );
        assert!(matches!(n.items[..], [Item::Unusable(_)]));
    }
}
