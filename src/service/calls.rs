//! Reading calls (with their events and CDR) and fetching recording links.

use chrono::NaiveDateTime;

use super::{Actor, ServiceError};
use crate::db::calls::{self, Call, CallEvent, CallRecord};
use crate::db::{self, Db};
use crate::huawei::wire::RecordingQuery;
use crate::huawei::{HuaweiClient, UpstreamKind};

/// Huawei keeps recordings for 7 days after the CDR.
pub const RECORDING_DAYS: i64 = 7;

/// A call with everything we know of it.
#[derive(Debug, Clone)]
pub struct CallDetail {
    pub call: Call,
    pub events: Vec<CallEvent>,
    pub record: Option<CallRecord>,
}

/// Why there is no recording link.
#[derive(Debug)]
pub enum RecordingError {
    NotRecorded,
    Expired,
    Service(ServiceError),
}

impl From<ServiceError> for RecordingError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

pub struct CallService {
    db: Db,
    huawei: HuaweiClient,
}

impl CallService {
    pub fn new(db: Db, huawei: HuaweiClient) -> Self {
        Self { db, huawei }
    }

    /// A binding's calls, newest first; `before` is the (started_at, id) of the last call seen.
    pub async fn of_binding(
        &self,
        binding_id: String,
        before: Option<(NaiveDateTime, String)>,
        limit: i64,
        actor: &Actor,
    ) -> Result<Vec<CallDetail>, ServiceError> {
        let actor = actor.clone();
        self.db
            .run(move |conn| {
                let owner = calls::binding_owner(conn, &binding_id)?;
                if !owner.is_some_and(|o| actor.may_see(&o)) {
                    return Err(ServiceError::NotFound(format!("no binding {binding_id}")));
                }
                let list = calls::calls_of_binding(conn, &binding_id, before, limit)?;
                Ok(with_details(conn, list)?)
            })
            .await
    }

    /// A call by our id or Huawei's icid. A client sees the calls of its own bindings; a call
    /// not linked to any binding only `admin` sees.
    pub async fn get(&self, id: String, actor: &Actor) -> Result<CallDetail, ServiceError> {
        let actor = actor.clone();
        self.db
            .run(move |conn| {
                let missing = || ServiceError::NotFound(format!("no call {id}"));
                let call = calls::find_call(conn, &id)?.ok_or_else(missing)?;
                if !actor.sees_all() {
                    let owner = match &call.binding_id {
                        Some(b) => calls::binding_owner(conn, b)?,
                        None => None,
                    };
                    if !owner.is_some_and(|o| actor.may_see(&o)) {
                        return Err(missing());
                    }
                }
                Ok(with_details(conn, vec![call])?
                    .pop()
                    .unwrap_or_else(|| unreachable!("one call in, one out")))
            })
            .await
    }

    /// The download URL of the call's recording, from Huawei's recording-link API.
    pub async fn recording_url(&self, id: String, actor: &Actor) -> Result<String, RecordingError> {
        let detail = self.get(id, actor).await?;
        let Some(record) = detail.record.filter(|r| r.record_flag == Some(1)) else {
            return Err(RecordingError::NotRecorded);
        };
        let (Some(file_name), Some(record_domain)) = (
            record.record_object_name.clone(),
            record.record_domain.clone(),
        ) else {
            return Err(RecordingError::NotRecorded);
        };
        let recorded = record
            .call_end_time
            .or(record.record_start_time)
            .unwrap_or(record.received_at);
        if db::now() - recorded > chrono::Duration::days(RECORDING_DAYS) {
            return Err(RecordingError::Expired);
        }
        match self
            .huawei
            .recording_link(&RecordingQuery {
                file_name,
                record_domain,
            })
            .await
        {
            Ok(url) => Ok(url),
            // Huawei deletes recordings after its window: "The record does not exist."
            Err(e) if e.kind() == UpstreamKind::NotFound => Err(RecordingError::Expired),
            Err(e) => Err(RecordingError::Service(ServiceError::upstream(e, None))),
        }
    }
}

fn with_details(conn: &mut db::DbConn, list: Vec<Call>) -> Result<Vec<CallDetail>, db::DbError> {
    let ids: Vec<String> = list.iter().map(|c| c.id.clone()).collect();
    let mut events: std::collections::HashMap<String, Vec<CallEvent>> = Default::default();
    for e in calls::events_of_calls(conn, &ids)? {
        events.entry(e.call_id.clone()).or_default().push(e);
    }
    // A call shows its first CDR (records come oldest first).
    let mut records: std::collections::HashMap<String, CallRecord> = Default::default();
    for r in calls::records_of_calls(conn, &ids)? {
        records.entry(r.call_id.clone()).or_insert(r);
    }
    Ok(list
        .into_iter()
        .map(|call| {
            let mut mine = events.remove(&call.id).unwrap_or_default();
            // Huawei's timestamps have whole seconds; within one second, keep the call's order.
            mine.sort_by_key(|e| (e.event_at, event_rank(&e.event_type)));
            CallDetail {
                record: records.remove(&call.id),
                events: mine,
                call,
            }
        })
        .collect())
}

fn event_rank(event_type: &str) -> usize {
    crate::huawei::notify::EVENT_TYPES
        .iter()
        .position(|t| *t == event_type)
        .unwrap_or(usize::MAX)
}
