//! `bindings show ID` and `bindings list`: one binding with its history, or a filtered list,
//! read from the database. Phone numbers are masked unless `--unmasked` is given.

use clap::Subcommand;

use crate::config::{Environment, Settings};
use crate::db::calls::CallStats;
use crate::db::history::HistoryRow;
use crate::db::models::Binding;
use crate::domain::{mask_phone, BindingStatus, OrderId, PhoneNumber, RowId};
use crate::service::{Actor, BindingReads, ServiceError};
use crate::startup::StartupError;

/// Most rows `bindings list` prints.
const MAX_LIST: i64 = 10_000;

#[derive(Debug, Subcommand)]
pub enum BindingsCommand {
    /// One binding: every column, its call statistics and its history, oldest change first.
    Show {
        /// The binding's id (as the API returns it).
        id: String,
        /// Show phone numbers in full (they are personal data: only when needed).
        #[arg(long)]
        unmasked: bool,
    },
    /// Bindings, newest first, one tab-separated line each.
    List {
        /// Only the bindings of this order id.
        #[arg(long)]
        order: Option<String>,
        /// Only those this API client created.
        #[arg(long)]
        client: Option<String>,
        /// Only those in this status: pending, active, failed, released or expired.
        #[arg(long)]
        status: Option<String>,
        /// Only those of this real number A (E.164).
        #[arg(long)]
        bind_num: Option<String>,
        /// Only those on this virtual number X (E.164).
        #[arg(long)]
        virtual_num: Option<String>,
        /// At most this many lines (1 to 10000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Show phone numbers in full (they are personal data: only when needed).
        #[arg(long)]
        unmasked: bool,
    },
}

pub async fn run(command: BindingsCommand) -> Result<(), StartupError> {
    let settings = Settings::load(&Environment, true)?;
    let db = super::open_db(&settings).await?;
    let svc = BindingReads::new(&db);
    let admin = Actor::job("cli");
    let failed = |e: ServiceError| StartupError::Other(e.to_string());
    match command {
        BindingsCommand::Show { id, unmasked } => {
            let id = RowId::parse(&id)
                .map_err(|e| StartupError::Other(format!("{id:?} {e}")))?
                .into_string();
            let (binding, stats) = svc
                .get_with_stats(id.clone(), &admin)
                .await
                .map_err(failed)?;
            let history = svc.history(id, &admin).await.map_err(failed)?;
            print!("{}", show(&binding, &stats, &history, Phones::of(unmasked)));
        }
        BindingsCommand::List {
            order,
            client,
            status,
            bind_num,
            virtual_num,
            limit,
            unmasked,
        } => {
            let bad = |flag: &str, e: &dyn std::fmt::Display| {
                StartupError::Other(format!("--{flag}: {e}"))
            };
            if !(1..=MAX_LIST).contains(&limit) {
                return Err(bad("limit", &format!("must be from 1 to {MAX_LIST}")));
            }
            let phone = |flag: &str, v: Option<String>| {
                v.map(|v| PhoneNumber::parse(&v).map(|p| p.as_str().to_owned()))
                    .transpose()
                    .map_err(|e| bad(flag, &e))
            };
            let filter = crate::db::bindings::Filter {
                created_by: client,
                order_id: order
                    .map(|o| OrderId::parse(&o).map(|o| o.as_str().to_owned()))
                    .transpose()
                    .map_err(|e| bad("order", &e))?,
                bind_num: phone("bind-num", bind_num)?,
                virtual_num: phone("virtual-num", virtual_num)?,
                subscription_id: None,
                status: status
                    .map(|s| BindingStatus::parse(&s))
                    .transpose()
                    .map_err(|e| bad("status", &e))?,
                before_id: None,
            };
            let (rows, more) = svc.list(filter, limit, &admin).await.map_err(failed)?;
            print!("{}", list(&rows, Phones::of(unmasked)));
            if rows.is_empty() {
                eprintln!("no binding matches");
            } else if more {
                eprintln!(
                    "{} shown, newest first; more match (raise --limit or narrow the filters)",
                    rows.len()
                );
            }
        }
    }
    Ok(())
}

/// How phone numbers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phones {
    Masked,
    Unmasked,
}

impl Phones {
    fn of(unmasked: bool) -> Self {
        if unmasked {
            Self::Unmasked
        } else {
            Self::Masked
        }
    }

    fn show(self, number: Option<&str>) -> String {
        match (self, number) {
            (_, None) => "-".to_owned(),
            (Self::Masked, Some(n)) => mask_phone(n),
            (Self::Unmasked, Some(n)) => n.to_owned(),
        }
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn when(t: Option<chrono::NaiveDateTime>) -> String {
    t.map_or_else(|| "-".to_owned(), super::when)
}

/// `bindings show`: the binding's fields, one per line, then its history.
fn show(b: &Binding, stats: &CallStats, history: &[HistoryRow], phones: Phones) -> String {
    let fields: [(&str, String); 23] = [
        ("id", b.id.clone()),
        ("status", b.status.clone()),
        ("order_id", b.order_id.clone()),
        ("created_by", b.created_by.clone()),
        ("bind_num", phones.show(Some(&b.bind_num))),
        ("virtual_num", phones.show(b.virtual_num.as_deref())),
        ("extend_num", opt(b.extend_num.as_deref())),
        ("area_code", opt(b.area_code.as_deref())),
        ("number_choice", b.number_choice.clone()),
        ("subscription_id", opt(b.subscription_id.as_deref())),
        ("record", b.record.to_string()),
        ("record_hint_tone", opt(b.record_hint_tone.as_deref())),
        ("callback_num", phones.show(b.callback_num.as_deref())),
        ("callback_tone", opt(b.callback_tone.as_deref())),
        ("ttl_minutes", opt(b.ttl_minutes)),
        ("callback_ttl_minutes", opt(b.callback_ttl_minutes)),
        ("expires_at", when(b.expires_at)),
        ("user_data", opt(b.user_data.as_deref())),
        ("created_at", super::when(b.created_at)),
        ("updated_at", super::when(b.updated_at)),
        ("released_at", when(b.released_at)),
        ("in_quarantine", b.in_quarantine.to_string()),
        ("last_error", opt(b.last_error.as_deref())),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        out += &format!("{name:<21}{value}\n");
    }
    out += &format!(
        "{:<21}{} ({} answered, {} s talk time, last {})\n",
        "calls",
        stats.call_count,
        stats.answered_count,
        stats.total_talk_seconds,
        when(stats.last_call_at)
    );
    out += "\nhistory (oldest first)\nat\tactor\taction\tstatus\trequest_id\tchanges\n";
    for h in history {
        out += &format!(
            "{}\t{}\t{}\t{} -> {}\t{}\t{}\n",
            super::when(h.at),
            h.actor,
            h.action,
            opt(h.old_status.as_deref()),
            h.new_status,
            opt(h.request_id.as_deref()),
            // Stored with every personal number masked already.
            opt(h.changes.as_deref()),
        );
    }
    out
}

/// `bindings list`: a header, then one tab-separated line per binding.
fn list(rows: &[(Binding, CallStats)], phones: Phones) -> String {
    let mut out = String::from(
        "id\tcreated_at\tstatus\torder_id\tclient\tbind_num\tvirtual_num\textend_num\tcalls\tlast_error\n",
    );
    for (b, stats) in rows {
        out += &format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            b.id,
            super::when(b.created_at),
            b.status,
            b.order_id,
            b.created_by,
            phones.show(Some(&b.bind_num)),
            phones.show(b.virtual_num.as_deref()),
            opt(b.extend_num.as_deref()),
            stats.call_count,
            opt(b.last_error.as_deref()),
        );
    }
    out
}
