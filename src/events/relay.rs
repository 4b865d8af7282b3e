//! The relay: delivers the outbox at least once. It claims due deliveries under a lease (so
//! several gateway instances share the work and none sends an attempt another holds), sends
//! them signed, with at most `concurrency` requests in flight, and records each attempt: a 2xx
//! answer is delivered; anything else is tried again after the next delay of the schedule, and
//! is `failed` once the schedule is used up. An endpoint that has failed every attempt for
//! `disable_after` is disabled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::signing::{signature_header, Secret};
use super::target::{GuardedResolver, TargetPolicy};
use crate::db::events::{self as store, AttemptOutcome, Claimed};
use crate::db::{self, Db};
use crate::domain::mask_phones;

/// Deliveries claimed at a time, in rounds of `concurrency`: fewer claim transactions, while
/// a round still starts as soon as a request of the last one is answered.
const ROUNDS_PER_CLAIM: u32 = 4;

/// The retry delays of the schedule: after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_SCHEDULE_SECS: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Delay before each retry; one more failure than it has delays is final.
    pub schedule: Vec<Duration>,
    /// The whole attempt: connect, send, and the answer's head.
    pub attempt_timeout: Duration,
    /// Requests in flight at most (per instance).
    pub concurrency: usize,
    /// How often to look for due deliveries when there were none.
    pub poll: Duration,
    pub disable_after: Duration,
    pub policy: Arc<TargetPolicy>,
}

/// Starts the relay on the current actix runtime (its awc client cannot leave this thread).
pub fn spawn(db: Db, settings: RelaySettings) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let relay = Relay::new(db, settings);
        loop {
            match relay.run_once().await {
                // A full claim: more may be due already.
                Ok(n) if n >= relay.claim_limit() => {}
                Ok(_) => actix_rt::time::sleep(relay.settings.poll).await,
                Err(e) => {
                    log::warn!("event relay: {e}; will retry");
                    actix_rt::time::sleep(relay.settings.poll.max(Duration::from_secs(1))).await;
                }
            }
        }
    })
}

pub struct Relay {
    db: Db,
    settings: RelaySettings,
    http: awc::Client,
    /// This instance's name on the leases it takes.
    owner: String,
}

impl Relay {
    pub fn new(db: Db, settings: RelaySettings) -> Self {
        crate::huawei::client::install_crypto_provider();
        let resolver =
            actix_tls::connect::Resolver::custom(GuardedResolver(settings.policy.clone()));
        let connector = awc::Connector::new()
            .connector(actix_tls::connect::Connector::new(resolver).service())
            .timeout(settings.attempt_timeout)
            .handshake_timeout(settings.attempt_timeout)
            .limit(settings.concurrency);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(settings.attempt_timeout)
            // A redirect is an answer that is not 2xx: the receiver must fix its URL.
            .disable_redirects()
            .add_default_header(("User-Agent", crate::USER_AGENT))
            .finish();
        Self {
            db,
            settings,
            http,
            owner: format!("relay-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn claim_limit(&self) -> usize {
        self.settings
            .concurrency
            .saturating_mul(ROUNDS_PER_CLAIM as usize)
    }

    /// Claims what is due, sends it, records the attempts (in groups, as they finish). Returns
    /// how many deliveries it claimed.
    pub async fn run_once(&self) -> Result<usize, db::DbError> {
        let now = db::now();
        // Long enough for every round of the claim timing out, with room for recording them.
        let lease =
            chrono::Duration::from_std(self.settings.attempt_timeout * (ROUNDS_PER_CLAIM + 1))
                .unwrap_or_default()
                + chrono::Duration::seconds(30);
        let (owner, limit) = (
            self.owner.clone(),
            i64::try_from(self.claim_limit()).unwrap_or(i64::MAX),
        );
        let claimed = self
            .db
            .write(move |conn| store::claim_due(conn, &owner, now, now + lease, limit))
            .await?;
        let count = claimed.len();
        let mut results = futures_util::stream::iter(claimed)
            .map(|c| self.attempt(c))
            .buffer_unordered(self.settings.concurrency)
            .ready_chunks(256);
        while let Some(outcomes) = results.next().await {
            let schedule = self.settings.schedule.clone();
            let disable_after =
                chrono::Duration::from_std(self.settings.disable_after).unwrap_or_default();
            // A failure here leaves the leases to run out, and the deliveries are sent again.
            self.db
                .write(move |conn| {
                    store::record_attempts(conn, &outcomes, &schedule, disable_after)
                })
                .await?;
        }
        Ok(count)
    }

    async fn attempt(&self, c: Claimed) -> AttemptOutcome {
        let at = db::now();
        let started = Instant::now();
        let (http_status, error) = match self.send(&c).await {
            Ok(status) if (200..300).contains(&status) => (Some(i32::from(status)), None),
            Ok(status) => (
                Some(i32::from(status)),
                Some(format!("the endpoint answered HTTP {status}")),
            ),
            Err(e) => (None, Some(mask_phones(&e).into_owned())),
        };
        let outcome = AttemptOutcome {
            delivery_id: c.delivery_id,
            endpoint_id: c.endpoint.id.clone(),
            at,
            delivered: error.is_none(),
            http_status,
            latency_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            error,
            attempts_before: c.attempts,
        };
        if let Some(e) = &outcome.error {
            log::info!(
                endpoint_id = c.endpoint.id.as_str(), event_id = c.event.id.as_str();
                "event {} to endpoint {} not delivered (attempt {}): {e}",
                c.event.id, c.endpoint.id, c.attempts + 1
            );
        }
        outcome
    }

    /// Sends one attempt; the answer's status, or why there was none.
    async fn send(&self, c: &Claimed) -> Result<u16, String> {
        let body = c.event.body().to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let current = Secret::parse(&c.endpoint.secret)
            .map_err(|e| format!("the endpoint's stored secret is unusable: {e}"))?;
        let previous = match (
            &c.endpoint.previous_secret,
            c.endpoint.previous_secret_until,
        ) {
            (Some(s), Some(until)) if until > db::now() => Secret::parse(s).ok(),
            _ => None,
        };
        let mut secrets = vec![&current];
        secrets.extend(previous.as_ref());
        let signature = signature_header(&secrets, &c.event.id, timestamp, body.as_bytes());
        let mut response = self
            .http
            .post(&c.endpoint.url)
            .insert_header(("content-type", "application/json"))
            .insert_header(("webhook-id", c.event.id.as_str()))
            .insert_header(("webhook-timestamp", timestamp.to_string()))
            .insert_header(("webhook-signature", signature))
            .send_body(body)
            .await
            .map_err(|e| e.to_string())?;
        // The answer's body is read (a little of it) so the connection can be reused.
        let _ = response.body().limit(64 * 1024).await;
        Ok(response.status().as_u16())
    }
}
