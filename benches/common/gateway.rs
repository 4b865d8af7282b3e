//! The gateway, started in this process exactly as `serve` builds it, on its own thread and
//! actix system, optionally with the in-process Huawei sandbox (as `serve --sandbox` wires it).

use axe_gateway::config::{ApiTokens, Settings};
use axe_gateway::db::Db;
use axe_gateway::huawei::HuaweiSettings;
use axe_gateway::sandbox::{Sandbox, SandboxConfig};
use axe_gateway::startup::Application;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

/// The Huawei app the gateway (and the sandbox, when there is one) is configured with: it signs
/// the notifications the webhook benches send.
pub const APP_KEY: &str = "bench-app-key";
pub const APP_SECRET: &str = "bench-app-secret";
/// The bearer token of the API client "bench".
pub const TOKEN: &str = "bench-token-0123456789";

pub struct Gateway {
    pub addr: SocketAddr,
    pub db: Db,
    handle: actix_web::dev::ServerHandle,
    sandbox: Option<actix_web::dev::ServerHandle>,
}

impl Gateway {
    /// Starts the gateway with `vars` as its environment. With `sandbox`, Huawei is the
    /// in-process sandbox, which adopts any number the gateway binds (the pool is filled through
    /// `POST /v1/numbers`); without it, Huawei is an address nothing answers at (benches that
    /// never call Huawei).
    pub fn start(vars: &HashMap<&str, &str>, sandbox: bool) -> Self {
        let settings = Settings::load(vars, true).expect("settings");
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let (base_url, sandbox) = if sandbox {
                    let mut config = SandboxConfig::new(APP_KEY, APP_SECRET);
                    config.extension_digits = settings.extension_digits;
                    config.adopt_unknown_numbers = true;
                    let listener = TcpListener::bind("127.0.0.1:0").expect("sandbox listen");
                    let url = format!("http://{}", listener.local_addr().expect("sandbox addr"));
                    let server = Sandbox::new(config)
                        .serve(listener)
                        .expect("sandbox starts");
                    let handle = server.handle();
                    actix_rt::spawn(server);
                    (url, Some(handle))
                } else {
                    ("http://127.0.0.1:9".into(), None)
                };
                let huawei = HuaweiSettings {
                    base_url,
                    app_key: APP_KEY.into(),
                    app_secret: APP_SECRET.into(),
                    connect_timeout: settings.huawei_connect_timeout,
                    request_timeout: settings.huawei_request_timeout,
                };
                let tokens = ApiTokens::single("bench", TOKEN);
                let app = Application::build(settings, tokens, huawei, listener)
                    .await
                    .expect("gateway starts");
                tx.send((app.db().clone(), app.handle(), sandbox))
                    .expect("send");
                app.run_until_stopped().await.expect("server");
            });
        });
        let (db, handle, sandbox) = rx.recv().expect("gateway started");
        Self {
            addr,
            db,
            handle,
            sandbox,
        }
    }

    /// Stops the gateway and the sandbox, whose bindings would otherwise stay in memory.
    pub fn stop(self) {
        actix_rt::System::new().block_on(async {
            self.handle.stop(true).await;
            if let Some(sandbox) = self.sandbox {
                sandbox.stop(true).await;
            }
        });
    }
}
