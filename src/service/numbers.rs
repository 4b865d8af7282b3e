//! The pool of virtual numbers: add (one, or many at once), list with usage, remove.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;

use super::allocation::Limits;
use super::bindings::Policy;
use super::ServiceError;
use crate::db::models::VirtualNumber;
use crate::db::{self, numbers, Db, DbError};
use crate::domain::{AreaCode, NumberStatus, PhoneNumber};

/// A pooled number with its usage.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberUsage {
    pub number: VirtualNumber,
    pub live_bindings: i64,
    pub quarantined_extensions: i64,
    pub free_extensions: i64,
}

/// A number to add to the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNumber {
    pub number: PhoneNumber,
    pub area_code: AreaCode,
}

/// Why [`NumberService::add_many`] added nothing. Positions are indexes into its input.
#[derive(Debug, thiserror::Error)]
pub enum AddManyError {
    /// Numbers given more than once: `(position, position of its first occurrence)`.
    #[error("{} number(s) given more than once", .0.len())]
    Repeated(Vec<(usize, usize)>),
    /// Positions of the numbers that are in the pool already.
    #[error("{} number(s) already in the pool", .0.len())]
    InPool(Vec<usize>),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<DbError> for AddManyError {
    fn from(e: DbError) -> Self {
        Self::Service(e.into())
    }
}

/// The numbers given more than once, as `(key, key of its first occurrence)` in input order.
/// The key is the caller's: a position in a request, a line of a file.
pub fn repeated<'a, K: Copy>(items: impl IntoIterator<Item = (K, &'a PhoneNumber)>) -> Vec<(K, K)> {
    let mut first = HashMap::new();
    let mut repeats = Vec::new();
    for (key, number) in items {
        match first.entry(number.as_str()) {
            Entry::Occupied(e) => repeats.push((key, *e.get())),
            Entry::Vacant(e) => {
                e.insert(key);
            }
        }
    }
    repeats
}

/// The row of a newly pooled number.
fn new_row(number: &PhoneNumber, area_code: &AreaCode, now: NaiveDateTime) -> VirtualNumber {
    VirtualNumber {
        number: number.as_str().to_owned(),
        area_code: area_code.as_str().to_owned(),
        status: NumberStatus::Normal.as_str().to_owned(),
        status_cause: None,
        created_at: now,
        updated_at: now,
        live_bindings: 0,
        quarantined_extensions: 0,
    }
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
                let row = new_row(&number, &area_code, db::now());
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

    /// Adds every number, or none: numbers given twice or already pooled are reported by
    /// position and nothing is added. One write transaction however many numbers there are.
    /// Returns the added numbers in input order.
    pub async fn add_many(&self, items: Vec<NewNumber>) -> Result<Vec<NumberUsage>, AddManyError> {
        let repeats = repeated(items.iter().map(|n| &n.number).enumerate());
        if !repeats.is_empty() {
            return Err(AddManyError::Repeated(repeats));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let limits = self.policy.limits;
        self.db
            .write(move |conn| {
                let wanted: Vec<&str> = items.iter().map(|n| n.number.as_str()).collect();
                let pooled: HashSet<String> = numbers::find_many(conn, &wanted)?
                    .into_iter()
                    .map(|n| n.number)
                    .collect();
                if !pooled.is_empty() {
                    return Err(AddManyError::InPool(
                        (0..wanted.len())
                            .filter(|&i| pooled.contains(wanted[i]))
                            .collect(),
                    ));
                }
                let now = db::now();
                let rows: Vec<VirtualNumber> = items
                    .iter()
                    .map(|n| new_row(&n.number, &n.area_code, now))
                    .collect();
                match numbers::insert_many(conn, &rows) {
                    Ok(()) => {}
                    // Another writer pooled one of them since the check (PostgreSQL runs
                    // writes in parallel).
                    Err(e) if e.is_unique_violation() => {
                        return Err(ServiceError::Conflict(
                            "a number of the batch was pooled meanwhile; nothing was added".into(),
                        )
                        .into())
                    }
                    Err(e) => return Err(e.into()),
                }
                // Read back: bindings left on a number that was pooled before still count.
                let mut stored: HashMap<String, VirtualNumber> = numbers::find_many(conn, &wanted)?
                    .into_iter()
                    .map(|n| (n.number.clone(), n))
                    .collect();
                Ok(rows
                    .into_iter()
                    .map(|row| usage_of(stored.remove(&row.number).unwrap_or(row), limits))
                    .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("a valid number")
    }

    #[test]
    fn repeated_names_each_repeat_and_its_first_occurrence() {
        let numbers = [
            n("+8617000000001"),
            n("+8617000000002"),
            n("+8617000000001"),
            n("+8617000000003"),
            n("+8617000000001"),
            n("+8617000000002"),
        ];
        assert_eq!(
            repeated(numbers.iter().enumerate()),
            vec![(2, 0), (4, 0), (5, 1)]
        );
        assert!(repeated(numbers[..2].iter().enumerate()).is_empty());
        // Keys are the caller's (here: line numbers of a file).
        let lines = [(3, &numbers[0]), (7, &numbers[2])];
        assert_eq!(repeated(lines), vec![(7, 3)]);
    }
}
