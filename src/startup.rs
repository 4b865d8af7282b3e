//! Wiring: database, services, HTTP server and background jobs. `main` and the integration
//! tests both go through [`Application::build`], so start-up cannot drift between them.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};

use crate::api;
use crate::auth::{Authenticator, ClientAdmin};
use crate::config::{ApiTokens, Settings};
use crate::db::{Db, DbError};
use crate::events::endpoints::EventService;
use crate::events::relay::{self, RelaySettings};
use crate::huawei::{HuaweiClient, HuaweiSettings, UpstreamGuard};
use crate::jobs::{self, Jobs, Schedule};
use crate::service::allocation::Limits;
use crate::service::calls::CallService;
use crate::service::ingest::{IngestSettings, Ingestor};
use crate::service::{BindingService, NumberService, Policy};
use crate::telemetry::{self, Metrics};
use crate::webhooks::{self, WebhookMetrics, WebhookSettings};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own listener (`METRICS_ADDR`), and its port.
    metrics_server: Option<(Server, u16)>,
    jobs: Jobs,
    gauges: actix_rt::task::JoinHandle<()>,
    relay: Option<actix_rt::task::JoinHandle<()>>,
    db: Db,
}

impl Application {
    /// Connects and migrates the database, then builds the server on `listener` (port 0 works:
    /// read the real port with [`Application::port`]) and starts the background jobs. The
    /// Huawei settings and API tokens must be resolved (sandbox mode fills them in before).
    pub async fn build(
        settings: Settings,
        tokens: ApiTokens,
        huawei: HuaweiSettings,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let url = settings.database_url.clone();
        let (pool_size, timeout) = (settings.db_pool_size, settings.db_timeout);
        let db = actix_rt::task::spawn_blocking(move || Db::connect(&url, pool_size, timeout))
            .await
            .map_err(|e| StartupError::Other(format!("database set-up panicked: {e}")))??;
        log::info!(
            "database ready: {} ({} connections)",
            settings.database_url.redacted(),
            settings.db_pool_size
        );

        let policy = policy(&settings, &huawei);
        // One guard for the endpoint, shared by every worker's client and the jobs.
        // This application's own metrics (not a process-wide recorder): see telemetry::metrics.
        let metrics = Metrics::new();
        let guard = UpstreamGuard::observed(&huawei.base_url, settings.resilience, metrics.clone());
        let port = listener.local_addr()?.port();
        let digits = settings.extension_digits;
        let hooks = &settings.webhooks;
        let ingestor = web::Data::new(Ingestor::start(
            db.clone(),
            IngestSettings {
                batch_max: hooks.batch_max,
                queue: hooks.queue,
                writers: hooks.writers,
            },
        )?);
        ingestor.observe_batch_sizes(metrics.webhook_batch_size());
        let webhook_settings = web::Data::new(WebhookSettings {
            auth: hooks.auth,
            app_key: huawei.app_key.clone(),
            app_secret: huawei.app_secret.clone(),
            allow: hooks.allow.clone(),
            max_age: hooks.max_age,
            max_body_bytes: hooks.max_body_bytes,
        });
        let webhook_metrics = web::Data::new(WebhookMetrics::default());
        let metrics_listener = settings.metrics_addr.map(TcpListener::bind).transpose()?;
        let metrics_here = metrics_listener.is_none();
        // One for the process: its token cache and rate limits are shared by every worker.
        let authenticator = web::Data::new(Authenticator::new(tokens.clone(), db.clone()));
        let target_policy = std::sync::Arc::new(settings.events.policy.clone());
        let event_service = web::Data::new(EventService::new(
            db.clone(),
            target_policy.clone(),
            settings.events.feed_settle,
        ));
        let server = {
            let (db, huawei, tokens, guard, metrics) = (
                db.clone(),
                huawei.clone(),
                tokens.clone(),
                guard.clone(),
                web::Data::new(metrics.clone()),
            );
            let (ingestor, webhook_metrics) = (ingestor.clone(), webhook_metrics.clone());
            HttpServer::new(move || {
                // One Huawei client per worker: awc clients are !Send.
                let client = || HuaweiClient::new(huawei.clone(), guard.clone());
                let bindings = BindingService::new(db.clone(), client(), policy);
                let calls = CallService::new(db.clone(), client());
                App::new()
                    // Request id, request metrics and the access log, around everything.
                    // Inside the telemetry below, so refusals carry a request id and are counted.
                    .wrap(middleware::from_fn(api::auth::authorize))
                    .wrap(middleware::from_fn(telemetry::http::observe))
                    .app_data(metrics.clone())
                    .app_data(authenticator.clone())
                    .app_data(web::Data::new(ClientAdmin::new(db.clone())))
                    .app_data(event_service.clone())
                    .app_data(web::Data::new(bindings))
                    .app_data(web::Data::new(NumberService::new(db.clone(), policy)))
                    .app_data(web::Data::new(tokens.clone()))
                    .app_data(web::Data::new(db.clone()))
                    .app_data(web::Data::new(digits))
                    .app_data(web::Data::new(calls))
                    .app_data(ingestor.clone())
                    .app_data(web::Data::from(guard.clone()))
                    .app_data(webhook_settings.clone())
                    .app_data(webhook_metrics.clone())
                    .configure(webhooks::configure)
                    .configure(api::configure)
                    .configure(|cfg| {
                        if metrics_here {
                            api::configure_metrics(cfg);
                        }
                    })
                    .default_service(web::to(api::not_found))
            })
            .workers(settings.workers)
            // Blocking work is database work, and `Db` lets at most a pool's worth run at once;
            // without a cap tokio starts a thread whenever none is idle at that instant (49
            // under list load), each keeping its own allocator pages.
            .worker_max_blocking_threads(blocking_threads(settings.db_pool_size))
            // SIGTERM/SIGINT: stop accepting, let in-flight requests finish (a create cut off
            // here stays pending for the reconciler), then `run_until_stopped` stops the jobs;
            // every notification answered 200 was committed before its answer.
            .shutdown_timeout(settings.shutdown_timeout.as_secs())
            // A client that sends its request head slowly (or stops) is answered 408 and
            // disconnected when this runs out, so it holds no connection for longer.
            .client_request_timeout(settings.client_request_timeout)
            .listen(listener)?
            .run()
        };
        let metrics_server = match metrics_listener {
            None => None,
            Some(listener) => {
                let port = listener.local_addr()?.port();
                let (db, guard, metrics) =
                    (db.clone(), guard.clone(), web::Data::new(metrics.clone()));
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(middleware::from_fn(telemetry::http::observe))
                        .app_data(metrics.clone())
                        .app_data(web::Data::new(db.clone()))
                        .app_data(ingestor.clone())
                        .app_data(web::Data::from(guard.clone()))
                        .app_data(webhook_metrics.clone())
                        .configure(api::configure_metrics)
                        .default_service(web::to(api::not_found))
                })
                .workers(1)
                // Stopped with the API's server, which handles the signals.
                .disable_signals()
                .listen(listener)?
                .run();
                Some((server, port))
            }
        };
        let jobs = jobs::spawn(
            db.clone(),
            huawei,
            guard,
            policy,
            Schedule {
                reconcile_every: settings.reconcile_interval,
                expire_every: settings.expiry_interval,
                inbox_retention: settings.webhooks.retention,
                purge_every: settings.retention.purge_interval,
                call_retention: settings.retention.calls,
                binding_retention: settings.retention.bindings,
                event_retention: settings.events.retention,
            },
            metrics.clone(),
        );
        let events = &settings.events;
        let relay = events.relay.then(|| {
            relay::spawn(
                db.clone(),
                RelaySettings {
                    schedule: events.schedule.clone(),
                    attempt_timeout: events.attempt_timeout,
                    concurrency: events.concurrency,
                    poll: events.poll,
                    disable_after: events.disable_after,
                    policy: target_policy,
                },
            )
        });
        let gauges = telemetry::gauges::spawn(
            db.clone(),
            metrics,
            policy.limits.room(),
            settings.metrics_refresh,
        );
        Ok(Self {
            port,
            server,
            metrics_server,
            jobs,
            gauges,
            relay,
            db,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/metrics`' own listener, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (signal or handle), then stops `/metrics`' own listener
    /// and the jobs.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            actix_rt::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        self.jobs.stop();
        self.gauges.abort();
        if let Some(relay) = self.relay {
            relay.abort();
        }
        result
    }
}

pub fn policy(settings: &Settings, huawei: &HuaweiSettings) -> Policy {
    Policy {
        limits: Limits {
            digits: settings.extension_digits,
            max_per_number: settings.max_bindings_per_number,
        },
        quarantine: settings.extension_quarantine,
        extension_retry_limit: settings.extension_retry_limit,
        upstream_timeout: huawei.connect_timeout + huawei.request_timeout,
    }
}

/// Blocking threads per HTTP worker: the pool's size (all of `Db`'s admitted work may land on
/// one worker), and a few more for work queued while a finished thread goes idle.
fn blocking_threads(db_pool_size: u32) -> usize {
    usize::try_from(db_pool_size)
        .unwrap_or(usize::MAX)
        .saturating_add(2)
}
