//! Counts for the metrics' gauges, read periodically (never per scrape). Each query is bounded
//! by what is live, not by history: bindings are counted through the status index for the live
//! statuses only, and the number pool is small (one row per virtual number).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;

use super::numbers::Room;
use super::schema::{bindings, virtual_numbers};
use super::{DbConn, DbError};
use crate::domain::{BindingStatus, NumberStatus};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Live bindings by status (pending, active).
    pub bindings: BTreeMap<String, i64>,
    /// When the oldest pending binding was written.
    pub oldest_pending: Option<NaiveDateTime>,
    /// Numbers by (area code, status).
    pub numbers: BTreeMap<(String, String), i64>,
    /// Bindings that can still be created, per area code (areas with numbers in any status).
    pub free_extensions: BTreeMap<String, i64>,
    /// Bindings the area's usable numbers hold at most (none live or quarantined), per area
    /// code: what `free_extensions` is a share of.
    pub capacity: BTreeMap<String, i64>,
}

pub fn pool_stats(conn: &mut DbConn, room: Room) -> Result<PoolStats, DbError> {
    let live = [
        BindingStatus::Pending.as_str(),
        BindingStatus::Active.as_str(),
    ];
    let by_status: Vec<(String, i64)> = bindings::table
        .filter(bindings::status.eq_any(live))
        .group_by(bindings::status)
        .select((bindings::status, count_star()))
        .load(conn)?;
    let oldest_pending: Option<NaiveDateTime> = bindings::table
        .filter(bindings::status.eq(BindingStatus::Pending.as_str()))
        .select(min(bindings::created_at))
        .first(conn)?;
    let numbers: Vec<(String, String, i32, i32)> = virtual_numbers::table
        .select((
            virtual_numbers::area_code,
            virtual_numbers::status,
            virtual_numbers::live_bindings,
            virtual_numbers::quarantined_extensions,
        ))
        .load(conn)?;

    let mut stats = PoolStats {
        oldest_pending,
        ..PoolStats::default()
    };
    for status in live {
        stats.bindings.insert(status.to_owned(), 0);
    }
    stats.bindings.extend(by_status);
    for (area, status, live, quarantined) in numbers {
        // The same rule as allocation (`Room`): below the per-number cap, and an extension
        // that is neither held nor quarantined.
        let (free, capacity) = if status == NumberStatus::Normal.as_str() {
            (
                (room.max_live - live)
                    .min(room.extensions - live - quarantined)
                    .max(0),
                room.max_live.min(room.extensions).max(0),
            )
        } else {
            (0, 0)
        };
        *stats.free_extensions.entry(area.clone()).or_default() += i64::from(free);
        *stats.capacity.entry(area.clone()).or_default() += i64::from(capacity);
        *stats.numbers.entry((area, status)).or_default() += 1;
    }
    Ok(stats)
}
