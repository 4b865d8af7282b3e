//! The pool of virtual numbers: add, list with usage, remove.

use super::allocation::Limits;
use super::bindings::Policy;
use super::ServiceError;
use crate::db::models::VirtualNumber;
use crate::db::{self, bindings, numbers, write_transaction, Db};
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
            .run(move |conn| {
                let now = db::now();
                let row = VirtualNumber {
                    number: number.as_str().to_owned(),
                    area_code: area_code.as_str().to_owned(),
                    status: NumberStatus::Normal.as_str().to_owned(),
                    status_cause: None,
                    created_at: now,
                    updated_at: now,
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
                Ok(NumberUsage {
                    number: row,
                    live_bindings: 0,
                    quarantined_extensions: 0,
                    free_extensions: limits.free_extensions(0, 0),
                })
            })
            .await
    }

    pub async fn list(&self) -> Result<Vec<NumberUsage>, ServiceError> {
        let policy = self.policy;
        self.db
            .run(move |conn| {
                let since = db::now()
                    - chrono::Duration::from_std(policy.quarantine)
                        .unwrap_or(chrono::Duration::MAX);
                let usage: std::collections::HashMap<String, (i64, i64)> =
                    bindings::usage_by_number(conn, since)?
                        .into_iter()
                        .map(|(n, l, q)| (n, (l, q)))
                        .collect();
                Ok(numbers::list(conn)?
                    .into_iter()
                    .map(|n| usage_of(n, &usage, policy.limits))
                    .collect())
            })
            .await
    }

    /// Removes a number from the pool; refused while it has live bindings.
    pub async fn remove(&self, number: String) -> Result<(), ServiceError> {
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    if numbers::find(conn, &number)?.is_none() {
                        return Err(ServiceError::NotFound(
                            "this number is not in the pool".into(),
                        ));
                    }
                    let live = bindings::count_live_on_number(conn, &number)?;
                    if live > 0 {
                        return Err(ServiceError::Conflict(format!(
                            "the number has {live} live binding(s); release them first"
                        )));
                    }
                    numbers::delete(conn, &number)?;
                    Ok(())
                })
            })
            .await
    }
}

fn usage_of(
    number: VirtualNumber,
    usage: &std::collections::HashMap<String, (i64, i64)>,
    limits: Limits,
) -> NumberUsage {
    let (live, quarantined) = usage.get(&number.number).copied().unwrap_or((0, 0));
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
