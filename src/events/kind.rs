//! The kinds of event a business service receives, and the body each is sent as.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

/// What happened. Stored as its string form (`binding.active`, …) in `events.type` and in
/// endpoints' `event_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    BindingActive,
    BindingFailed,
    BindingModified,
    BindingReleased,
    BindingExpired,
    CallStarted,
    CallAnswered,
    CallEnded,
    CallRecord,
    RecordingReady,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::BindingActive,
        EventKind::BindingFailed,
        EventKind::BindingModified,
        EventKind::BindingReleased,
        EventKind::BindingExpired,
        EventKind::CallStarted,
        EventKind::CallAnswered,
        EventKind::CallEnded,
        EventKind::CallRecord,
        EventKind::RecordingReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BindingActive => "binding.active",
            EventKind::BindingFailed => "binding.failed",
            EventKind::BindingModified => "binding.modified",
            EventKind::BindingReleased => "binding.released",
            EventKind::BindingExpired => "binding.expired",
            EventKind::CallStarted => "call.started",
            EventKind::CallAnswered => "call.answered",
            EventKind::CallEnded => "call.ended",
            EventKind::CallRecord => "call.record",
            EventKind::RecordingReady => "recording.ready",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                format!(
                    "unknown event type {:?} (known: {})",
                    raw.escape_debug().to_string(),
                    Self::ALL.map(EventKind::as_str).join(", ")
                )
            })
    }

    /// The event a binding's move to `status` is announced as, if any (`pending` is not).
    pub fn of_binding_status(status: &str) -> Option<Self> {
        Some(match status {
            "active" => EventKind::BindingActive,
            "failed" => EventKind::BindingFailed,
            "released" => EventKind::BindingReleased,
            "expired" => EventKind::BindingExpired,
            _ => return None,
        })
    }

    /// The event a Huawei call event (`answer`, `disconnect`, …) is announced as, if any:
    /// ringing, digits and the outgoing leg's start are not, and a call's start is announced
    /// when the call is first linked to its binding (often only at the digits that follow
    /// `callin`), not at `callin`.
    pub fn of_call_event(huawei_event: &str) -> Option<Self> {
        Some(match huawei_event {
            "answer" => EventKind::CallAnswered,
            "disconnect" => EventKind::CallEnded,
            _ => return None,
        })
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored event, as the relay and the feed read it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position in the store: the feed's cursor.
    pub position: i64,
    /// `evt_…`: the `webhook-id`, the same on every attempt.
    pub id: String,
    pub client: String,
    pub binding_id: String,
    pub order_id: String,
    pub kind: String,
    pub sequence: i64,
    /// The JSON object stored with the event.
    pub data: String,
    pub created_at: NaiveDateTime,
}

impl StoredEvent {
    /// The body as sent: `{"type", "timestamp", "data"}`, `data` carrying the binding id, order
    /// id and per-binding sequence. Built from the stored columns only, so every attempt (and
    /// the feed) has the same bytes; keys are sorted (serde_json's map).
    pub fn body(&self) -> Value {
        let mut data = match serde_json::from_str::<Value>(&self.data) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        data.insert("binding_id".into(), self.binding_id.clone().into());
        data.insert("order_id".into(), self.order_id.clone().into());
        data.insert("sequence".into(), self.sequence.into());
        let mut body = Map::new();
        body.insert("type".into(), self.kind.clone().into());
        body.insert(
            "timestamp".into(),
            crate::timestamp::rfc3339(self.created_at).into(),
        );
        body.insert("data".into(), Value::Object(data));
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_name_and_unknown_names_are_refused() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Ok(k));
        }
        assert!(EventKind::parse("binding.created").is_err());
    }

    #[test]
    fn the_body_carries_type_timestamp_and_data_with_binding_order_and_sequence() {
        let e = StoredEvent {
            position: 7,
            id: "evt_1".into(),
            client: "shop".into(),
            binding_id: "b1".into(),
            order_id: "o1".into(),
            kind: "call.ended".into(),
            sequence: 3,
            data: r#"{"call_id":"c1","talk_seconds":42}"#.into(),
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0)
                .expect("time")
                .naive_utc(),
        };
        assert_eq!(
            e.body().to_string(),
            r#"{"data":{"binding_id":"b1","call_id":"c1","order_id":"o1","sequence":3,"talk_seconds":42},"timestamp":"2023-11-14T22:13:20.000000Z","type":"call.ended"}"#
        );
    }
}
