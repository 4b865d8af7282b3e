//! Request ids: kept from the caller's `X-Request-Id` when it is a plain token, generated
//! otherwise, and made visible to everything that runs for the request (log lines, problem
//! bodies) without passing it through every function.
//!
//! On the async worker the id lives in a tokio task-local set around the request's future.
//! Blocking work (diesel on the blocking pool) runs on other threads, where task-locals are not
//! visible: [`carry`] captures the id before the work is handed over and sets a thread-local
//! for the closure's duration.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

pub const HEADER: &str = "x-request-id";

/// Longest id taken from a caller; a longer one is replaced, not cut.
const MAX_LEN: usize = 128;

/// A request id: 1–128 characters of `[A-Za-z0-9._-]`, so it is safe in a header, a log line
/// and a JSON string as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The caller's id, if it is acceptable.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| Self(raw.into()))
    }

    /// A fresh id: a UUIDv7, so ids sort by time in logs.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string().into())
    }

    /// The caller's header value when acceptable, else a fresh id.
    pub fn from_header(value: Option<&[u8]>) -> Self {
        value
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    static TASK_ID: RequestId;
}

thread_local! {
    static THREAD_ID: RefCell<Option<RequestId>> = const { RefCell::new(None) };
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: RequestId, fut: F) -> F::Output {
    TASK_ID.scope(id, fut).await
}

/// The id of the request being served here, if any.
pub fn current() -> Option<RequestId> {
    TASK_ID
        .try_with(Clone::clone)
        .ok()
        .or_else(|| THREAD_ID.with(|t| t.borrow().clone()))
}

/// Calls `f` with the current id (the log formatter, on every line: no allocation).
pub fn with_current<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    match TASK_ID.try_with(Clone::clone) {
        Ok(id) => f(Some(id.as_str())),
        Err(_) => THREAD_ID.with(|t| f(t.borrow().as_ref().map(RequestId::as_str))),
    }
}

/// Wraps blocking work so that it runs with the current request id (captured now, on the
/// calling task) as its thread's id.
pub fn carry<T>(work: impl FnOnce() -> T) -> impl FnOnce() -> T {
    let id = current();
    move || with_id(id, work)
}

/// Runs `work` with `id` (taken with [`current`] before the work was handed over) as this
/// thread's request id.
pub fn with_id<T>(id: Option<RequestId>, work: impl FnOnce() -> T) -> T {
    // Restored even if `work` panics, so a pooled thread never keeps a finished request's id.
    struct Restore(Option<RequestId>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            THREAD_ID.with(|t| *t.borrow_mut() = previous);
        }
    }
    let _restore = Restore(THREAD_ID.with(|t| t.replace(id)));
    work()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_kept_only_when_plain_and_short() {
        for good in ["a", "abc-123_X.y", &"x".repeat(128)] {
            assert_eq!(RequestId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "has space",
            "semi;colon",
            "ünï",
            "a/b",
            &"x".repeat(129),
        ] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
        let fresh = RequestId::from_header(Some(b"bad id"));
        assert!(uuid::Uuid::parse_str(fresh.as_str()).is_ok(), "{fresh}");
        assert_eq!(RequestId::from_header(Some(b"ok-1")).as_str(), "ok-1");
        assert_ne!(RequestId::generate(), RequestId::generate());
    }

    #[test]
    fn blocking_work_sees_the_id_of_the_task_that_handed_it_over() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let id = RequestId::parse("req-7").unwrap();
        let seen = rt.block_on(scope(id, async {
            let work = carry(|| current().map(|i| i.to_string()));
            std::thread::spawn(work).join().unwrap()
        }));
        assert_eq!(seen.as_deref(), Some("req-7"));
        assert_eq!(current(), None, "nothing outside a request");
        with_current(|id| assert_eq!(id, None));
    }
}
