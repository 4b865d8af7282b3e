//! The command line: `serve [--sandbox]`, `migrate`, `sandbox --listen ADDR`.

use std::net::TcpListener;

use clap::{Parser, Subcommand};

use crate::config::{ApiTokens, Environment, Settings};
use crate::db::{self, models::VirtualNumber, numbers};
use crate::domain::NumberStatus;
use crate::huawei::HuaweiSettings;
use crate::sandbox::{play_call_remote, CallSpec, Outcome, Sandbox, SandboxConfig};
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
    /// Run only the Huawei AXE sandbox (for trying the signed API by hand). Calls it plays are
    /// pushed to SANDBOX_WEBHOOK_EVENTS_URL / SANDBOX_WEBHOOK_CDR_URL when set.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
    },
    /// Play a call on a running sandbox: Huawei's call events and CDR are pushed, signed, to the
    /// gateway's webhook routes.
    SandboxCall(SandboxCallArgs),
}

#[derive(Debug, clap::Args)]
pub struct SandboxCallArgs {
    /// The sandbox (`serve --sandbox` prints it).
    #[arg(long, env = "SANDBOX_URL", default_value = "http://127.0.0.1:8090")]
    pub sandbox_url: String,
    /// Call this binding (its X and E are looked up on the gateway).
    #[arg(long, conflicts_with_all = ["virtual_num", "extend_num"])]
    pub binding: Option<String>,
    /// The gateway, to look up --binding.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub gateway_url: String,
    /// API token, to look up --binding.
    #[arg(long, env = "TOKEN")]
    pub token: Option<String>,
    /// The virtual number X dialled.
    #[arg(long)]
    pub virtual_num: Option<String>,
    /// The extension E keyed in.
    #[arg(long)]
    pub extend_num: Option<String>,
    /// Who calls (E.164).
    #[arg(long, default_value = "+8613900000000")]
    pub caller: String,
    /// answered, no_answer, busy, caller_hangup or wrong_extension.
    #[arg(long, default_value = "answered")]
    pub outcome: String,
    #[arg(long, default_value_t = 30)]
    pub talk_seconds: u32,
    /// Record the call (a recording link then works).
    #[arg(long)]
    pub record: bool,
    /// Deliver every notification twice.
    #[arg(long)]
    pub duplicates: bool,
    /// Deliver the events in a shuffled order.
    #[arg(long)]
    pub out_of_order: bool,
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
            config.webhook_events_url = std::env::var("SANDBOX_WEBHOOK_EVENTS_URL").ok();
            config.webhook_cdr_url = std::env::var("SANDBOX_WEBHOOK_CDR_URL").ok();
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
        Command::SandboxCall(args) => sandbox_call(args).await,
    }
}

async fn sandbox_call(args: SandboxCallArgs) -> Result<(), StartupError> {
    let outcome: Outcome = serde_json::from_value(serde_json::Value::String(args.outcome.clone()))
        .map_err(|_| {
            StartupError::Other(format!(
                "--outcome {:?} must be answered, no_answer, busy, caller_hangup or wrong_extension",
                args.outcome
            ))
        })?;
    let (virtual_num, extend_num) = match &args.binding {
        Some(id) => {
            let token = args.token.as_deref().ok_or_else(|| {
                StartupError::Other("--binding needs --token (or TOKEN) to ask the gateway".into())
            })?;
            lookup_binding(&args.gateway_url, token, id).await?
        }
        None => (
            args.virtual_num.clone().ok_or_else(|| {
                StartupError::Other("give --binding, or --virtual-num and --extend-num".into())
            })?,
            args.extend_num.clone(),
        ),
    };
    let spec = CallSpec {
        virtual_num,
        extend_num,
        subscription_id: None,
        caller: args.caller,
        outcome,
        talk_seconds: args.talk_seconds,
        record: args.record,
        duplicates: args.duplicates,
        out_of_order: args.out_of_order,
    };
    let report = play_call_remote(&args.sandbox_url, &spec)
        .await
        .map_err(StartupError::Other)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string())
    );
    Ok(())
}

/// X and E of a binding, from the gateway's API.
async fn lookup_binding(
    gateway: &str,
    token: &str,
    id: &str,
) -> Result<(String, Option<String>), StartupError> {
    crate::huawei::client::install_crypto_provider();
    let url = format!("{}/v1/bindings/{id}", gateway.trim_end_matches('/'));
    let mut resp = awc::Client::new()
        .get(&url)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .map_err(|e| StartupError::Other(format!("{url}: {e}")))?;
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| StartupError::Other(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(StartupError::Other(format!("{url}: {}", resp.status())));
    }
    let x = body["virtual_num"]
        .as_str()
        .ok_or_else(|| StartupError::Other(format!("binding {id} has no virtual number yet")))?;
    Ok((x.to_owned(), body["extend_num"].as_str().map(str::to_owned)))
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
    let listener = TcpListener::bind(settings.listen_addr)?;
    let gateway_addr = listener.local_addr()?;
    let (huawei, sandbox) = if use_sandbox {
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let mut config = SandboxConfig::new("sandbox-app-key", secret.clone());
        config.extension_digits = settings.extension_digits;
        // Numbers a newcomer adds with POST /v1/numbers must work without touching the sandbox.
        config.adopt_unknown_numbers = true;
        // Calls the sandbox plays are pushed to this gateway, signed like Huawei's.
        config.webhook_events_url = Some(format!("http://{gateway_addr}/huawei/events"));
        config.webhook_cdr_url = Some(format!("http://{gateway_addr}/huawei/cdr"));
        let sandbox = Sandbox::new(config);
        let sandbox_listener = TcpListener::bind(
            std::env::var("SANDBOX_LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".into()),
        )?;
        let base_url = format!("http://{}", sandbox_listener.local_addr()?);
        actix_rt::spawn(sandbox.serve(sandbox_listener)?);
        (
            HuaweiSettings {
                base_url,
                app_key: "sandbox-app-key".into(),
                app_secret: secret,
                connect_timeout: settings.huawei_connect_timeout,
                request_timeout: settings.huawei_request_timeout,
            },
            Some(sandbox),
        )
    } else {
        (settings.huawei().clone(), None)
    };

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
        println!(
            "  Play a call to a binding (events and CDR arrive at /huawei/events and /huawei/cdr):"
        );
        println!(
            "  axe-gateway sandbox-call --sandbox-url {} --binding <binding id>",
            huawei.base_url
        );
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
                        live_bindings: 0,
                        quarantined_extensions: 0,
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
