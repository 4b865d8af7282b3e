//! Choosing X and E for a new binding. Runs inside the caller's write transaction, so two
//! requests can never pick the same free extension.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use rand::seq::IteratorRandom;

use super::ServiceError;
use crate::db::{bindings, numbers, DbConn};
use crate::domain::{AreaCode, ExtensionDigits, ExtensionNumber, NumberChoice, NumberStatus};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub digits: ExtensionDigits,
    pub max_per_number: u32,
}

impl Limits {
    /// How many more bindings X can take, given its live and quarantined extensions.
    pub fn free_extensions(&self, live: i64, quarantined: i64) -> i64 {
        let by_policy = i64::from(self.max_per_number) - live;
        let by_space = i64::from(self.digits.max_value()) - live - quarantined;
        by_policy.min(by_space).max(0)
    }
}

/// What the allocator decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub virtual_num: Option<String>,
    pub extend_num: Option<String>,
    pub choice: NumberChoice,
}

/// Picks X and E. `requested_x`/`requested_e` are the client's choices; `exclude` holds
/// extensions Huawei already said are taken during this request.
pub fn allocate(
    conn: &mut DbConn,
    limits: Limits,
    requested_x: Option<&str>,
    requested_e: Option<&ExtensionNumber>,
    area_code: Option<&AreaCode>,
    quarantine_since: NaiveDateTime,
    exclude: &HashSet<String>,
) -> Result<Allocation, ServiceError> {
    if let Some(x) = requested_x {
        let Some(number) = numbers::find(conn, x)? else {
            return Err(ServiceError::invalid(
                "virtual_num",
                "is not in the gateway's number pool (add it with POST /v1/numbers)",
            ));
        };
        if number.status() != NumberStatus::Normal {
            return Err(ServiceError::Conflict(format!(
                "virtual number is {} and takes no new bindings",
                number.status().as_str()
            )));
        }
        let live = bindings::count_live_on_number(conn, x)?;
        if live >= i64::from(limits.max_per_number) {
            return Err(ServiceError::NoCapacity(format!(
                "virtual number already has {live} live bindings (MAX_BINDINGS_PER_NUMBER is {})",
                limits.max_per_number
            )));
        }
        let e = match requested_e {
            Some(e) => {
                if bindings::extension_unavailable(conn, x, e.as_str(), quarantine_since)? {
                    return Err(ServiceError::Conflict(format!(
                        "extension {e} of this virtual number is in use or in quarantine"
                    )));
                }
                e.as_str().to_owned()
            }
            None => pick_extension(conn, limits.digits, x, quarantine_since, exclude)?.ok_or_else(
                || ServiceError::NoCapacity("no free extension left on this virtual number".into()),
            )?,
        };
        return Ok(Allocation {
            virtual_num: Some(x.to_owned()),
            extend_num: Some(e),
            choice: NumberChoice::Client,
        });
    }

    // From the pool: the allocatable number with the most free extensions.
    let candidates = numbers::allocatable(conn, area_code.map(AreaCode::as_str))?;
    let usage: std::collections::HashMap<String, (i64, i64)> =
        bindings::usage_by_number(conn, quarantine_since)?
            .into_iter()
            .map(|(n, l, q)| (n, (l, q)))
            .collect();
    let mut ranked: Vec<(i64, String)> = candidates
        .into_iter()
        .map(|n| {
            let (live, quarantined) = usage.get(&n).copied().unwrap_or((0, 0));
            (limits.free_extensions(live, quarantined), n)
        })
        .filter(|(free, _)| *free > 0)
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, x) in ranked {
        if let Some(e) = pick_extension(conn, limits.digits, &x, quarantine_since, exclude)? {
            return Ok(Allocation {
                virtual_num: Some(x),
                extend_num: Some(e),
                choice: NumberChoice::Pool,
            });
        }
    }
    match area_code {
        Some(area) if !numbers::any_in_area(conn, area.as_str())? => Ok(Allocation {
            virtual_num: None,
            extend_num: None,
            choice: NumberChoice::Huawei,
        }),
        Some(area) => Err(ServiceError::NoCapacity(format!(
            "no virtual number in area {} has a free extension",
            area.as_str()
        ))),
        None => Err(ServiceError::NoCapacity(
            "no virtual number in the pool has a free extension".into(),
        )),
    }
}

/// A random free extension of X: random, so extensions are not guessable from order of
/// creation and concurrent gateways rarely collide at Huawei.
pub fn pick_extension(
    conn: &mut DbConn,
    digits: ExtensionDigits,
    virtual_num: &str,
    quarantine_since: NaiveDateTime,
    exclude: &HashSet<String>,
) -> Result<Option<String>, ServiceError> {
    let taken: HashSet<String> =
        bindings::unavailable_extensions(conn, virtual_num, quarantine_since)?
            .into_iter()
            .collect();
    Ok((1..=digits.max_value())
        .map(|i| ExtensionNumber::from_index(i, digits).as_str().to_owned())
        .filter(|e| !taken.contains(e) && !exclude.contains(e))
        .choose(&mut rand::rng()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_extensions_respect_policy_and_space() {
        let l = Limits {
            digits: ExtensionDigits::new(1).unwrap(),
            max_per_number: 5,
        };
        assert_eq!(l.free_extensions(0, 0), 5);
        assert_eq!(l.free_extensions(3, 0), 2);
        assert_eq!(
            l.free_extensions(2, 6),
            1,
            "9 extensions, 8 used or quarantined"
        );
        assert_eq!(l.free_extensions(5, 0), 0);
        assert_eq!(l.free_extensions(4, 9), 0);
    }
}
