//! Row types. Text columns hold the domain values' string forms; the typed accessors parse them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{bindings, virtual_numbers};
use crate::domain::{BindingStatus, NumberChoice, NumberStatus};

#[derive(Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = bindings, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct Binding {
    pub id: String,
    pub order_id: String,
    pub status: String,
    pub bind_num: String,
    pub virtual_num: Option<String>,
    pub extend_num: Option<String>,
    pub number_choice: String,
    pub subscription_id: Option<String>,
    pub area_code: Option<String>,
    pub record: bool,
    pub record_hint_tone: Option<String>,
    pub callback_num: Option<String>,
    pub callback_tone: Option<String>,
    pub ttl_minutes: Option<i32>,
    pub callback_ttl_minutes: Option<i32>,
    pub expires_at: Option<NaiveDateTime>,
    pub user_data: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub released_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    /// Counted in its number's `quarantined_extensions` until the quarantine is over.
    pub in_quarantine: bool,
}

crate::debug_masking!(
    Binding {
        id, order_id, status, extend_num, number_choice, subscription_id, area_code, record,
        record_hint_tone, callback_tone, ttl_minutes, callback_ttl_minutes, expires_at, user_data,
        created_by, created_at, updated_at, released_at, last_error, in_quarantine
    } masking { bind_num, virtual_num, callback_num }
);

impl Binding {
    /// The status; a value outside the CHECK constraint cannot be stored, so this falls back to
    /// `Failed` only for a hand-edited row.
    pub fn status(&self) -> BindingStatus {
        BindingStatus::parse(&self.status).unwrap_or(BindingStatus::Failed)
    }

    /// Changes the status; a binding that ends while holding X+E puts its extension in
    /// quarantine (a caller dialling the old X+E must not reach the next person).
    pub fn set_status(&mut self, status: BindingStatus) {
        let ends = self.status().is_live() && !status.is_live();
        self.in_quarantine = match status {
            BindingStatus::Released | BindingStatus::Expired => {
                self.in_quarantine
                    || (ends && self.virtual_num.is_some() && self.extend_num.is_some())
            }
            BindingStatus::Pending | BindingStatus::Active | BindingStatus::Failed => false,
        };
        self.status = status.as_str().to_owned();
    }

    pub fn number_choice(&self) -> NumberChoice {
        NumberChoice::parse(&self.number_choice).unwrap_or(NumberChoice::Client)
    }

    /// The number whose counters this row counts in, and in which of them.
    pub fn usage(&self) -> Option<(&str, Usage)> {
        let x = self.virtual_num.as_deref()?;
        if self.status().is_live() {
            Some((x, Usage::Live))
        } else if self.in_quarantine {
            Some((x, Usage::Quarantined))
        } else {
            None
        }
    }
}

/// How a binding counts in its virtual number's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Pending or active: `live_bindings`.
    Live,
    /// Ended, extension in quarantine: `quarantined_extensions`.
    Quarantined,
}

#[derive(Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable, Identifiable)]
#[diesel(
    table_name = virtual_numbers,
    primary_key(number),
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub struct VirtualNumber {
    pub number: String,
    pub area_code: String,
    pub status: String,
    pub status_cause: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Pending and active bindings on this number.
    pub live_bindings: i32,
    /// Ended bindings on this number whose extension is still in quarantine.
    pub quarantined_extensions: i32,
}

crate::debug_masking!(
    VirtualNumber {
        area_code, status, status_cause, created_at, updated_at, live_bindings,
        quarantined_extensions
    } masking { number }
);

impl VirtualNumber {
    pub fn status(&self) -> NumberStatus {
        NumberStatus::parse(&self.status).unwrap_or(NumberStatus::Unavailable)
    }
}
