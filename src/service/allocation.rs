//! Choosing X and E for a new binding. Runs inside the caller's write transaction, so two
//! requests can never pick the same free extension.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use rand::seq::IteratorRandom;

use rand::Rng;

use super::ServiceError;
use crate::db::models::VirtualNumber;
use crate::db::numbers::Room;
use crate::db::{bindings, numbers, DbConn};
use crate::domain::{
    mask_phone, AreaCode, ExtensionDigits, ExtensionNumber, NumberChoice, NumberStatus,
};

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

    /// The same rule, as the pool's query asks it of a number's counters.
    pub fn room(&self) -> Room {
        Room {
            max_live: i32::try_from(self.max_per_number).unwrap_or(i32::MAX),
            extensions: i32::try_from(self.digits.max_value()).unwrap_or(i32::MAX),
        }
    }
}

/// What the allocator decided.
#[derive(Clone, PartialEq, Eq)]
pub struct Allocation {
    pub virtual_num: Option<String>,
    pub extend_num: Option<String>,
    pub choice: NumberChoice,
}

crate::debug_masking!(Allocation { extend_num, choice } masking { virtual_num });

/// Picks X and E, in the caller's write transaction, with a bounded number of indexed look-ups
/// whatever the size of the pool and of the bindings table. `requested_x`/`requested_e` are
/// the client's choices; `exclude` holds extensions Huawei already said are taken.
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
        let Some(number) = numbers::lock(conn, x)? else {
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
        let live = number.live_bindings;
        if i64::from(live) >= i64::from(limits.max_per_number) {
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
            None => pick_extension(conn, limits, &number, quarantine_since, exclude)?.ok_or_else(
                || ServiceError::NoCapacity("no free extension left on this virtual number".into()),
            )?,
        };
        return Ok(Allocation {
            virtual_num: Some(x.to_owned()),
            extend_num: Some(e),
            choice: NumberChoice::Client,
        });
    }

    // From the pool: the least loaded number with room. Its counters can only overstate what
    // is taken (a quarantine that ended is counted until the expiry job clears it), so a number
    // without a free extension after all is a surprise: skip it, a few times at most.
    let mut full = Vec::new();
    for _ in 0..MAX_FULL_NUMBERS {
        let Some(number) =
            numbers::pick(conn, area_code.map(AreaCode::as_str), limits.room(), &full)?
        else {
            break;
        };
        if let Some(e) = pick_extension(conn, limits, &number, quarantine_since, exclude)? {
            return Ok(Allocation {
                virtual_num: Some(number.number),
                extend_num: Some(e),
                choice: NumberChoice::Pool,
            });
        }
        log::warn!(
            "virtual number {} has no free extension although its counters say it has room \
             ({} live, {} quarantined); trying another",
            mask_phone(&number.number),
            number.live_bindings,
            number.quarantined_extensions
        );
        full.push(number.number);
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

/// How many numbers whose counters turned out wrong one allocation skips before giving up.
const MAX_FULL_NUMBERS: usize = 3;

/// Random candidates tried before listing X's taken extensions.
const PROBES: usize = 32;

/// A random free extension of X: random, so extensions are not guessable from order of
/// creation and concurrent gateways rarely collide at Huawei.
///
/// Candidates are drawn at random and checked against the bindings index one at a time, which
/// costs the same whatever X's load; only when few are left (under a quarter by X's counters, or
/// after the probes all hit) are X's taken extensions listed, at most the extensions X has.
pub fn pick_extension(
    conn: &mut DbConn,
    limits: Limits,
    number: &VirtualNumber,
    quarantine_since: NaiveDateTime,
    exclude: &HashSet<String>,
) -> Result<Option<String>, ServiceError> {
    let space = limits.digits.max_value();
    let x = number.number.as_str();
    let held = i64::from(number.live_bindings) + i64::from(number.quarantined_extensions);
    let free = i64::from(space) - held - exclude.len() as i64;
    let mut rng = rand::rng();
    if free * 4 >= i64::from(space) {
        // One prepared look-up per candidate: with room for a quarter of the space or more,
        // the first is free three times in four.
        for _ in 0..PROBES {
            let e = ExtensionNumber::from_index(rng.random_range(1..=space), limits.digits);
            let e = e.as_str();
            if !exclude.contains(e)
                && !bindings::extension_unavailable(conn, x, e, quarantine_since)?
            {
                return Ok(Some(e.to_owned()));
            }
        }
    }
    let taken: HashSet<String> = bindings::unavailable_extensions(conn, x, quarantine_since)?
        .into_iter()
        .collect();
    Ok((1..=space)
        .map(|i| {
            ExtensionNumber::from_index(i, limits.digits)
                .as_str()
                .to_owned()
        })
        .filter(|e| !taken.contains(e) && !exclude.contains(e))
        .choose(&mut rng))
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
