//! Queries on `virtual_numbers`.

use diesel::prelude::*;

use chrono::NaiveDateTime;

use super::models::VirtualNumber;
use super::schema::virtual_numbers::dsl;
use super::{DbConn, DbError};
use crate::domain::NumberStatus;

pub fn insert(conn: &mut DbConn, row: &VirtualNumber) -> Result<(), DbError> {
    diesel::insert_into(dsl::virtual_numbers)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, number: &str) -> Result<Option<VirtualNumber>, DbError> {
    Ok(dsl::virtual_numbers
        .find(number)
        .select(VirtualNumber::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConn) -> Result<Vec<VirtualNumber>, DbError> {
    Ok(dsl::virtual_numbers
        .order((dsl::area_code.asc(), dsl::number.asc()))
        .select(VirtualNumber::as_select())
        .load(conn)?)
}

/// Numbers that may take new bindings, optionally only in one area.
pub fn allocatable(conn: &mut DbConn, area_code: Option<&str>) -> Result<Vec<String>, DbError> {
    let mut q = dsl::virtual_numbers
        .filter(dsl::status.eq(NumberStatus::Normal.as_str()))
        .select(dsl::number)
        .into_boxed();
    if let Some(a) = area_code {
        q = q.filter(dsl::area_code.eq(a.to_owned()));
    }
    Ok(q.order(dsl::number.asc()).load(conn)?)
}

pub fn any_in_area(conn: &mut DbConn, area_code: &str) -> Result<bool, DbError> {
    let n: i64 = dsl::virtual_numbers
        .filter(dsl::area_code.eq(area_code))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn delete(conn: &mut DbConn, number: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(dsl::virtual_numbers.find(number)).execute(conn)?)
}

/// Sets a number's Huawei status (from a `numStatus` notification).
pub fn set_status(
    conn: &mut DbConn,
    number: &str,
    status: &str,
    cause: Option<&str>,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(dsl::virtual_numbers.find(number))
        .set((
            dsl::status.eq(status),
            dsl::status_cause.eq(cause),
            dsl::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn save(conn: &mut DbConn, row: &VirtualNumber) -> Result<(), DbError> {
    diesel::update(dsl::virtual_numbers.find(&row.number))
        .set(row)
        .execute(conn)?;
    Ok(())
}
