//! The command line: `serve [--sandbox]`, `migrate`, `sandbox --listen ADDR`, `sandbox-call`,
//! `numbers import FILE`, `pool`, `bindings show|list`, `clients …`, `check-config`,
//! `listen --port P --secret whsec_…`.

mod bindings;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{ApiTokens, Environment, Settings};
use crate::db::{self, models::VirtualNumber, numbers, Db};
use crate::domain::{AreaCode, NumberStatus, PhoneNumber};
use crate::huawei::HuaweiSettings;
use crate::sandbox::{play_call_remote, CallSpec, Outcome, Sandbox, SandboxConfig};
use crate::service::allocation::Limits;
use crate::service::numbers::repeated;
use crate::service::{AddManyError, NewNumber, NumberService, Policy};
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
    /// The pool of virtual numbers.
    Numbers {
        #[command(subcommand)]
        command: NumbersCommand,
    },
    /// The pool per area: numbers (usable of all), live bindings, quarantined extensions and
    /// the extensions still free to allocate (migrates the database first).
    Pool,
    /// Bindings as stored: `bindings show ID` (with its history) or `bindings list` (filtered,
    /// newest first). Phone numbers are masked unless --unmasked is given (migrates the
    /// database first).
    Bindings {
        #[command(subcommand)]
        command: bindings::BindingsCommand,
    },
    /// Print the API's OpenAPI 3.1 document (as served at /openapi.json; docs/openapi.json
    /// holds a copy) and exit.
    Openapi,
    /// Checks a deployment's configuration without changing anything: prints the effective
    /// settings (secrets masked), checks that the database answers with its migrations at the
    /// head, and makes one harmless signed query to Huawei (proving the app key, secret and
    /// clock). Exits 0 only when every check passes.
    CheckConfig,
    /// API clients and their tokens (in the database at DATABASE_URL; migrates it first).
    /// A new token is printed alone on stdout, everything else goes to stderr:
    /// `TOKEN=$(axe-gateway clients create orders --scopes bindings:read,bindings:write)`.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Receive the gateway's events on a local port: verifies each signature and timestamp,
    /// prints the event (phone numbers masked), answers 204 (or 400/401 when verification
    /// fails). Register http://127.0.0.1:PORT/ as a webhook endpoint (the gateway needs
    /// EVENTS_ALLOWED_HOSTS=127.0.0.1/32 to send to this machine).
    Listen {
        #[arg(long, default_value_t = 9700)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The endpoint's signing secret (whsec_…), as its creation answered.
        #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true,
              value_parser = crate::events::signing::Secret::parse)]
        secret: crate::events::signing::Secret,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Creates a client and prints its first token.
    Create {
        /// 1-64 characters of [A-Za-z0-9._-]; recorded as `created_by` on its bindings.
        name: String,
        /// Comma-separated: bindings:read, bindings:write, calls:read, numbers:read,
        /// numbers:write, webhooks:manage, admin (admin includes every other and sees every
        /// client's bindings).
        #[arg(long, required = true)]
        scopes: String,
        /// Requests per second this client may make (per gateway instance); none: no limit.
        #[arg(long)]
        rate_limit: Option<std::num::NonZeroU32>,
    },
    /// Lists clients: names, scopes, rate limits, token prefixes and last use (never a token).
    List,
    /// Issues another token to a client (rotation) and prints it.
    Token { name: String },
    /// Revokes every token of a client, or only the one with --token PREFIX.
    Revoke {
        name: String,
        /// The token's prefix as `clients list` shows it (axg_ and 8 characters).
        #[arg(long)]
        token: Option<String>,
    },
    /// Changes a client's scopes or rate limit, or disables or enables it.
    Update {
        name: String,
        #[arg(long)]
        scopes: Option<String>,
        #[arg(long, conflicts_with = "no_rate_limit")]
        rate_limit: Option<std::num::NonZeroU32>,
        /// Removes the client's rate limit.
        #[arg(long)]
        no_rate_limit: bool,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NumbersCommand {
    /// Add every number of a CSV file to the pool, or none (migrates the database first).
    /// One `number,area_code` per line (`+8617000000004,021`); an optional
    /// `number,area_code` header, blank lines and lines starting with `#` are skipped.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct SandboxCallArgs {
    /// The sandbox (`serve --sandbox` prints it).
    #[arg(long, env = "SANDBOX_URL", default_value = "http://127.0.0.1:8090")]
    pub sandbox_url: String,
    /// Call this binding (its X and E are looked up on the gateway).
    #[arg(long, conflicts_with_all = ["virtual_num", "extend_num"])]
    pub binding: Option<String>,
    /// Call the newest binding on the gateway (looked up like --binding).
    #[arg(long, conflicts_with_all = ["binding", "virtual_num", "extend_num"])]
    pub latest: bool,
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

impl std::fmt::Debug for SandboxCallArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::domain::Masked;
        f.debug_struct("SandboxCallArgs")
            .field("sandbox_url", &self.sandbox_url)
            .field("binding", &self.binding)
            .field("latest", &self.latest)
            .field("gateway_url", &self.gateway_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("virtual_num", &Masked(&self.virtual_num))
            .field("extend_num", &self.extend_num)
            .field("caller", &Masked(&self.caller))
            .field("outcome", &self.outcome)
            .field("talk_seconds", &self.talk_seconds)
            .field("record", &self.record)
            .field("duplicates", &self.duplicates)
            .field("out_of_order", &self.out_of_order)
            .finish()
    }
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
        Command::Numbers {
            command: NumbersCommand::Import { file },
        } => import_numbers(&file).await,
        Command::Clients { command } => clients(command).await,
        Command::CheckConfig => check_config().await,
        Command::Listen { port, host, secret } => {
            let listener = TcpListener::bind((host.as_str(), port))?;
            println!(
                "listening for events on http://{}/ (Ctrl-C to stop)",
                listener.local_addr()?
            );
            crate::events::listen::run(listener, secret).await?;
            Ok(())
        }
        Command::Pool => pool().await,
        Command::Bindings { command } => bindings::run(command).await,
        Command::Openapi => {
            print!("{}", crate::api::openapi::json());
            Ok(())
        }
    }
}

/// `clients …`: tokens alone on stdout, everything else on stderr.
async fn clients(command: ClientsCommand) -> Result<(), StartupError> {
    use crate::auth::{ClientAdmin, ClientChange, ClientName, NewClient, Scopes};
    let bad = |m: String| StartupError::Other(m);
    let admin = ClientAdmin::new(open_db(&Settings::load(&Environment, true)?).await?);
    let failed = |e: crate::service::ServiceError| StartupError::Other(e.to_string());
    match command {
        ClientsCommand::Create {
            name,
            scopes,
            rate_limit,
        } => {
            let new = NewClient {
                name: ClientName::parse(&name).map_err(bad)?,
                scopes: Scopes::parse(&scopes).map_err(|m| bad(format!("--scopes: {m}")))?,
                rate_limit_per_second: rate_limit,
            };
            let (info, token) = admin.create(new).await.map_err(failed)?;
            eprintln!(
                "created client {} with scopes {} (token {}…); the token is shown once, below",
                info.name,
                info.scopes,
                token.prefix()
            );
            println!("{}", token.expose());
        }
        ClientsCommand::Token { name } => {
            let (info, token) = admin.add_token(name.clone()).await.map_err(failed)?;
            eprintln!(
                "issued token {}… to client {name}; its other tokens keep working until revoked",
                info.prefix
            );
            println!("{}", token.expose());
        }
        ClientsCommand::Revoke { name, token } => {
            if let Some(p) = &token {
                if !crate::auth::valid_prefix(p) {
                    return Err(bad(format!(
                        "--token {p:?} is not a token prefix (axg_ and 8 characters, as `clients list` shows)"
                    )));
                }
            }
            let n = admin.revoke(name.clone(), token).await.map_err(failed)?;
            eprintln!("revoked {n} token(s) of client {name}");
        }
        ClientsCommand::Update {
            name,
            scopes,
            rate_limit,
            no_rate_limit,
            disable,
            enable,
        } => {
            let change = ClientChange {
                scopes: scopes
                    .map(|s| Scopes::parse(&s).map_err(|m| bad(format!("--scopes: {m}"))))
                    .transpose()?,
                rate_limit_per_second: if no_rate_limit {
                    Some(None)
                } else {
                    rate_limit.map(Some)
                },
                disabled: (disable || enable).then_some(disable),
            };
            let info = admin.change(name, change).await.map_err(failed)?;
            eprintln!("{}", client_line(&info));
        }
        ClientsCommand::List => {
            let list = admin.list().await.map_err(failed)?;
            if list.is_empty() {
                eprintln!("no clients in the database (API_TOKENS clients are not listed)");
            }
            for c in &list {
                eprintln!("{}", client_line(c));
                for t in &c.tokens {
                    eprintln!(
                        "    token {}…  created {}  {}  last used {}",
                        t.prefix,
                        when(t.created_at),
                        t.revoked_at.map_or_else(
                            || "active".to_owned(),
                            |r| format!("revoked {}", when(r))
                        ),
                        t.last_used_at.map_or_else(|| "never".to_owned(), when)
                    );
                }
            }
        }
    }
    Ok(())
}

fn client_line(c: &crate::auth::ClientInfo) -> String {
    format!(
        "{}  scopes {}  rate limit {}  {}  last used {}",
        c.name,
        c.scopes,
        c.rate_limit_per_second
            .map_or_else(|| "none".to_owned(), |r| format!("{r}/s")),
        if c.disabled_at.is_some() {
            "DISABLED"
        } else {
            "enabled"
        },
        c.last_used_at.map_or_else(|| "never".to_owned(), when)
    )
}

/// A time as the CLI shows it (UTC, to the second).
fn when(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The pool's rules as `serve` applies them (Huawei's timeouts from the settings, since the
/// CLI has no resolved Huawei endpoint).
fn cli_policy(settings: &Settings) -> Policy {
    Policy {
        limits: Limits {
            digits: settings.extension_digits,
            max_per_number: settings.max_bindings_per_number,
        },
        quarantine: settings.extension_quarantine,
        extension_retry_limit: settings.extension_retry_limit,
        upstream_timeout: settings.huawei_connect_timeout + settings.huawei_request_timeout,
    }
}

/// `pool`: one line per area on stdout, from the numbers' own counters.
async fn pool() -> Result<(), StartupError> {
    let settings = Settings::load(&Environment, true)?;
    let svc = NumberService::new(open_db(&settings).await?, cli_policy(&settings));
    let numbers = svc
        .list()
        .await
        .map_err(|e| StartupError::Other(e.to_string()))?;
    // area → (numbers, usable, live, quarantined, free)
    let mut areas: std::collections::BTreeMap<String, [i64; 5]> = Default::default();
    for n in &numbers {
        let a = areas.entry(n.number.area_code.clone()).or_default();
        a[0] += 1;
        a[1] += i64::from(n.number.status() == crate::domain::NumberStatus::Normal);
        a[2] += n.live_bindings;
        a[3] += n.quarantined_extensions;
        a[4] += n.free_extensions;
    }
    println!("area\tnumbers\tusable\tlive\tquarantined\tfree_extensions");
    for (area, [count, usable, live, quarantined, free]) in &areas {
        println!("{area}\t{count}\t{usable}\t{live}\t{quarantined}\t{free}");
    }
    if areas.is_empty() {
        eprintln!(
            "the pool is empty: add numbers with POST /v1/numbers or `axe-gateway numbers import`"
        );
    }
    Ok(())
}

/// `check-config`: one line per check on stdout, `ok` or `FAIL`.
async fn check_config() -> Result<(), StartupError> {
    let settings = match Settings::load(&Environment, false) {
        Ok(s) => s,
        Err(e) => {
            println!("FAIL configuration: {e}");
            return Err(StartupError::Other("the configuration is invalid".into()));
        }
    };
    let huawei = settings.huawei().clone();
    println!("ok   configuration");
    println!(
        "     DATABASE_URL       {}",
        settings.database_url.redacted()
    );
    println!("     LISTEN_ADDR        {}", settings.listen_addr);
    println!("     HUAWEI_BASE_URL    {}", huawei.base_url);
    println!("     HUAWEI_APP_KEY     {}", huawei.app_key);
    println!("     HUAWEI_APP_SECRET  ****");
    println!(
        "     API_TOKENS         {}",
        settings.api_tokens.as_ref().map_or_else(
            || "(none: database clients only)".to_owned(),
            |t| format!("{t:?}")
        )
    );
    println!(
        "     timeouts           Huawei connect {:?}, request {:?}; database {:?}",
        settings.huawei_connect_timeout, settings.huawei_request_timeout, settings.db_timeout
    );
    println!(
        "     pool               {} extension digits, at most {} bindings per number, quarantine {:?}",
        settings.extension_digits.get(),
        settings.max_bindings_per_number,
        settings.extension_quarantine
    );
    let mut failed = Vec::new();
    let url = settings.database_url.clone();
    let db = actix_rt::task::spawn_blocking(move || crate::db::check(&url))
        .await
        .map_err(|e| StartupError::Other(format!("database check panicked: {e}")))?;
    match db {
        Ok(pending) if pending.is_empty() => {
            println!("ok   database answers, migrations at the head")
        }
        Ok(pending) => {
            println!(
                "FAIL database answers, but {} migration(s) are not applied (run `axe-gateway migrate`): {}",
                pending.len(),
                pending.join(", ")
            );
            failed.push("database");
        }
        Err(e) => {
            println!(
                "FAIL database: {}",
                crate::domain::mask_phones(&e.to_string())
            );
            failed.push("database");
        }
    }
    let guard = crate::huawei::UpstreamGuard::new(&huawei.base_url, settings.resilience);
    let client = crate::huawei::HuaweiClient::new(huawei, guard);
    match client.list_numbers().await {
        Ok(numbers) => println!(
            "ok   Huawei accepted a signed query (QueryAXEBindingCount): {} virtual number(s) in the app",
            numbers.len()
        ),
        Err(e) => {
            println!("FAIL Huawei: {}", e.summary());
            failed.push("huawei");
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(StartupError::Other(format!(
            "check-config failed: {}",
            failed.join(", ")
        )))
    }
}

/// The database at `DATABASE_URL`, migrated (as `serve` does).
async fn open_db(settings: &Settings) -> Result<Db, StartupError> {
    let url = settings.database_url.clone();
    let (pool_size, timeout) = (settings.db_pool_size, settings.db_timeout);
    Ok(
        actix_rt::task::spawn_blocking(move || Db::connect(&url, pool_size, timeout))
            .await
            .map_err(|e| StartupError::Other(format!("database set-up panicked: {e}")))??,
    )
}

/// `numbers import FILE`: every line's errors go to stderr and nothing is added, or every
/// number is added in one transaction.
async fn import_numbers(file: &Path) -> Result<(), StartupError> {
    let shown = file.display();
    let text =
        std::fs::read_to_string(file).map_err(|e| StartupError::Other(format!("{shown}: {e}")))?;
    let (lines, items): (Vec<usize>, Vec<NewNumber>) = match parse_import(&text) {
        Ok(parsed) => parsed.into_iter().unzip(),
        Err(errors) => return Err(bad_lines(file, errors)),
    };
    if items.is_empty() {
        return Err(StartupError::Other(format!(
            "{shown}: no numbers to import"
        )));
    }
    let settings = Settings::load(&Environment, true)?;
    let db = open_db(&settings).await?;
    let policy = cli_policy(&settings);
    let line_of = |position: usize| lines.get(position).copied().unwrap_or(0);
    match NumberService::new(db, policy).add_many(items).await {
        Ok(added) => {
            eprintln!(
                "imported {} numbers from {shown} into {}",
                added.len(),
                settings.database_url.redacted()
            );
            Ok(())
        }
        Err(AddManyError::InPool(positions)) => Err(bad_lines(
            file,
            positions
                .into_iter()
                .map(|p| (line_of(p), "the number is already in the pool".to_owned()))
                .collect(),
        )),
        Err(AddManyError::Repeated(repeats)) => Err(bad_lines(
            file,
            repeats
                .into_iter()
                .map(|(p, first)| (line_of(p), format!("repeats line {}", line_of(first))))
                .collect(),
        )),
        Err(AddManyError::Service(e)) => {
            Err(StartupError::Other(format!("{e}; nothing was imported")))
        }
    }
}

/// What is wrong with a line of an import file: `(line number, message)`.
pub type LineError = (usize, String);

/// Prints each `(line, message)` to stderr; the error says that nothing was imported.
fn bad_lines(file: &Path, errors: Vec<LineError>) -> StartupError {
    for (line, message) in &errors {
        eprintln!("{}:{line}: {message}", file.display());
    }
    StartupError::Other(format!(
        "{}: {} error(s); nothing was imported",
        file.display(),
        errors.len()
    ))
}

/// Parses an import file into `(line number, number)`, or returns every error as `(line
/// number, message)`. Lines count from 1. Fields are split at commas rather than read with a
/// CSV library: numbers and area codes never contain commas or quotes, and a quoted or
/// otherwise odd field is refused by the same parsers as the API's, naming its line. Messages
/// do not repeat the values (phone numbers are personal data).
pub fn parse_import(text: &str) -> Result<Vec<(usize, NewNumber)>, Vec<LineError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    let mut first_data_line = true;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let header = first_data_line
            && fields.len() == 2
            && fields[0].eq_ignore_ascii_case("number")
            && fields[1].eq_ignore_ascii_case("area_code");
        first_data_line = false;
        if header {
            continue;
        }
        let [number, area_code] = fields[..] else {
            errors.push((
                line_no,
                format!(
                    "expected 2 fields, number,area_code; found {}",
                    fields.len()
                ),
            ));
            continue;
        };
        let number = PhoneNumber::parse(number)
            .map_err(|e| errors.push((line_no, format!("number: {e}"))))
            .ok();
        let area_code = AreaCode::parse(area_code)
            .map_err(|e| errors.push((line_no, format!("area_code: {e}"))))
            .ok();
        if let (Some(number), Some(area_code)) = (number, area_code) {
            parsed.push((line_no, NewNumber { number, area_code }));
        }
    }
    for (line_no, first) in repeated(parsed.iter().map(|(l, n)| (*l, &n.number))) {
        errors.push((line_no, format!("the number repeats line {first}")));
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        errors.sort_by_key(|(line, _)| *line);
        Err(errors)
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
    let token = || {
        args.token.as_deref().ok_or_else(|| {
            StartupError::Other(
                "--binding and --latest need --token (or TOKEN) to ask the gateway".into(),
            )
        })
    };
    let (virtual_num, extend_num) = match &args.binding {
        Some(id) => lookup_binding(&args.gateway_url, token()?, id).await?,
        None if args.latest => {
            let id = newest_binding(&args.gateway_url, token()?).await?;
            lookup_binding(&args.gateway_url, token()?, &id).await?
        }
        None => (
            args.virtual_num.clone().ok_or_else(|| {
                StartupError::Other(
                    "give --binding, --latest, or --virtual-num and --extend-num".into(),
                )
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

/// The id of the gateway's newest binding (the first of its list).
async fn newest_binding(gateway: &str, token: &str) -> Result<String, StartupError> {
    let body = get_json(gateway, token, "/v1/bindings?limit=1").await?;
    body["items"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            StartupError::Other(format!(
                "{gateway} has no binding yet: create one first (POST /v1/bindings)"
            ))
        })
}

/// GET `path` on the gateway's API, as JSON; a non-2xx answer is an error showing its body.
async fn get_json(
    gateway: &str,
    token: &str,
    path: &str,
) -> Result<serde_json::Value, StartupError> {
    crate::huawei::client::install_crypto_provider();
    let url = format!("{}{path}", gateway.trim_end_matches('/'));
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
        return Err(StartupError::Other(format!(
            "{url}: {} {body}",
            resp.status()
        )));
    }
    Ok(body)
}

/// X and E of a binding, from the gateway's API.
async fn lookup_binding(
    gateway: &str,
    token: &str,
    id: &str,
) -> Result<(String, Option<String>), StartupError> {
    let body = get_json(gateway, token, &format!("/v1/bindings/{id}")).await?;
    let x = body["virtual_num"]
        .as_str()
        .ok_or_else(|| StartupError::Other(format!("binding {id} has no virtual number yet")))?;
    Ok((x.to_owned(), body["extend_num"].as_str().map(str::to_owned)))
}

/// The banner's "try it" lines: commands that work pasted as they are, in order (with a token
/// chosen in API_TOKENS, once `TOKEN` holds it).
fn try_it_lines(gateway: SocketAddr, sandbox_url: &str, demo_token: Option<&str>) -> Vec<String> {
    // `cargo run` does not put the binary on PATH: name it as it was started.
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string())
        .filter(|p| !p.contains(char::is_whitespace))
        .unwrap_or_else(|| "axe-gateway".into());
    let mut lines = Vec::new();
    match demo_token {
        Some(token) => {
            lines.push(format!(
                "  Token:    {token}   (client \"demo\"; set API_TOKENS to choose your own)"
            ));
            lines.push(String::new());
            lines.push(format!("  export TOKEN={token}"));
        }
        None => {
            lines.push("  Tokens:   from API_TOKENS; below, TOKEN must hold one of them".into());
        }
    }
    lines.push(String::new());
    lines.push(
        "  Create a binding, then play a call to the newest one (events and CDR arrive at".into(),
    );
    lines.push(
        "  /huawei/events and /huawei/cdr; see them with GET /v1/bindings/{id}/calls):".into(),
    );
    lines.push(format!(
        "  curl -sS -X POST http://{gateway}/v1/bindings -H \"Authorization: Bearer $TOKEN\" \
         -H 'Content-Type: application/json' \
         -d '{{\"order_id\":\"demo-1\",\"bind_num\":\"+8613800000001\",\"area_code\":\"0755\"}}'"
    ));
    lines.push(format!(
        "  {exe} sandbox-call --sandbox-url {sandbox_url} --gateway-url http://{gateway} --token \"$TOKEN\" --latest"
    ));
    lines
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
        // HUAWEI_APP_SECRET when set (so the secret is known, e.g. to sign test pushes),
        // otherwise a fresh one per run.
        let secret = std::env::var("HUAWEI_APP_SECRET")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
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
                app_secret: secret.into(),
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
        let mut banner = vec![
            String::new(),
            "  axe-gateway is running with the Huawei sandbox (no Huawei account is used).".into(),
            format!("  API:      http://{gateway_addr}"),
            format!("  Docs:     http://{gateway_addr}/docs (OpenAPI: /openapi.json)"),
            format!("  Sandbox:  {} (emulated Huawei AXE API)", huawei.base_url),
            format!("  Database: {}", settings.database_url.redacted()),
            format!(
                "  Pool:     {}",
                pooled
                    .iter()
                    .map(|(n, a)| format!("{n} ({a})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ];
        banner.extend(try_it_lines(
            gateway_addr,
            &huawei.base_url,
            demo_token.as_deref(),
        ));
        banner.push(String::new());
        // One write, and its failure ignored: `println!` panics when stdout is closed (piped
        // into `head`, or a reader that stopped), and the banner is not worth the gateway.
        let mut text = banner.join("\n");
        text.push('\n');
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(parsed: &[(usize, NewNumber)]) -> Vec<(usize, &str, &str)> {
        parsed
            .iter()
            .map(|(l, n)| (*l, n.number.as_str(), n.area_code.as_str()))
            .collect()
    }

    #[test]
    fn import_files_skip_header_blank_lines_and_comments_and_trim() {
        let text = "\u{feff}Number , Area_Code\r\n\
                    # the Shenzhen numbers\r\n\
                    +8617000000001,0755\r\n\
                    \r\n\
                    \t +8617000000002 ,  0755  \n\
                    +8617000000003,010";
        let parsed = parse_import(text).expect("a good file");
        assert_eq!(
            numbers(&parsed),
            vec![
                (3, "+8617000000001", "0755"),
                (5, "+8617000000002", "0755"),
                (6, "+8617000000003", "010"),
            ]
        );
        let no_header = parse_import("+8617000000001,0755\n").expect("no header");
        assert_eq!(numbers(&no_header), vec![(1, "+8617000000001", "0755")]);
        assert!(parse_import("# nothing\n\n").expect("empty").is_empty());
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "number,area_code\n\
                    +8617000000001,0755\n\
                    8617000000002,0755\n\
                    +8617000000003\n\
                    +8617000000004,755,x\n\
                    12,ab\n\
                    \"+8617000000005\",0755\n\
                    +8617000000001,010\n\
                    number,area_code\n";
        let errors = parse_import(text).expect_err("bad lines");
        let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 6, 7, 8, 9, 9], "{errors:?}");
        assert!(errors[0].1.starts_with("number: "), "{errors:?}");
        assert_eq!(errors[1].1, "expected 2 fields, number,area_code; found 1");
        assert_eq!(errors[2].1, "expected 2 fields, number,area_code; found 3");
        assert!(errors[4].1.starts_with("area_code: "), "{errors:?}");
        assert_eq!(errors[6].1, "the number repeats line 2");
        // A header is only a header on the first line that is not blank or a comment.
        assert!(errors[7].1.starts_with("number: "), "{errors:?}");
        assert!(
            errors.iter().all(|(_, m)| !m.contains("+86170")),
            "no phone number in messages: {errors:?}"
        );
    }
}
