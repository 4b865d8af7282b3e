//! The gateway, started in this process exactly as `serve` builds it, on its own thread and
//! actix system, optionally with the Huawei sandbox in a child process (this same bench binary,
//! started with [`SANDBOX_CHILD`] set): its state (every binding it was given) and its CPU then
//! stay out of the gateway's figures, as a real Huawei's would.

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

/// Set in a child's environment: it serves the sandbox instead of running the bench.
pub const SANDBOX_CHILD: &str = "AXE_BENCH_SANDBOX_CHILD";

pub struct Gateway {
    pub addr: SocketAddr,
    pub db: Db,
    handle: actix_web::dev::ServerHandle,
    sandbox: Option<SandboxChild>,
}

/// The sandbox process; killed when dropped.
struct SandboxChild(std::process::Child);

impl Drop for SandboxChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In a sandbox child (see [`SANDBOX_CHILD`]): serves the sandbox on a free port, prints its
/// URL on stdout and never returns. Elsewhere returns at once. Call first thing in `main`.
pub fn serve_sandbox_if_child() {
    let Ok(digits) = std::env::var(SANDBOX_CHILD) else {
        return;
    };
    let digits = digits.parse().expect("extension digits");
    actix_rt::System::new().block_on(async move {
        let mut config = SandboxConfig::new(APP_KEY, APP_SECRET);
        config.extension_digits =
            axe_gateway::domain::ExtensionDigits::new(digits).expect("extension digits");
        config.adopt_unknown_numbers = true;
        let listener = TcpListener::bind("127.0.0.1:0").expect("sandbox listen");
        println!("http://{}", listener.local_addr().expect("sandbox addr"));
        Sandbox::new(config)
            .serve(listener)
            .expect("sandbox starts")
            .await
            .expect("sandbox");
    });
    std::process::exit(0);
}

/// Starts this binary as a sandbox child and returns it with its URL.
fn spawn_sandbox(digits: u8) -> (SandboxChild, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("bench binary"))
        .arg("--bench")
        .env(SANDBOX_CHILD, digits.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the sandbox process");
    let mut url = String::new();
    std::io::BufReader::new(child.stdout.take().expect("sandbox stdout"))
        .read_line(&mut url)
        .expect("sandbox URL");
    (SandboxChild(child), url.trim().to_owned())
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
        let (sandbox, base_url) = if sandbox {
            let (child, url) = spawn_sandbox(settings.extension_digits.get());
            (Some(child), url)
        } else {
            (None, "http://127.0.0.1:9".to_owned())
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
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
                tx.send((app.db().clone(), app.handle())).expect("send");
                app.run_until_stopped().await.expect("server");
            });
        });
        let (db, handle) = rx.recv().expect("gateway started");
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
        });
        drop(self.sandbox);
    }
}
