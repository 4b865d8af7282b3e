//! The pool of virtual numbers: add, list with usage, remove.

use super::allocation::Limits;
use super::bindings::Policy;
use super::ServiceError;
use crate::db::models::VirtualNumber;
use crate::db::{self, numbers, Db};
use crate::domain::{AreaCode, NumberStatus, PhoneNumber};

/// A pooled number with its usage.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberUsage {
    pub number: VirtualNumber,
    pub live_bindings: i64,
    pub quarantined_extensions: i64,
    pub free_extensions: i64,
}

pub struct NumberService {
    db: Db,
    policy: Policy,
}

impl NumberService {
    pub fn new(db: Db, policy: Policy) -> Self {
        Self { db, policy }
    }

    pub async fn add(
        &self,
        number: PhoneNumber,
        area_code: AreaCode,
    ) -> Result<NumberUsage, ServiceError> {
        let limits = self.policy.limits;
        self.db
            .write(move |conn| {
                let now = db::now();
                let row = VirtualNumber {
                    number: number.as_str().to_owned(),
                    area_code: area_code.as_str().to_owned(),
                    status: NumberStatus::Normal.as_str().to_owned(),
                    status_cause: None,
                    created_at: now,
                    updated_at: now,
                    live_bindings: 0,
                    quarantined_extensions: 0,
                };
                match numbers::insert(conn, &row) {
                    Ok(()) => {}
                    Err(e) if e.is_unique_violation() => {
                        return Err(ServiceError::Conflict(
                            "this number is already in the pool".into(),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
                // Read back: bindings left on a number that was pooled before still count.
                let row = numbers::find(conn, &row.number)?.unwrap_or(row);
                Ok(usage_of(row, limits))
            })
            .await
    }

    /// Every pooled number with its usage, from the numbers' own counters.
    pub async fn list(&self) -> Result<Vec<NumberUsage>, ServiceError> {
        let limits = self.policy.limits;
        self.db
            .run(move |conn| {
                Ok(numbers::list(conn)?
                    .into_iter()
                    .map(|n| usage_of(n, limits))
                    .collect())
            })
            .await
    }

    /// Removes a number from the pool; refused while it has live bindings.
    pub async fn remove(&self, number: String) -> Result<(), ServiceError> {
        self.db
            .write(move |conn| {
                let Some(row) = numbers::lock(conn, &number)? else {
                    return Err(ServiceError::NotFound(
                        "this number is not in the pool".into(),
                    ));
                };
                if row.live_bindings > 0 {
                    return Err(ServiceError::Conflict(format!(
                        "the number has {} live binding(s); release them first",
                        row.live_bindings
                    )));
                }
                numbers::delete(conn, &number)?;
                Ok(())
            })
            .await
    }
}

fn usage_of(number: VirtualNumber, limits: Limits) -> NumberUsage {
    let (live, quarantined) = (
        i64::from(number.live_bindings),
        i64::from(number.quarantined_extensions),
    );
    let free = if number.status() == NumberStatus::Normal {
        limits.free_extensions(live, quarantined)
    } else {
        0
    };
    NumberUsage {
        number,
        live_bindings: live,
        quarantined_extensions: quarantined,
        free_extensions: free,
    }
}
