//! What stands between the gateway and one Huawei endpoint: a circuit breaker, a cap on calls
//! in flight, an optional rate limit, and bounded retries for calls that are safe to repeat.
//!
//! One [`UpstreamGuard`] is shared (`Arc`) by every worker's client and the background jobs, so
//! the whole process sees Huawei the same way. Nothing here stores anything: a refused call is
//! a [`HuaweiError::NotCalled`], which certainly did not reach Huawei.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::error::{HuaweiError, Refusal};

/// How hard the gateway leans on Huawei (`HUAWEI_BREAKER_*`, `HUAWEI_MAX_*`, `HUAWEI_RETRY*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resilience {
    /// Consecutive failures (transport, timeout, 5xx) that open the breaker; 0 never opens it.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe may try again.
    pub breaker_cooldown: Duration,
    /// Calls in flight at once, over every worker and job.
    pub max_concurrency: u32,
    /// Calls started per second, if limited.
    pub max_rps: Option<NonZeroU32>,
    /// How long a call waits for a slot (concurrency or rate) before it is refused.
    pub queue_timeout: Duration,
    /// Extra attempts of a call that is safe to repeat, after a failure of Huawei's.
    pub retries: u32,
    /// The first retry's delay; each next one doubles, with jitter.
    pub retry_base: Duration,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            max_concurrency: 64,
            max_rps: None,
            queue_timeout: Duration::from_millis(1_000),
            retries: 2,
            retry_base: Duration::from_millis(100),
        }
    }
}

impl Resilience {
    /// No breaker, no limits, no retries: every call goes straight out, once.
    pub fn off() -> Self {
        Self {
            breaker_failures: 0,
            max_concurrency: u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX),
            retries: 0,
            ..Self::default()
        }
    }
}

/// Whether a call may be repeated after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Query, modify, unbind, recording link: doing it twice leaves the same state.
    Safe,
    /// Bind: a repeat could create a second binding.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cool-down is over and one probe is in flight; everyone else is still refused.
    Probing,
}

/// The breaker, limits and retry policy of one Huawei endpoint.
pub struct UpstreamGuard {
    endpoint: String,
    config: Resilience,
    state: Mutex<State>,
    slots: Semaphore,
    rate: Option<DefaultDirectRateLimiter>,
    /// Where every client of this endpoint records its requests.
    metrics: Option<crate::telemetry::Metrics>,
}

impl std::fmt::Debug for UpstreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamGuard")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

/// A call allowed through: holds its concurrency slot, and whether it is the breaker's probe.
pub struct Admission<'a> {
    guard: &'a UpstreamGuard,
    _slot: SemaphorePermit<'a>,
    probe: bool,
    settled: bool,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        // A probe abandoned before its answer (its request was cancelled) proves nothing:
        // let the next call probe instead of leaving the breaker half-open for ever.
        if self.probe && !self.settled {
            let mut st = self.guard.lock();
            if *st == State::Probing {
                *st = State::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

impl UpstreamGuard {
    pub fn new(endpoint: &str, config: Resilience) -> Arc<Self> {
        Self::build(endpoint, config, None)
    }

    /// Like [`UpstreamGuard::new`], and every client of the endpoint records its requests in
    /// `metrics`.
    pub fn observed(
        endpoint: &str,
        config: Resilience,
        metrics: crate::telemetry::Metrics,
    ) -> Arc<Self> {
        Self::build(endpoint, config, Some(metrics))
    }

    fn build(
        endpoint: &str,
        config: Resilience,
        metrics: Option<crate::telemetry::Metrics>,
    ) -> Arc<Self> {
        let slots = usize::try_from(config.max_concurrency)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            endpoint: endpoint.to_owned(),
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            slots: Semaphore::new(slots),
            rate: config
                .max_rps
                .map(|rps| RateLimiter::direct(Quota::per_second(rps))),
            metrics,
        })
    }

    pub fn metrics(&self) -> Option<&crate::telemetry::Metrics> {
        self.metrics.as_ref()
    }

    /// Whether the breaker refuses calls now (open, or half-open with its probe in flight).
    pub fn circuit_open(&self) -> bool {
        self.check().is_err()
    }

    /// A guard that never refuses, limits or repeats anything.
    pub fn off(endpoint: &str) -> Arc<Self> {
        Self::new(endpoint, Resilience::off())
    }

    pub fn config(&self) -> &Resilience {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change leaves the state valid, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses at once while the breaker is open (before anything is stored for the call);
    /// does not claim the probe.
    pub fn check(&self) -> Result<(), HuaweiError> {
        match *self.lock() {
            State::Open { until } if Instant::now() < until => Err(open_error(until)),
            State::Probing => Err(open_error(Instant::now())),
            _ => Ok(()),
        }
    }

    /// Lets a call through the breaker and into a slot, or refuses it.
    pub async fn admit(&self) -> Result<Admission<'_>, HuaweiError> {
        let probe = {
            let mut st = self.lock();
            match *st {
                State::Closed { .. } => false,
                State::Open { until } if Instant::now() < until => return Err(open_error(until)),
                State::Open { .. } => {
                    *st = State::Probing;
                    log::info!(
                        endpoint = self.endpoint.as_str();
                        "Huawei circuit half-open: one probe call goes through"
                    );
                    true
                }
                State::Probing => return Err(open_error(Instant::now())),
            }
        };
        let waited = actix_rt::time::timeout(self.config.queue_timeout, async {
            if let Some(rate) = &self.rate {
                rate.until_ready().await;
            }
            self.slots.acquire().await
        })
        .await;
        match waited {
            Ok(Ok(slot)) => Ok(Admission {
                guard: self,
                _slot: slot,
                probe,
                settled: false,
            }),
            // Timed out (or the semaphore closed, which never happens): over the cap.
            _ => {
                if probe {
                    *self.lock() = State::Open {
                        until: Instant::now(),
                    };
                }
                log::debug!(
                    endpoint = self.endpoint.as_str();
                    "Huawei call refused: no slot within {:?}", self.config.queue_timeout
                );
                Err(HuaweiError::NotCalled {
                    reason: Refusal::Saturated,
                    retry_after_secs: 1,
                })
            }
        }
    }

    /// Feeds a call's outcome to the breaker. Transitions are logged here, once each.
    pub fn record<T>(&self, mut admission: Admission<'_>, outcome: &Result<T, HuaweiError>) {
        admission.settled = true;
        let fault = match outcome {
            Ok(_) => None,
            Err(e) if e.is_upstream_fault() => Some(e),
            Err(_) => None,
        };
        let mut st = self.lock();
        match (fault, *st) {
            (None, State::Closed { .. }) => *st = State::Closed { failures: 0 },
            (None, _) => {
                *st = State::Closed { failures: 0 };
                log::info!(
                    endpoint = self.endpoint.as_str();
                    "Huawei circuit closed: Huawei answers again"
                );
            }
            (Some(e), State::Closed { failures }) => {
                let failures = failures + 1;
                if self.config.breaker_failures > 0 && failures >= self.config.breaker_failures {
                    *st = State::Open {
                        until: Instant::now() + self.config.breaker_cooldown,
                    };
                    log::warn!(
                        endpoint = self.endpoint.as_str();
                        "Huawei circuit open for {:?} after {failures} consecutive failures (last: {})",
                        self.config.breaker_cooldown, e.summary()
                    );
                } else {
                    *st = State::Closed { failures };
                }
            }
            (Some(e), State::Probing) if admission.probe => {
                *st = State::Open {
                    until: Instant::now() + self.config.breaker_cooldown,
                };
                log::warn!(
                    endpoint = self.endpoint.as_str();
                    "Huawei circuit open again for {:?}: the probe failed ({})",
                    self.config.breaker_cooldown, e.summary()
                );
            }
            // A call admitted before the breaker opened failed too: already counted as open.
            (Some(_), _) => {}
        }
    }

    /// Runs one Huawei call through the guard; a call that is safe to repeat is retried with
    /// exponential backoff and jitter after failures of Huawei's (never after a refusal, and
    /// never once the breaker has opened).
    pub async fn run<T, F, Fut>(&self, repeat: Repeat, call: F) -> Result<T, HuaweiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, HuaweiError>>,
    {
        let attempt = || {
            let fut = call();
            async move {
                let admission = self.admit().await?;
                let outcome = fut.await;
                self.record(admission, &outcome);
                outcome
            }
        };
        if repeat == Repeat::Never || self.config.retries == 0 {
            return attempt().await;
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_base)
            .with_max_delay(self.config.retry_base.saturating_mul(16))
            .with_max_times(usize::try_from(self.config.retries).unwrap_or(usize::MAX))
            .with_jitter();
        attempt
            .retry(backoff)
            .when(HuaweiError::is_upstream_fault)
            .notify(|e, after| {
                log::debug!(
                    endpoint = self.endpoint.as_str();
                    "Huawei call failed ({}); retrying in {after:?}", e.summary()
                );
            })
            .await
    }
}

fn open_error(until: Instant) -> HuaweiError {
    let left = until.saturating_duration_since(Instant::now());
    HuaweiError::NotCalled {
        reason: Refusal::CircuitOpen,
        retry_after_secs: u32::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::huawei::TransportFailure;
    use std::cell::Cell;

    fn config(failures: u32, cooldown_ms: u64) -> Resilience {
        Resilience {
            breaker_failures: failures,
            breaker_cooldown: Duration::from_millis(cooldown_ms),
            retries: 0,
            ..Resilience::default()
        }
    }

    fn broken() -> Result<(), HuaweiError> {
        Err(HuaweiError::Transport(TransportFailure::AfterSend(
            "reset".into(),
        )))
    }

    fn refused_by_huawei() -> Result<(), HuaweiError> {
        Err(HuaweiError::Rejected {
            http_status: 403,
            resultcode: "1010002".into(),
            resultdesc: "Invalid request.".into(),
        })
    }

    #[actix_rt::test]
    async fn the_breaker_opens_after_n_failures_and_one_probe_closes_it() {
        let guard = UpstreamGuard::new("http://huawei", config(3, 200));
        let calls = &Cell::new(0);
        let failing = move || async move {
            calls.set(calls.get() + 1);
            broken()
        };
        for _ in 0..3 {
            assert!(guard.run(Repeat::Never, failing).await.is_err());
        }
        assert_eq!(calls.get(), 3);
        let refused = guard.run(Repeat::Never, failing).await.unwrap_err();
        assert!(
            matches!(
                refused,
                HuaweiError::NotCalled {
                    reason: Refusal::CircuitOpen,
                    retry_after_secs: 1
                }
            ),
            "{refused:?}"
        );
        assert!(guard.check().is_err());
        assert_eq!(calls.get(), 3, "no call while open");

        actix_rt::time::sleep(Duration::from_millis(250)).await;
        assert!(guard.check().is_ok());
        guard.run(Repeat::Never, || async { Ok(()) }).await.unwrap();
        assert_eq!(*guard.lock(), State::Closed { failures: 0 });
    }

    #[actix_rt::test]
    async fn a_failed_probe_opens_the_breaker_again() {
        let guard = UpstreamGuard::new("http://huawei", config(1, 100));
        assert!(guard
            .run(Repeat::Never, || async { broken() })
            .await
            .is_err());
        actix_rt::time::sleep(Duration::from_millis(120)).await;
        assert!(matches!(
            guard.run(Repeat::Never, || async { broken() }).await,
            Err(HuaweiError::Transport(_))
        ));
        assert!(matches!(*guard.lock(), State::Open { .. }));
    }

    #[actix_rt::test]
    async fn refusals_with_a_4xx_are_huawei_working_and_reset_the_count() {
        let guard = UpstreamGuard::new("http://huawei", config(2, 10_000));
        for _ in 0..5 {
            let _ = guard.run(Repeat::Never, || async { broken() }).await;
            let _ = guard
                .run(Repeat::Never, || async { refused_by_huawei() })
                .await;
        }
        assert!(guard.check().is_ok());
    }

    #[actix_rt::test]
    async fn only_calls_safe_to_repeat_are_retried_and_only_after_huawei_failures() {
        let guard = UpstreamGuard::new(
            "http://huawei",
            Resilience {
                retries: 2,
                retry_base: Duration::from_millis(1),
                ..config(0, 1_000)
            },
        );
        let calls = &Cell::new(0);
        let flaky = move || async move {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                broken()
            } else {
                Ok(())
            }
        };
        guard.run(Repeat::Safe, flaky).await.unwrap();
        assert_eq!(calls.get(), 3);

        calls.set(0);
        assert!(guard.run(Repeat::Never, flaky).await.is_err());
        assert_eq!(calls.get(), 1, "a bind is never repeated");

        calls.set(0);
        let refusing = move || async move {
            calls.set(calls.get() + 1);
            refused_by_huawei()
        };
        assert!(guard.run(Repeat::Safe, refusing).await.is_err());
        assert_eq!(calls.get(), 1, "a refusal is an answer, not a failure");
    }

    #[actix_rt::test]
    async fn calls_over_the_cap_wait_then_are_refused() {
        let guard = UpstreamGuard::new(
            "http://huawei",
            Resilience {
                max_concurrency: 1,
                queue_timeout: Duration::from_millis(50),
                ..config(0, 1_000)
            },
        );
        let held = guard.admit().await.unwrap();
        let started = Instant::now();
        let refused = guard.admit().await.err().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(matches!(
            refused,
            HuaweiError::NotCalled {
                reason: Refusal::Saturated,
                retry_after_secs: 1
            }
        ));
        drop(held);
        assert!(guard.admit().await.is_ok());
    }

    #[actix_rt::test]
    async fn the_rate_limit_refuses_calls_beyond_the_rate() {
        let guard = UpstreamGuard::new(
            "http://huawei",
            Resilience {
                max_rps: NonZeroU32::new(2),
                queue_timeout: Duration::from_millis(20),
                ..config(0, 1_000)
            },
        );
        let mut admitted = 0;
        for _ in 0..4 {
            if guard.admit().await.is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 2, "a burst of the per-second quota, no more");
    }
}
