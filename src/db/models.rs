//! Row types. Text columns hold the domain values' string forms; the typed accessors parse them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{bindings, virtual_numbers};
use crate::domain::{BindingStatus, NumberChoice, NumberStatus};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
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
}

impl Binding {
    /// The status; a value outside the CHECK constraint cannot be stored, so this falls back to
    /// `Failed` only for a hand-edited row.
    pub fn status(&self) -> BindingStatus {
        BindingStatus::parse(&self.status).unwrap_or(BindingStatus::Failed)
    }

    pub fn set_status(&mut self, status: BindingStatus) {
        self.status = status.as_str().to_owned();
    }

    pub fn number_choice(&self) -> NumberChoice {
        NumberChoice::parse(&self.number_choice).unwrap_or(NumberChoice::Client)
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = virtual_numbers, primary_key(number), treat_none_as_null = true)]
pub struct VirtualNumber {
    pub number: String,
    pub area_code: String,
    pub status: String,
    pub status_cause: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl VirtualNumber {
    pub fn status(&self) -> NumberStatus {
        NumberStatus::parse(&self.status).unwrap_or(NumberStatus::Unavailable)
    }
}
