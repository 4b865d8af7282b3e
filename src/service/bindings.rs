//! Binding flows: create (reserve, call Huawei, settle), look up, modify, release, sync,
//! reconcile and expire.

use std::collections::HashSet;
use std::time::Duration;

use chrono::NaiveDateTime;

use super::allocation::{self, Limits};
use super::{Actor, FieldError, ServiceError};
use crate::db::calls::{self, CallStats};
use crate::db::history::Audit;
use crate::db::models::Binding;
use crate::db::{self, bindings, Db};
use crate::domain::{
    mask_phone, AreaCode, BindingStatus, ExtensionNumber, NumberChoice, OrderId, PhoneNumber,
    ToneName, TtlMinutes, UserData,
};
use crate::huawei::wire::{self, BindRequest, BindingSelector, ModifyRequest, QueryResponse};
use crate::huawei::{HuaweiClient, HuaweiError, UpstreamKind};

/// Where A's own calls to X go when no callback record exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    Num(PhoneNumber),
    Tone(ToneName),
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct CreateBinding {
    pub order_id: OrderId,
    pub bind_num: PhoneNumber,
    pub virtual_num: Option<PhoneNumber>,
    pub area_code: Option<AreaCode>,
    pub extend_num: Option<ExtensionNumber>,
    pub record: bool,
    pub record_hint_tone: Option<ToneName>,
    pub callback: Option<Callback>,
    pub ttl_minutes: Option<TtlMinutes>,
    pub callback_ttl_minutes: Option<TtlMinutes>,
    pub user_data: Option<UserData>,
    pub created_by: String,
}

/// A validated modify request; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct ModifyBinding {
    pub record: Option<bool>,
    pub record_hint_tone: Option<ToneName>,
    pub callback: Option<Callback>,
    pub ttl: Option<Lifetime>,
    pub callback_ttl_minutes: Option<TtlMinutes>,
}

/// A binding's new lifetime: minutes from now, or none (Huawei's `bindExpiredTime` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Minutes(TtlMinutes),
    Unlimited,
}

impl Lifetime {
    fn minutes(self) -> Option<TtlMinutes> {
        match self {
            Self::Minutes(t) => Some(t),
            Self::Unlimited => None,
        }
    }
}

impl ModifyBinding {
    pub fn is_empty(&self) -> bool {
        self.record.is_none()
            && self.record_hint_tone.is_none()
            && self.callback.is_none()
            && self.ttl.is_none()
            && self.callback_ttl_minutes.is_none()
    }
}

/// How a create ended.
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    /// A new binding, confirmed by Huawei.
    Created(Binding),
    /// The same request was made before; this is its binding (no Huawei call was made).
    Existing(Binding),
    /// Huawei's answer was lost (timeout, broken connection); the reconciler will settle it.
    Pending(Binding),
}

/// What the service needs to know of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub limits: Limits,
    pub quarantine: Duration,
    pub extension_retry_limit: u32,
    /// How long a create may take at most (Huawei's total timeout); pending rows older than
    /// this (plus a margin) are no longer in flight.
    pub upstream_timeout: Duration,
}

impl Policy {
    fn quarantine_since(&self, now: NaiveDateTime) -> NaiveDateTime {
        now - chrono::Duration::from_std(self.quarantine).unwrap_or(chrono::Duration::MAX)
    }

    /// How long a reconciler's claim on a row lasts: one Huawei call with its retries (or a
    /// short listing), with room to spare. A claim outliving its holder (killed) delays that
    /// row's settling by at most this.
    pub fn reconcile_lease(&self) -> Duration {
        self.upstream_timeout * 3 + Duration::from_secs(5)
    }

    /// Pending rows last touched before this are not in flight any more.
    pub fn settle_cutoff(&self, now: NaiveDateTime) -> NaiveDateTime {
        now - chrono::Duration::from_std(self.upstream_timeout + Duration::from_secs(2))
            .unwrap_or(chrono::Duration::MAX)
    }
}

/// The binding reads: what the API's GETs and the `bindings` command show. Borrowed from a
/// [`BindingService`], or made on a bare [`Db`] where no Huawei client exists (the CLI).
pub struct BindingReads<'a> {
    db: &'a Db,
}

impl<'a> BindingReads<'a> {
    pub fn new(db: &'a Db) -> Self {
        Self { db }
    }

    /// A binding the actor may see; another client's binding is "not found" like a missing one.
    pub async fn get(&self, id: String, actor: &Actor) -> Result<Binding, ServiceError> {
        let row = self.db.run(move |conn| load(conn, &id)).await?;
        visible(row, actor)
    }

    /// The binding's history, oldest first.
    pub async fn history(
        &self,
        id: String,
        actor: &Actor,
    ) -> Result<Vec<db::history::HistoryRow>, ServiceError> {
        let actor = actor.clone();
        self.db
            .run(move |conn| {
                visible(load(conn, &id)?, &actor)?;
                Ok(db::history::of_binding(conn, &id)?)
            })
            .await
    }

    /// A binding with its call statistics, read in one statement.
    pub async fn get_with_stats(
        &self,
        id: String,
        actor: &Actor,
    ) -> Result<(Binding, CallStats), ServiceError> {
        let (row, stats) = self
            .db
            .run(move |conn| calls::binding_with_stats(conn, &id)?.ok_or_else(|| not_found(&id)))
            .await?;
        Ok((visible(row, actor)?, stats))
    }

    /// Up to `limit` bindings matching `filter`, newest first, with their call statistics, and
    /// whether more match; one visit to the database.
    pub async fn list(
        &self,
        mut filter: bindings::Filter,
        limit: i64,
        actor: &Actor,
    ) -> Result<(Vec<(Binding, CallStats)>, bool), ServiceError> {
        if !actor.sees_all() {
            filter.created_by = Some(actor.name().to_owned());
        }
        Ok(self
            .db
            .run(move |conn| {
                let mut rows = bindings::list(conn, &filter, limit + 1)?;
                let more = rows.len() as i64 > limit;
                rows.truncate(usize::try_from(limit).unwrap_or(0));
                let ids: Vec<String> = rows.iter().map(|b| b.id.clone()).collect();
                let mut stats = calls::stats_of(conn, &ids)?;
                let items = rows
                    .into_iter()
                    .map(|b| {
                        let s = stats.remove(&b.id).unwrap_or_default();
                        (b, s)
                    })
                    .collect();
                Ok::<_, db::DbError>((items, more))
            })
            .await?)
    }
}

/// The binding flows, for one thread (the Huawei client is per worker).
pub struct BindingService {
    db: Db,
    huawei: HuaweiClient,
    policy: Policy,
}

enum Reservation {
    New(Binding),
    Existing(Binding),
}

impl BindingService {
    pub fn new(db: Db, huawei: HuaweiClient, policy: Policy) -> Self {
        Self { db, huawei, policy }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn huawei(&self) -> &HuaweiClient {
        &self.huawei
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Loads a binding, lets `change` edit it (given the current time), and saves it, all in
    /// one write transaction, so concurrent flows on the same binding cannot lose an update.
    async fn update<F>(&self, actor: &Actor, id: String, change: F) -> Result<Binding, ServiceError>
    where
        F: Fn(&mut Binding, NaiveDateTime) + Clone + Send + 'static,
    {
        let actor = actor.clone();
        self.write_retrying(move |conn| {
            let before = lock(conn, &id)?;
            let mut row = before.clone();
            let now = db::now();
            change(&mut row, now);
            row.updated_at = now;
            bindings::update(conn, actor.audit(), &before, &row)?;
            Ok(row)
        })
        .await
    }

    /// Runs `work` in a write transaction, and again (up to [`WRITE_ATTEMPTS`] runs) when
    /// PostgreSQL aborted it as a deadlock victim or for a serialization failure: two instances
    /// working on one order can each wait for the other's unique key (a reservation against an
    /// activation), and the aborted one wrote nothing.
    async fn write_retrying<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        F: Fn(&mut db::DbConn) -> Result<T, ServiceError> + Clone + Send + 'static,
        T: Send + 'static,
    {
        let mut attempt = 1;
        loop {
            match self.db.write(work.clone()).await {
                Err(ServiceError::Database(e))
                    if e.is_transient_conflict() && attempt < WRITE_ATTEMPTS =>
                {
                    log::debug!(
                        "write transaction aborted: {e}; running it again (attempt {attempt})"
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Creates a binding, idempotently per client, order_id and bind_num.
    ///
    /// The row is committed as `pending` (with X and E chosen) before Huawei is called, so a
    /// binding can never exist at Huawei without a row here: if Huawei's answer is lost, the
    /// reconciler finds the binding by X+E.
    pub async fn create(
        &self,
        req: CreateBinding,
        actor: &Actor,
    ) -> Result<CreateOutcome, ServiceError> {
        if let (Some(cb), Some(ttl)) = (req.callback_ttl_minutes, req.ttl_minutes) {
            if cb.get() > ttl.get() {
                return Err(ServiceError::invalid(
                    "callback_ttl_minutes",
                    "must not be greater than ttl_minutes",
                ));
            }
        }
        // While Huawei is given a rest, refuse before anything is stored.
        self.huawei
            .guard()
            .check()
            .map_err(|e| ServiceError::upstream(e, None))?;
        let (policy, request, who) = (self.policy, req.clone(), actor.clone());
        let reservation = self
            .write_retrying(move |conn| reserve(conn, &who, &request, &policy))
            .await;
        let mut row = match reservation {
            Ok(Reservation::New(row)) => row,
            Ok(Reservation::Existing(row)) => {
                let settled = self.settled_existing(row).await?;
                // The first attempt failed while we waited: this request makes a fresh one.
                if let CreateOutcome::Existing(b) = &settled {
                    if b.status() == BindingStatus::Failed {
                        return Box::pin(self.create(req, actor)).await;
                    }
                }
                return Ok(settled);
            }
            // Two gateways raced past the check: the database's unique index decided.
            Err(ServiceError::Database(e)) if e.is_unique_violation() => {
                let (c, o, b) = (
                    req.created_by.clone(),
                    req.order_id.to_string(),
                    req.bind_num.as_str().to_owned(),
                );
                let existing = self
                    .db
                    .run(move |conn| bindings::find_live(conn, &c, &o, &b))
                    .await?
                    .ok_or(ServiceError::Database(e))?;
                check_same_request(&existing, &req)?;
                return self.settled_existing(existing).await;
            }
            Err(e) => return Err(e),
        };
        log::info!(
            binding_id = row.id.as_str(), order_id = row.order_id.as_str();
            "binding {} reserved for order {}: X {} E {}",
            row.id, row.order_id,
            row.virtual_num.as_deref().map_or_else(|| "(huawei chooses)".into(), mask_phone),
            row.extend_num.as_deref().unwrap_or("-")
        );

        let mut refused_extensions = HashSet::new();
        let mut attempt = 1;
        loop {
            let bind_req = bind_request(&row, &req);
            match self.huawei.bind(&bind_req).await {
                Ok(resp) => {
                    let ttl = req.ttl_minutes;
                    let active = self
                        .update(actor, row.id.clone(), move |row, now| {
                            row.set_status(BindingStatus::Active);
                            row.subscription_id.clone_from(&resp.subscription_id);
                            if resp.virtual_num.is_some() {
                                row.virtual_num.clone_from(&resp.virtual_num);
                            }
                            if resp.extend_num.is_some() {
                                row.extend_num.clone_from(&resp.extend_num);
                            }
                            row.expires_at = ttl.map(|t| now + minutes(t));
                            row.last_error = None;
                        })
                        .await?;
                    log::info!(
                        binding_id = active.id.as_str();
                        "binding {} active at Huawei as {}", active.id,
                        active.subscription_id.as_deref().unwrap_or("?")
                    );
                    return Ok(CreateOutcome::Created(active));
                }
                Err(e)
                    if e.kind() == UpstreamKind::ExtensionTaken
                        && req.extend_num.is_none()
                        && row.virtual_num.is_some()
                        && attempt < self.policy.extension_retry_limit =>
                {
                    // Someone else holds this X+E at Huawei (another system on the same app):
                    // pick another extension and try again.
                    attempt += 1;
                    if let Some(e) = row.extend_num.clone() {
                        refused_extensions.insert(e);
                    }
                    log::warn!(
                        binding_id = row.id.as_str();
                        "Huawei says extension {} of {} is taken ({}); retrying with another (attempt {attempt})",
                        row.extend_num.as_deref().unwrap_or("-"),
                        row.virtual_num.as_deref().map(mask_phone).unwrap_or_default(),
                        e.summary()
                    );
                    let (id, excluded, policy, who) = (
                        row.id.clone(),
                        refused_extensions.clone(),
                        self.policy,
                        actor.clone(),
                    );
                    let moved = self
                        .db
                        .write(move |conn| {
                            let before = lock(conn, &id)?;
                            let mut row = before.clone();
                            let x = row.virtual_num.clone().unwrap_or_default();
                            // Extensions of X are picked one transaction at a time.
                            let e = match db::numbers::lock(conn, &x)? {
                                Some(number) => allocation::pick_extension(
                                    conn,
                                    policy.limits,
                                    &number,
                                    policy.quarantine_since(db::now()),
                                    &excluded,
                                )?,
                                None => None,
                            };
                            row.extend_num = e.clone();
                            row.updated_at = db::now();
                            bindings::update(conn, who.audit(), &before, &row)?;
                            Ok::<_, ServiceError>((row, e.is_some()))
                        })
                        .await?;
                    row = moved.0;
                    if !moved.1 {
                        return Err(self
                            .fail(
                                actor,
                                &row,
                                e,
                                "no other free extension on this virtual number",
                            )
                            .await);
                    }
                }
                Err(e) if e.outcome_unknown() => {
                    log::warn!(
                        binding_id = row.id.as_str();
                        "outcome of binding {} unknown ({}); left pending for the reconciler",
                        row.id, e.summary()
                    );
                    let note = format!("outcome unknown, reconciling: {}", e.summary());
                    let pending = self
                        .update(actor, row.id.clone(), move |row, _| {
                            row.last_error = Some(note.clone())
                        })
                        .await?;
                    return Ok(CreateOutcome::Pending(pending));
                }
                Err(e) => {
                    let note = if e.kind() == UpstreamKind::ExtensionTaken {
                        "extension taken at Huawei"
                    } else {
                        "refused by Huawei"
                    };
                    return Err(self.fail(actor, &row, e, note).await);
                }
            }
        }
    }

    /// Marks the row failed with Huawei's answer and returns the error for the caller.
    async fn fail(
        &self,
        actor: &Actor,
        row: &Binding,
        err: HuaweiError,
        why: &str,
    ) -> ServiceError {
        log::warn!(
            binding_id = row.id.as_str();
            "binding {} failed: {why}: {}", row.id, err.summary()
        );
        let note = err.summary();
        let saved = self
            .update(actor, row.id.clone(), move |row, _| {
                row.set_status(BindingStatus::Failed);
                row.last_error = Some(note.clone());
            })
            .await;
        if let Err(e) = saved {
            return e;
        }
        if err.kind() == UpstreamKind::ExtensionTaken {
            return if row.number_choice() == NumberChoice::Client && row.extend_num.is_some() {
                ServiceError::Conflict(format!(
                    "{why}: {} (binding {} is failed)",
                    err.summary(),
                    row.id
                ))
            } else {
                ServiceError::NoCapacity(format!("{why}: {}", err.summary()))
            };
        }
        ServiceError::upstream(err, Some(&row.id))
    }

    /// A repeated create: if the first is still in flight, wait (bounded) for it to settle.
    async fn settled_existing(&self, row: Binding) -> Result<CreateOutcome, ServiceError> {
        let deadline =
            std::time::Instant::now() + self.policy.upstream_timeout + Duration::from_secs(2);
        let mut row = row;
        while row.status() == BindingStatus::Pending && std::time::Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            let id = row.id.clone();
            row = self.db.run(move |conn| load(conn, &id)).await?;
        }
        Ok(if row.status() == BindingStatus::Pending {
            CreateOutcome::Pending(row)
        } else {
            CreateOutcome::Existing(row)
        })
    }

    /// The reads, which need no Huawei client.
    pub fn reads(&self) -> BindingReads<'_> {
        BindingReads::new(&self.db)
    }

    /// A binding the actor may see; another client's binding is "not found" like a missing one.
    pub async fn get(&self, id: String, actor: &Actor) -> Result<Binding, ServiceError> {
        self.reads().get(id, actor).await
    }

    /// See [`BindingReads::history`].
    pub async fn history(
        &self,
        id: String,
        actor: &Actor,
    ) -> Result<Vec<db::history::HistoryRow>, ServiceError> {
        self.reads().history(id, actor).await
    }

    /// Call statistics of a binding (derived from its calls).
    pub async fn call_stats(&self, id: String) -> Result<CallStats, ServiceError> {
        Ok(self.db.run(move |conn| calls::stats_one(conn, &id)).await?)
    }

    /// See [`BindingReads::get_with_stats`].
    pub async fn get_with_stats(
        &self,
        id: String,
        actor: &Actor,
    ) -> Result<(Binding, CallStats), ServiceError> {
        self.reads().get_with_stats(id, actor).await
    }

    /// See [`BindingReads::list`].
    pub async fn list(
        &self,
        filter: bindings::Filter,
        limit: i64,
        actor: &Actor,
    ) -> Result<(Vec<(Binding, CallStats)>, bool), ServiceError> {
        self.reads().list(filter, limit, actor).await
    }

    /// Changes options of an active binding at Huawei, then here.
    pub async fn modify(
        &self,
        id: String,
        change: ModifyBinding,
        actor: &Actor,
    ) -> Result<Binding, ServiceError> {
        if change.is_empty() {
            return Err(ServiceError::invalid("body", "names nothing to change"));
        }
        let row = self.get(id.clone(), actor).await?;
        if row.status() != BindingStatus::Active {
            return Err(ServiceError::Conflict(format!(
                "binding is {}; only active bindings can be modified",
                row.status
            )));
        }
        let ttl = match change.ttl {
            Some(l) => l.minutes().map(TtlMinutes::get),
            None => row.ttl_minutes.and_then(|v| u32::try_from(v).ok()),
        };
        let cb_ttl = change
            .callback_ttl_minutes
            .map(TtlMinutes::get)
            .or(row.callback_ttl_minutes.and_then(|v| u32::try_from(v).ok()));
        if let (Some(cb), Some(ttl)) = (cb_ttl, ttl) {
            if cb > ttl {
                return Err(ServiceError::Invalid(vec![FieldError::new(
                    "callback_ttl_minutes",
                    format!("must not be greater than ttl_minutes ({ttl})"),
                )]));
            }
        }
        let mut req = ModifyRequest {
            record_flag: change.record.map(|r| r.to_string()),
            record_hint_tone: change
                .record_hint_tone
                .as_ref()
                .map(|t| t.as_str().to_owned()),
            ..selector_modify(&row)
        };
        match &change.callback {
            Some(Callback::Num(n)) => req.callback_num = Some(n.as_str().to_owned()),
            Some(Callback::Tone(t)) => req.callback_tone = Some(t.as_str().to_owned()),
            None => {}
        }
        if change.ttl.is_some() || change.callback_ttl_minutes.is_some() {
            req.time_unit = Some(wire::TIME_UNIT_MINUTES.to_owned());
            // 0 is Huawei's "never expires".
            req.bind_expired_time = change
                .ttl
                .map(|l| l.minutes().map_or(0, |t| i64::from(t.get())));
            req.callback_expired_time = change.callback_ttl_minutes.map(|t| i64::from(t.get()));
        }
        if let Err(e) = self.huawei.modify(&req).await {
            return Err(self.upstream_failure(actor, &row, e).await);
        }
        self.update(actor, id, move |row, now| {
            if let Some(r) = change.record {
                row.record = r;
            }
            if let Some(t) = &change.record_hint_tone {
                row.record_hint_tone = Some(t.as_str().to_owned());
            }
            match &change.callback {
                Some(Callback::Num(n)) => {
                    row.callback_num = Some(n.as_str().to_owned());
                    row.callback_tone = None;
                }
                Some(Callback::Tone(t)) => {
                    row.callback_tone = Some(t.as_str().to_owned());
                    row.callback_num = None;
                }
                None => {}
            }
            match change.ttl {
                Some(Lifetime::Minutes(t)) => {
                    row.ttl_minutes = Some(to_i32(t));
                    row.expires_at = Some(now + minutes(t));
                }
                Some(Lifetime::Unlimited) => {
                    row.ttl_minutes = None;
                    row.expires_at = None;
                }
                None => {}
            }
            if let Some(t) = change.callback_ttl_minutes {
                row.callback_ttl_minutes = Some(to_i32(t));
            }
            row.last_error = None;
        })
        .await
    }

    /// Releases a binding at Huawei. Idempotent: an ended binding is returned as it is, and
    /// Huawei's "does not exist" settles it as released too.
    ///
    /// The request is recorded on the row before Huawei is called: if the gateway stops before
    /// Huawei's answer is recorded, the reconciler finishes the release.
    pub async fn release(&self, id: String, actor: &Actor) -> Result<Binding, ServiceError> {
        let row = self.get(id.clone(), actor).await?;
        if !row.status().is_live() {
            return Ok(row);
        }
        let Some(sel) = selector(&row) else {
            return Err(ServiceError::Conflict(
                "binding is still pending and Huawei has not said which number it chose; retry after it settles"
                    .into(),
            ));
        };
        // Nothing is recorded while Huawei is given a rest: the unbind would not go out.
        self.huawei
            .guard()
            .check()
            .map_err(|e| ServiceError::upstream(e, Some(&row.id)))?;
        let requested = id.clone();
        self.db
            .write(move |conn| bindings::request_release(conn, &requested, db::now()))
            .await?;
        let note = match self.huawei.unbind(&sel).await {
            Ok(_) => None,
            Err(e) if e.kind() == UpstreamKind::NotFound => Some(format!(
                "Huawei no longer had this binding: {}",
                e.summary()
            )),
            Err(e) => {
                if !e.outcome_unknown() {
                    // Huawei did not unbind: the binding stays as it was.
                    let cancelled = id.clone();
                    self.db
                        .write(move |conn| bindings::cancel_release(conn, &cancelled))
                        .await?;
                }
                return Err(self.upstream_failure(actor, &row, e).await);
            }
        };
        self.released(actor, id, note).await
    }

    /// Records a release Huawei confirmed (or whose binding it no longer had).
    async fn released(
        &self,
        actor: &Actor,
        id: String,
        note: Option<String>,
    ) -> Result<Binding, ServiceError> {
        log::info!(binding_id = id.as_str(); "binding {id} released");
        self.update(actor, id, move |row, now| {
            // A concurrent release may have settled it meanwhile; keep its record then.
            if row.status().is_live() {
                row.set_status(BindingStatus::Released);
                row.released_at = Some(now);
                row.last_error.clone_from(&note);
            }
        })
        .await
    }

    /// Asks Huawei for the binding and brings our row in line with its answer.
    pub async fn sync(&self, id: String, actor: &Actor) -> Result<Binding, ServiceError> {
        let row = self.get(id, actor).await?;
        let Some(sel) = selector(&row) else {
            return Err(ServiceError::Conflict(
                "binding has neither a subscription id nor a virtual number and extension to look it up by"
                    .into(),
            ));
        };
        let answer = match self.huawei.query(&sel).await {
            Ok(q) => Some(q),
            Err(e) if e.kind() == UpstreamKind::NotFound => None,
            Err(e) => return Err(self.upstream_failure(actor, &row, e).await),
        };
        self.settle(actor, row, answer).await
    }

    /// Settles every pending binding whose create call has ended. Returns how many changed.
    ///
    /// Each row is claimed first (a lease in the row, taken in a short transaction), so
    /// reconcilers of several instances on one database never ask Huawei about, or settle, the
    /// same row at once; a row whose Huawei query failed keeps its claim until the lease runs
    /// out, and is tried again after that.
    pub async fn reconcile_pending(&self) -> Result<usize, ServiceError> {
        let reconciler = Actor::job(RECONCILER);
        let owner = format!("pid {} run {}", std::process::id(), uuid::Uuid::now_v7());
        let lease = chrono::Duration::from_std(self.policy.reconcile_lease())
            .unwrap_or(chrono::Duration::MAX);
        let mut settled = 0;
        for _ in 0..RECONCILE_BATCH {
            let (claimant, policy) = (owner.clone(), self.policy);
            let claimed = self
                .db
                .write(move |conn| {
                    let now = db::now();
                    let cutoff = policy.settle_cutoff(now);
                    bindings::claim_pending(conn, cutoff, now, &claimant, now + lease)
                })
                .await?;
            let Some(row) = claimed else {
                break;
            };
            let before = row.status();
            let answer = match selector(&row) {
                Some(sel) => self.huawei.query(&sel).await,
                None => match self.find_chosen_by_huawei(&row).await {
                    Ok(Found::One(q)) => Ok(*q),
                    Ok(Found::None) => Err(HuaweiError::Rejected {
                        http_status: 200,
                        resultcode: wire::codes::RECORD_NOT_EXIST.into(),
                        resultdesc: "no binding of this number and userData at Huawei".into(),
                    }),
                    Ok(Found::Several(n)) => {
                        log::warn!(
                            binding_id = row.id.as_str();
                            "pending binding {} matches {n} bindings at Huawei; left for an operator",
                            row.id
                        );
                        let note = format!(
                            "outcome unknown and Huawei chose the number: {n} bindings at Huawei have this number and userData; check the Huawei console, then sync or release by hand"
                        );
                        self.update(&reconciler, row.id.clone(), move |row, _| {
                            row.last_error = Some(note.clone())
                        })
                        .await?;
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            let answer = match answer {
                Ok(q) => Some(q),
                Err(e) if e.kind() == UpstreamKind::NotFound => None,
                Err(e @ HuaweiError::NotCalled { .. }) => {
                    // The breaker is open or the calls are capped: the next run tries again,
                    // here or on another instance.
                    log::debug!("reconciler pauses: {}", e.summary());
                    let (id, owner) = (row.id.clone(), owner.clone());
                    self.db
                        .write(move |conn| bindings::release_claim(conn, &id, &owner))
                        .await?;
                    break;
                }
                Err(e) => {
                    log::warn!(
                        binding_id = row.id.as_str();
                        "reconciling binding {} failed, will retry: {}", row.id, e.summary()
                    );
                    continue;
                }
            };
            let after = self.settle(&reconciler, row, answer).await?;
            if after.status() != before {
                settled += 1;
            }
        }
        Ok(settled + self.finish_releases(&owner, lease).await?)
    }

    /// Finishes releases that were asked for and never recorded (the gateway stopped while
    /// Huawei was unbinding): unbinds again, claimed like pending rows. Returns how many.
    async fn finish_releases(
        &self,
        owner: &str,
        lease: chrono::Duration,
    ) -> Result<usize, ServiceError> {
        let reconciler = Actor::job(RECONCILER);
        let mut finished = 0;
        for _ in 0..RECONCILE_BATCH {
            let (claimant, policy) = (owner.to_owned(), self.policy);
            let claimed = self
                .db
                .write(move |conn| {
                    let now = db::now();
                    let cutoff = policy.settle_cutoff(now);
                    bindings::claim_release(conn, cutoff, now, &claimant, now + lease)
                })
                .await?;
            let Some(row) = claimed else {
                break;
            };
            let Some(sel) = selector(&row) else {
                continue;
            };
            let note = match self.huawei.unbind(&sel).await {
                Ok(_) => None,
                Err(e) if e.kind() == UpstreamKind::NotFound => Some(format!(
                    "Huawei no longer had this binding: {}",
                    e.summary()
                )),
                Err(e @ HuaweiError::NotCalled { .. }) => {
                    log::debug!("reconciler pauses: {}", e.summary());
                    let (id, claimant) = (row.id.clone(), owner.to_owned());
                    self.db
                        .write(move |conn| bindings::release_claim(conn, &id, &claimant))
                        .await?;
                    break;
                }
                Err(e) => {
                    log::warn!(
                        binding_id = row.id.as_str();
                        "finishing the release of binding {} failed, will retry: {}",
                        row.id, e.summary()
                    );
                    continue;
                }
            };
            self.released(&reconciler, row.id, note).await?;
            finished += 1;
        }
        Ok(finished)
    }

    /// A pending create whose X Huawei chose (so no X+E to query by) and whose answer was lost:
    /// looks through the app's numbers that hold bindings for one of this A with this row's
    /// userData that no other row here stands for. Huawei offers no lookup by A, so this lists
    /// (QueryAXEBindingCount, then QueryAXEBinding v2.0 per number holding bindings).
    async fn find_chosen_by_huawei(&self, row: &Binding) -> Result<Found, HuaweiError> {
        let mut matches = Vec::new();
        for number in self.huawei.list_numbers().await? {
            if number.bind_count == 0 {
                continue;
            }
            for b in self.huawei.list_bindings_on(&number.virtual_num).await? {
                if b.bind_num == row.bind_num && b.user_data == row.user_data {
                    matches.push(b);
                }
            }
        }
        let mut unclaimed = Vec::new();
        for b in matches {
            let (id, sub, x, e) = (
                row.id.clone(),
                b.subscription_id.clone(),
                b.virtual_num.clone(),
                b.extend_num.clone(),
            );
            let held = self
                .db
                .run(move |conn| bindings::held_by_another(conn, &id, sub.as_deref(), &x, &e))
                .await;
            match held {
                Ok(false) => unclaimed.push(b),
                Ok(true) => {}
                // Cannot tell: count it, so the row is not settled on a guess.
                Err(_) => unclaimed.push(b),
            }
        }
        Ok(match unclaimed.len() {
            0 => Found::None,
            1 => {
                let b = unclaimed.remove(0);
                Found::One(Box::new(QueryResponse {
                    resultcode: wire::codes::SUCCESS.into(),
                    subscription_id: b.subscription_id,
                    virtual_num: Some(b.virtual_num),
                    extend_num: Some(b.extend_num),
                    bind_num: Some(b.bind_num),
                    user_data: b.user_data,
                    ..QueryResponse::default()
                }))
            }
            n => Found::Several(n),
        })
    }

    /// Links recent calls stored without a binding whose binding is known now (see
    /// [`calls::link_orphaned_calls`]). Returns how many.
    pub async fn link_orphaned_calls(&self) -> Result<usize, ServiceError> {
        let since = db::now() - chrono::Duration::minutes(ORPHAN_WINDOW_MINUTES);
        Ok(self
            .db
            .write(move |conn| calls::link_orphaned_calls(conn, since, ORPHAN_SWEEP_LIMIT))
            .await?)
    }

    /// Marks bindings past `expires_at` as expired, in batches. Returns how many.
    pub async fn expire_due(&self) -> Result<usize, ServiceError> {
        self.in_batches(|conn| {
            bindings::expire_due(conn, Audit::system(EXPIRY), db::now(), SWEEP_BATCH)
        })
        .await
    }

    /// Ends the quarantine of extensions released longer ago than the quarantine, in batches,
    /// so their numbers' counters show them free again. Returns how many.
    pub async fn end_quarantines(&self) -> Result<usize, ServiceError> {
        let policy = self.policy;
        self.in_batches(move |conn| {
            bindings::end_quarantines(conn, policy.quarantine_since(db::now()), SWEEP_BATCH)
        })
        .await
    }

    /// Runs `batch` in short write transactions until one finds nothing more to do.
    async fn in_batches<F>(&self, batch: F) -> Result<usize, ServiceError>
    where
        F: Fn(&mut db::DbConn) -> Result<usize, db::DbError> + Clone + Send + 'static,
    {
        let mut total = 0;
        loop {
            let step = batch.clone();
            let n = self.db.write(step).await?;
            total += n;
            if n < SWEEP_BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Applies Huawei's view (`None`: Huawei has no such binding) to our row.
    async fn settle(
        &self,
        actor: &Actor,
        row: Binding,
        answer: Option<QueryResponse>,
    ) -> Result<Binding, ServiceError> {
        self.update(actor, row.id, move |row, now| {
            let status = row.status();
            match (&answer, status) {
                (Some(q), BindingStatus::Pending | BindingStatus::Active) => {
                    if q.bind_num.as_deref().is_some_and(|a| a != row.bind_num) {
                        // X+E is held at Huawei by a binding that is not this one.
                        row.set_status(BindingStatus::Failed);
                        row.last_error = Some(
                            "Huawei holds this virtual number and extension for another number"
                                .into(),
                        );
                        return;
                    }
                    if row.virtual_num.is_none() {
                        // Huawei chose X (and E); the lost answer would have said which.
                        row.virtual_num.clone_from(&q.virtual_num);
                        row.extend_num.clone_from(&q.extend_num);
                    }
                    if status == BindingStatus::Pending {
                        let ttl = row.ttl_minutes.and_then(|t| u32::try_from(t).ok());
                        row.expires_at =
                            ttl.map(|t| row.created_at + chrono::Duration::minutes(i64::from(t)));
                    }
                    row.set_status(BindingStatus::Active);
                    if q.subscription_id.is_some() {
                        row.subscription_id.clone_from(&q.subscription_id);
                    }
                    row.last_error = None;
                }
                (Some(q), _) => {
                    row.last_error = Some(format!(
                        "Huawei still reports this binding (subscriptionId {})",
                        q.subscription_id.as_deref().unwrap_or("?")
                    ));
                }
                (None, BindingStatus::Pending) => {
                    row.set_status(BindingStatus::Failed);
                    row.last_error = Some("not created at Huawei".into());
                }
                (None, BindingStatus::Active) => {
                    row.set_status(BindingStatus::Expired);
                    row.released_at = Some(now);
                    row.last_error = Some("Huawei no longer has this binding".into());
                }
                (None, _) => {}
            }
        })
        .await
    }

    /// Records an upstream failure on the row (for admins), and turns it into the error.
    /// Huawei's "does not exist" on an active binding also marks it expired.
    async fn upstream_failure(
        &self,
        actor: &Actor,
        row: &Binding,
        err: HuaweiError,
    ) -> ServiceError {
        if matches!(err, HuaweiError::NotCalled { .. }) {
            // Nothing happened at Huawei; no need to write that on the row.
            return ServiceError::upstream(err, Some(&row.id));
        }
        let note = err.summary();
        let gone = err.kind() == UpstreamKind::NotFound;
        let saved = self
            .update(actor, row.id.clone(), move |row, now| {
                if gone && row.status() == BindingStatus::Active {
                    row.set_status(BindingStatus::Expired);
                    row.released_at = Some(now);
                }
                row.last_error = Some(note.clone());
            })
            .await;
        if let Err(e) = saved {
            return e;
        }
        if gone {
            return ServiceError::Conflict(format!(
                "Huawei no longer has this binding ({}); it is now expired",
                err.summary()
            ));
        }
        ServiceError::upstream(err, Some(&row.id))
    }
}

/// What a search at Huawei for a binding whose X Huawei chose found.
enum Found {
    One(Box<QueryResponse>),
    None,
    Several(usize),
}

/// How far back the orphaned-calls sweep looks, and how many unlinked calls it checks a run.
const ORPHAN_WINDOW_MINUTES: i64 = 15;
const ORPHAN_SWEEP_LIMIT: i64 = 200;

/// Pending rows one reconciler run settles at most.
const RECONCILE_BATCH: usize = 100;

/// The actors of the background jobs, as the bindings' history names them.
const RECONCILER: &str = "reconciler";
const EXPIRY: &str = "expiry";

/// Rows one sweep transaction changes at most: short, so API writes never wait long for one.
const SWEEP_BATCH: i64 = 500;

fn load(conn: &mut db::DbConn, id: &str) -> Result<Binding, ServiceError> {
    bindings::find(conn, id)?.ok_or_else(|| not_found(id))
}

/// [`load`] for a change: the row stays locked until the transaction ends.
fn lock(conn: &mut db::DbConn, id: &str) -> Result<Binding, ServiceError> {
    bindings::lock(conn, id)?.ok_or_else(|| not_found(id))
}

fn visible(row: Binding, actor: &Actor) -> Result<Binding, ServiceError> {
    if actor.may_see(&row.created_by) {
        Ok(row)
    } else {
        Err(not_found(&row.id))
    }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no binding {id}"))
}

/// Inside the write transaction: return the live binding of the pair, or allocate X+E and
/// insert a pending row.
/// Runs of a write transaction that PostgreSQL aborts for a deadlock or serialization failure.
const WRITE_ATTEMPTS: u32 = 3;

fn reserve(
    conn: &mut db::DbConn,
    actor: &Actor,
    req: &CreateBinding,
    policy: &Policy,
) -> Result<Reservation, ServiceError> {
    let live = bindings::find_live(
        conn,
        &req.created_by,
        req.order_id.as_str(),
        req.bind_num.as_str(),
    )?;
    if let Some(existing) = live {
        check_same_request(&existing, req)?;
        return Ok(Reservation::Existing(existing));
    }
    let now = db::now();
    let alloc = allocation::allocate(
        conn,
        policy.limits,
        req.virtual_num.as_ref().map(PhoneNumber::as_str),
        req.extend_num.as_ref(),
        req.area_code.as_ref(),
        policy.quarantine_since(now),
        &HashSet::new(),
    )?;
    let (callback_num, callback_tone) = split_callback(req.callback.as_ref());
    let row = Binding {
        id: uuid::Uuid::now_v7().to_string(),
        order_id: req.order_id.as_str().to_owned(),
        status: BindingStatus::Pending.as_str().to_owned(),
        bind_num: req.bind_num.as_str().to_owned(),
        virtual_num: alloc.virtual_num,
        extend_num: alloc.extend_num,
        number_choice: alloc.choice.as_str().to_owned(),
        subscription_id: None,
        area_code: req.area_code.as_ref().map(|a| a.as_str().to_owned()),
        record: req.record,
        record_hint_tone: req.record_hint_tone.as_ref().map(|t| t.as_str().to_owned()),
        callback_num,
        callback_tone,
        ttl_minutes: req.ttl_minutes.map(to_i32),
        callback_ttl_minutes: req.callback_ttl_minutes.map(to_i32),
        expires_at: None,
        user_data: req.user_data.as_ref().map(|u| u.as_str().to_owned()),
        created_by: req.created_by.clone(),
        created_at: now,
        updated_at: now,
        released_at: None,
        last_error: None,
        in_quarantine: false,
    };
    bindings::insert(conn, actor.audit(), &row)?;
    Ok(Reservation::New(row))
}

/// A repeat of a create must be the same request; anything else on the same live pair is a
/// conflict (the client is asking for something we did not do).
fn check_same_request(existing: &Binding, req: &CreateBinding) -> Result<(), ServiceError> {
    let (callback_num, callback_tone) = split_callback(req.callback.as_ref());
    let client_x = (existing.number_choice() == NumberChoice::Client)
        .then_some(existing.virtual_num.as_deref())
        .flatten();
    let mut differs = Vec::new();
    if req.virtual_num.as_ref().map(PhoneNumber::as_str) != client_x {
        differs.push("virtual_num");
    }
    if req
        .extend_num
        .as_ref()
        .is_some_and(|e| Some(e.as_str()) != existing.extend_num.as_deref())
    {
        differs.push("extend_num");
    }
    if req.area_code.as_ref().map(AreaCode::as_str) != existing.area_code.as_deref() {
        differs.push("area_code");
    }
    if req.record != existing.record {
        differs.push("record");
    }
    if req.record_hint_tone.as_ref().map(ToneName::as_str) != existing.record_hint_tone.as_deref() {
        differs.push("record_hint_tone");
    }
    if callback_num != existing.callback_num {
        differs.push("callback_num");
    }
    if callback_tone != existing.callback_tone {
        differs.push("callback_tone");
    }
    if req.ttl_minutes.map(to_i32) != existing.ttl_minutes {
        differs.push("ttl_minutes");
    }
    if req.callback_ttl_minutes.map(to_i32) != existing.callback_ttl_minutes {
        differs.push("callback_ttl_minutes");
    }
    if req.user_data.as_ref().map(UserData::as_str) != existing.user_data.as_deref() {
        differs.push("user_data");
    }
    if differs.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Conflict(format!(
            "order {} already has live binding {} for this number with different {}",
            req.order_id,
            existing.id,
            differs.join(", ")
        )))
    }
}

fn split_callback(cb: Option<&Callback>) -> (Option<String>, Option<String>) {
    match cb {
        Some(Callback::Num(n)) => (Some(n.as_str().to_owned()), None),
        Some(Callback::Tone(t)) => (None, Some(t.as_str().to_owned())),
        None => (None, None),
    }
}

fn bind_request(row: &Binding, req: &CreateBinding) -> BindRequest {
    let any_ttl = req.ttl_minutes.is_some() || req.callback_ttl_minutes.is_some();
    BindRequest {
        virtual_num: row.virtual_num.clone(),
        area_code: if row.virtual_num.is_none() {
            row.area_code.clone()
        } else {
            None
        },
        area_match_mode: None,
        bind_num: row.bind_num.clone(),
        extend_num: row.extend_num.clone(),
        // Carriers block calls that show the real caller; X is the only safe choice.
        display_num_mode: Some("0".into()),
        record_flag: Some(row.record.to_string()),
        record_hint_tone: row.record_hint_tone.clone(),
        callback_tone: row.callback_tone.clone(),
        callback_num: row.callback_num.clone(),
        time_unit: any_ttl.then(|| wire::TIME_UNIT_MINUTES.to_owned()),
        bind_expired_time: req.ttl_minutes.map(|t| i64::from(t.get())),
        callback_expired_time: req.callback_ttl_minutes.map(|t| i64::from(t.get())),
        user_data: row.user_data.clone(),
    }
}

/// How to name this binding at Huawei: its subscription id, else X+E.
fn selector(row: &Binding) -> Option<BindingSelector> {
    if let Some(s) = &row.subscription_id {
        return Some(BindingSelector::by_subscription(s.clone()));
    }
    match (&row.virtual_num, &row.extend_num) {
        (Some(x), Some(e)) => Some(BindingSelector::by_number(x.clone(), e.clone())),
        _ => None,
    }
}

fn selector_modify(row: &Binding) -> ModifyRequest {
    let sel = selector(row).unwrap_or_default();
    ModifyRequest {
        subscription_id: sel.subscription_id,
        virtual_num: sel.virtual_num,
        extend_num: sel.extend_num,
        ..ModifyRequest::default()
    }
}

fn minutes(t: TtlMinutes) -> chrono::Duration {
    chrono::Duration::minutes(i64::from(t.get()))
}

fn to_i32(t: TtlMinutes) -> i32 {
    // TtlMinutes::MAX fits comfortably in i32.
    i32::try_from(t.get()).unwrap_or(i32::MAX)
}
