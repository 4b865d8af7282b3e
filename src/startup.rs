//! Wiring: database, services, HTTP server and background jobs. `main` and the integration
//! tests both go through [`Application::build`], so start-up cannot drift between them.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};

use crate::api;
use crate::config::{ApiTokens, Settings};
use crate::db::{Db, DbError};
use crate::huawei::{HuaweiClient, HuaweiSettings, UpstreamGuard};
use crate::jobs::{self, Jobs, Schedule};
use crate::service::allocation::Limits;
use crate::service::calls::CallService;
use crate::service::ingest::{IngestSettings, Ingestor};
use crate::service::{BindingService, NumberService, Policy};
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
    jobs: Jobs,
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
        let guard = UpstreamGuard::new(&huawei.base_url, settings.resilience);
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
        let webhook_settings = web::Data::new(WebhookSettings {
            auth: hooks.auth,
            app_key: huawei.app_key.clone(),
            app_secret: huawei.app_secret.clone(),
            allow: hooks.allow.clone(),
            max_age: hooks.max_age,
            max_body_bytes: hooks.max_body_bytes,
        });
        let webhook_metrics = web::Data::new(WebhookMetrics::default());
        let server = {
            let (db, huawei, tokens, guard) =
                (db.clone(), huawei.clone(), tokens.clone(), guard.clone());
            HttpServer::new(move || {
                // One Huawei client per worker: awc clients are !Send.
                let client = || HuaweiClient::new(huawei.clone(), guard.clone());
                let bindings = BindingService::new(db.clone(), client(), policy);
                let calls = CallService::new(db.clone(), client());
                App::new()
                    // Path only, never the query string: it can carry phone numbers.
                    .wrap(
                        middleware::Logger::new(r#"%{r}a "%{method}xi %U" %s %b %Dms"#)
                            .custom_request_replace("method", |req| req.method().to_string())
                            .exclude("/healthz")
                            .exclude("/readyz")
                            .exclude("/metrics")
                            // Huawei pushes thousands a second; they are counted in /metrics
                            // and every refusal is logged by the webhook handler itself.
                            .exclude_regex("^/huawei/"),
                    )
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
            .listen(listener)?
            .run()
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
            },
        );
        Ok(Self {
            port,
            server,
            jobs,
            db,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (signal or handle), then stops the jobs.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.jobs.stop();
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
