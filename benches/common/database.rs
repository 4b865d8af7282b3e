//! The benches' own databases: a SQLite file in a temporary directory, or a PostgreSQL database
//! created for the run and dropped after it.

use axe_gateway::db::{self, Db};
use diesel::{Connection, RunQueryDsl};

/// Where PostgreSQL is (`TEST_POSTGRES_URL`, as for the tests).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database, removed on drop.
pub enum BenchDatabase {
    Sqlite {
        dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl BenchDatabase {
    /// A new database of `backend` ("sqlite" or "postgres"); `None` (with a line saying so)
    /// when PostgreSQL does not answer.
    pub fn create(backend: &str) -> Option<Self> {
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Some(Self::Sqlite { dir, url })
            }
            "postgres" => {
                let admin_url = postgres_admin_url();
                let Ok(mut admin) = diesel::PgConnection::establish(&admin_url) else {
                    println!("PostgreSQL at {admin_url} unreachable: skipping its runs");
                    return None;
                };
                let name = format!("axe_bench_{}", uuid::Uuid::new_v4().simple());
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create bench database");
                let mut url = url::Url::parse(&admin_url).expect("postgres url");
                url.set_path(&name);
                Some(Self::Postgres {
                    admin_url,
                    name,
                    url: url.to_string(),
                })
            }
            other => panic!("unknown backend {other} (sqlite or postgres)"),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
        {
            if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
}

/// Rows in a table of the gateway's database; -1 if it cannot be counted (shown as a mismatch).
pub fn count_rows(db: &Db, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    db.run_blocking(|conn| {
        diesel::RunQueryDsl::get_result::<Count>(
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")),
            conn,
        )
        .map(|c| c.n)
        .map_err(db::DbError::from)
    })
    .unwrap_or(-1)
}

/// PostgreSQL only (a no-op on SQLite): refreshes the planner's statistics, as autovacuum
/// would on a running server a minute after a table fills. A brand-new database has none, and
/// PostgreSQL then plans for empty tables.
pub fn analyze(db: &Db) {
    if db.backend() == axe_gateway::config::Backend::Postgres {
        db.run_blocking(|conn| {
            diesel::sql_query("ANALYZE")
                .execute(conn)
                .map_err(db::DbError::from)
        })
        .expect("analyze");
    }
}
