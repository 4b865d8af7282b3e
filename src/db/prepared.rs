//! Statements kept prepared by their SQL text.
//!
//! diesel prepares a statement once per connection only when it can tell, from the query's
//! type alone, that the text never changes. It gives up for every `UPDATE`, for inserts of
//! rows with optional columns, for SQL literals and for `sql_query`, so those were parsed (and
//! on PostgreSQL planned) anew on every execution: on the create path that was most of
//! PostgreSQL's time. [`Prepared`] keys such a statement by its text instead, which is right
//! whenever the text alone determines the statement, as it does for the fixed shapes it wraps.
//! Never wrap a query whose text varies without bound (an `IN` list of any length): each
//! distinct text stays prepared for the connection's life.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// `Q`, prepared once per connection and SQL text (see the module's documentation). Run a
/// `SELECT` with `load`/`get_result`, a write with [`PreparedWrite::run`].
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

/// A write (`INSERT`, `UPDATE`, `DELETE` without `RETURNING`), prepared like [`Prepared`].
#[derive(Debug, Clone, Copy)]
pub struct PreparedWrite<Q>(pub Q);

/// What makes both wrappers kept prepared by their text: no type-based key, and a statement
/// that is always safe to cache.
macro_rules! keyed_by_text {
    ($wrapper:ident) => {
        impl<Q> QueryId for $wrapper<Q> {
            type QueryId = ();
            // Not keyed by type: two executions of one `Q` may write different text.
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl<Q, DB> QueryFragment<DB> for $wrapper<Q>
        where
            Q: QueryFragment<DB>,
            DB: Backend,
        {
            fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                self.0.walk_ast(pass)
            }

            // The cache key is the SQL text and bind types, so any text is safe to cache.
            fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
                Ok(true)
            }
        }
    };
}

keyed_by_text!(Prepared);
keyed_by_text!(PreparedWrite);

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: Query, Conn> RunQueryDsl<Conn> for Prepared<Q> {}

/// A write returns no rows; typed as untyped rows so that it runs through diesel's `load`,
/// which hands the statement cache the query itself. `execute` hands it a reference, whose
/// blanket `QueryFragment` impl would not ask this type whether it may be cached.
impl<Q> Query for PreparedWrite<Q> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<Q, Conn> RunQueryDsl<Conn> for PreparedWrite<Q> {}

/// No columns: what a write without `RETURNING` yields (nothing).
#[derive(diesel::QueryableByName)]
pub struct NoRow {}

impl<Q> PreparedWrite<Q> {
    /// Runs the write.
    pub fn run<'q, Conn>(self, conn: &mut Conn) -> QueryResult<()>
    where
        Self: diesel::query_dsl::LoadQuery<'q, Conn, NoRow>,
    {
        self.load::<NoRow>(conn).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;
    use std::sync::{Arc, Mutex};

    diesel::table! {
        t (id) {
            id -> Integer,
            n -> Integer,
        }
    }

    /// Counts the statements SQLite prepares.
    #[derive(Default, Clone)]
    struct Prepares(Arc<Mutex<usize>>);

    impl Instrumentation for Prepares {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::CacheQuery { .. } = event {
                *self.0.lock().unwrap() += 1;
            }
        }
    }

    #[test]
    fn an_update_is_prepared_once_and_still_writes_what_each_call_asks() {
        let mut c = diesel::SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0);")
            .unwrap();
        let prepares = Prepares::default();
        c.set_instrumentation(prepares.clone());
        for i in 0..5 {
            PreparedWrite(diesel::update(t::table.find(1 + i % 2)).set(t::n.eq(t::n + i)))
                .run(&mut c)
                .unwrap();
        }
        // Prepared once for five executions with different binds.
        assert_eq!(*prepares.0.lock().unwrap(), 1);
        let rows: Vec<(i32, i32)> = t::table.order(t::id).load(&mut c).unwrap();
        assert_eq!(rows, vec![(1, 6), (2, 4)]);
        let before = *prepares.0.lock().unwrap();
        // diesel alone never caches an update.
        diesel::update(t::table.find(1))
            .set(t::n.eq(t::n + 1))
            .execute(&mut c)
            .unwrap();
        assert_eq!(*prepares.0.lock().unwrap(), before);
    }
}
