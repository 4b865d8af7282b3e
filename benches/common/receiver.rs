//! A receiving service for the events benches: answers 204 to every delivery, on its own
//! thread and actix system, counting deliveries and the lag from each event's `timestamp` (when
//! the gateway recorded it) to its arrival.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use hdrhistogram::Histogram;

pub struct Receiver {
    pub url: String,
    pub received: Arc<AtomicU64>,
    /// Lag in microseconds.
    pub lag: Arc<Mutex<Histogram<u64>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("receiver listen");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let received = Arc::new(AtomicU64::new(0));
        let lag = Arc::new(Mutex::new(
            Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
        ));
        let (tx, rx) = std::sync::mpsc::channel();
        let (count, lags) = (received.clone(), lag.clone());
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let (count, lags) = (count.clone(), lags.clone());
                    App::new().default_service(web::to(move |body: web::Bytes| {
                        let (count, lags) = (count.clone(), lags.clone());
                        async move {
                            let now = chrono::Utc::now();
                            let at = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| {
                                    chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?)
                                        .ok()
                                });
                            if let Some(at) = at {
                                let us = (now - at.with_timezone(&chrono::Utc))
                                    .num_microseconds()
                                    .unwrap_or(0)
                                    .max(1);
                                let _ = lags
                                    .lock()
                                    .expect("lag")
                                    .record(u64::try_from(us).unwrap_or(1));
                            }
                            count.fetch_add(1, Ordering::Relaxed);
                            HttpResponse::NoContent().finish()
                        }
                    }))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("receiver")
                .run();
                tx.send(server.handle()).expect("send");
                server.await.expect("receiver runs");
            });
        });
        let handle = rx.recv().expect("receiver started");
        Self {
            url,
            received,
            lag,
            handle,
        }
    }

    pub fn count(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Lag percentile in milliseconds.
    pub fn lag_ms(&self, p: f64) -> f64 {
        self.lag.lock().expect("lag").value_at_quantile(p / 100.0) as f64 / 1000.0
    }

    pub fn reset_lag(&self) {
        self.lag.lock().expect("lag").reset();
    }

    pub fn stop(self) {
        actix_rt::System::new().block_on(async {
            self.handle.stop(true).await;
        });
    }
}

/// Subscribes client `client` to every event type, at `url`, straight in the database.
pub fn subscribe(db: &axe_gateway::db::Db, client: &str, url: &str) {
    let row = axe_gateway::db::events::EndpointRow::new(
        client,
        url,
        None,
        Some("bench".into()),
        axe_gateway::events::signing::Secret::generate().expose(),
    );
    db.run_blocking(|conn| axe_gateway::db::events::insert_endpoint(conn, &row))
        .expect("endpoint");
}
