//! The command line: `serve [--sandbox]`, `migrate`, `sandbox --listen ADDR`.

use std::net::TcpListener;

use clap::{Parser, Subcommand};

use crate::config::{ApiTokens, Environment, Settings};
use crate::db::{self, models::VirtualNumber, numbers};
use crate::domain::NumberStatus;
use crate::huawei::HuaweiSettings;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::startup::{Application, StartupError};

#[derive(Debug, Parser)]
#[command(
    name = "axe-gateway",
    version,
    about = "Binding gateway for Huawei PrivateNumber AXE"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (migrates the database first).
    Serve {
        /// Run an in-process Huawei sandbox instead of calling Huawei (no account needed);
        /// seeds demo virtual numbers and prints an API token.
        #[arg(long)]
        sandbox: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run only the Huawei AXE sandbox (for trying the signed API by hand).
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
    },
}

/// Demo virtual numbers the sandbox owns and `serve --sandbox` pools (fictitious numbers).
pub const DEMO_NUMBERS: &[(&str, &str)] = &[
    ("+8617000000001", "0755"),
    ("+8617000000002", "0755"),
    ("+8617000000003", "010"),
];

pub async fn run(cli: Cli) -> Result<(), StartupError> {
    match cli.command {
        Command::Migrate => {
            let settings = Settings::load(&Environment, true)?;
            let applied = db::migrate(&settings.database_url)?;
            println!(
                "{}: {} migration(s) applied{}",
                settings.database_url.redacted(),
                applied.len(),
                if applied.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", applied.join(", "))
                }
            );
            Ok(())
        }
        Command::Sandbox { listen } => {
            let app_key =
                std::env::var("HUAWEI_APP_KEY").unwrap_or_else(|_| "sandbox-app-key".into());
            let app_secret =
                std::env::var("HUAWEI_APP_SECRET").unwrap_or_else(|_| "sandbox-app-secret".into());
            let settings = Settings::load(&Environment, true)?;
            let mut config = SandboxConfig::new(app_key.clone(), app_secret);
            config.extension_digits = settings.extension_digits;
            let sandbox = Sandbox::new(config);
            for (n, a) in DEMO_NUMBERS {
                sandbox.add_number(n, a);
            }
            let listener = TcpListener::bind(&listen)?;
            println!(
                "Huawei AXE sandbox on http://{} (app key {app_key:?}; secret from HUAWEI_APP_SECRET or the default)",
                listener.local_addr()?
            );
            sandbox.serve(listener)?.await?;
            Ok(())
        }
        Command::Serve { sandbox } => serve(sandbox).await,
    }
}

async fn serve(use_sandbox: bool) -> Result<(), StartupError> {
    let settings = Settings::load(&Environment, use_sandbox)?;
    let mut demo_token = None;
    let tokens = match &settings.api_tokens {
        Some(t) => t.clone(),
        None => {
            let token = uuid::Uuid::new_v4().simple().to_string();
            demo_token = Some(token.clone());
            ApiTokens::single("demo", &token)
        }
    };
    let (huawei, sandbox) = if use_sandbox {
        let (connect_timeout, request_timeout) = Settings::huawei_timeouts(&Environment)?;
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let mut config = SandboxConfig::new("sandbox-app-key", secret.clone());
        config.extension_digits = settings.extension_digits;
        // Numbers a newcomer adds with POST /v1/numbers must work without touching the sandbox.
        config.adopt_unknown_numbers = true;
        let sandbox = Sandbox::new(config);
        let listener = TcpListener::bind(
            std::env::var("SANDBOX_LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into()),
        )?;
        let base_url = format!("http://{}", listener.local_addr()?);
        actix_rt::spawn(sandbox.serve(listener)?);
        (
            HuaweiSettings {
                base_url,
                app_key: "sandbox-app-key".into(),
                app_secret: secret,
                connect_timeout,
                request_timeout,
            },
            Some(sandbox),
        )
    } else {
        (settings.huawei().clone(), None)
    };

    let listener = TcpListener::bind(settings.listen_addr)?;
    let app = Application::build(settings.clone(), tokens, huawei.clone(), listener).await?;
    if let Some(sandbox) = &sandbox {
        let pooled = seed_demo_numbers(&app).await?;
        for (number, area) in &pooled {
            sandbox.add_number(number, area);
        }
        println!();
        println!("  axe-gateway is running with the Huawei sandbox (no Huawei account is used).");
        println!("  API:      http://{}", settings.listen_addr);
        println!("  Sandbox:  {} (emulated Huawei AXE API)", huawei.base_url);
        println!("  Database: {}", settings.database_url.redacted());
        println!(
            "  Pool:     {}",
            pooled
                .iter()
                .map(|(n, a)| format!("{n} ({a})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(token) = &demo_token {
            println!("  Token:    {token}   (client \"demo\"; set API_TOKENS to choose your own)");
            println!();
            println!("  export TOKEN={token}");
        }
        println!();
    } else {
        log::info!(
            "axe-gateway listening on http://{} (Huawei at {})",
            settings.listen_addr,
            huawei.base_url
        );
    }
    app.run_until_stopped().await?;
    Ok(())
}

/// Pools the demo numbers (if absent) and returns every pooled number, so the sandbox owns
/// them all, including numbers added in earlier runs.
async fn seed_demo_numbers(app: &Application) -> Result<Vec<(String, String)>, StartupError> {
    let db = app.db().clone();
    db.run(|conn| {
        for (number, area) in DEMO_NUMBERS {
            if numbers::find(conn, number)?.is_none() {
                let now = db::now();
                numbers::insert(
                    conn,
                    &VirtualNumber {
                        number: (*number).to_owned(),
                        area_code: (*area).to_owned(),
                        status: NumberStatus::Normal.as_str().to_owned(),
                        status_cause: None,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
            }
        }
        Ok::<_, db::DbError>(
            numbers::list(conn)?
                .into_iter()
                .map(|n| (n.number, n.area_code))
                .collect(),
        )
    })
    .await
    .map_err(StartupError::from)
}
