//! The sandbox's in-memory "Huawei": number inventory, bindings, recordings, queued faults and
//! counters, with the operations the Huawei routes perform on them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};

use super::validate::{Options, Refusal, Selector, Target, ValidBind, ValidModify};
use super::{Fault, Op, SandboxBinding, SandboxStats};
use crate::domain::{mask_phone, ExtensionDigits, ExtensionNumber};
use crate::huawei::wire;

/// A virtual number X owned by the sandbox's app.
#[derive(Debug, Clone)]
pub(crate) struct NumberEntry {
    pub area_code: String,
    pub normal: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Recording {
    pub record_domain: String,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub numbers: BTreeMap<String, NumberEntry>,
    /// By subscription id.
    pub bindings: HashMap<String, SandboxBinding>,
    /// By file name.
    pub recordings: HashMap<String, Recording>,
    pub faults: VecDeque<(Op, Fault)>,
    pub stats: SandboxStats,
    /// Added to the wall clock for expiry and recording age (see `Sandbox::advance_clock`).
    pub clock_offset: chrono::Duration,
    /// Last call number handed out by `Sandbox::play_call` (0 = none yet; starts at a random
    /// base so session ids of a restarted sandbox do not repeat).
    pub call_seq: u64,
}

/// When a binding made or modified at `now` expires: `amount` units of `time_unit` ("0" hours,
/// the default, or "1" minutes); absent or 0 never expires.
pub(crate) fn expiry(
    now: DateTime<Utc>,
    time_unit: Option<&str>,
    amount: Option<i64>,
) -> Option<DateTime<Utc>> {
    let amount = amount.filter(|a| *a > 0)?;
    let lifetime = if time_unit == Some(wire::TIME_UNIT_MINUTES) {
        chrono::Duration::try_minutes(amount)
    } else {
        chrono::Duration::try_hours(amount)
    }?;
    // An overflowing lifetime is as good as "never".
    now.checked_add_signed(lifetime)
}

impl State {
    /// Drops every binding whose lifetime has passed.
    pub fn purge_expired(&mut self, now: DateTime<Utc>) {
        self.bindings.retain(|_, b| match b.expires_at {
            Some(at) if at <= now => {
                log::info!(
                    "sandbox: binding {} on X={} E={} expired",
                    b.subscription_id,
                    mask_phone(&b.virtual_num),
                    b.extend_num
                );
                false
            }
            _ => true,
        });
    }

    pub fn count(&mut self, op: Op) {
        let s = &mut self.stats;
        match op {
            Op::Bind => s.bind_requests += 1,
            Op::Unbind => s.unbind_requests += 1,
            Op::Modify => s.modify_requests += 1,
            Op::Query => s.query_requests += 1,
            Op::Any => {}
        }
    }

    /// Removes and returns the first queued fault meant for `op` (or for any operation).
    pub fn take_fault(&mut self, op: Op) -> Option<Fault> {
        let idx = self
            .faults
            .iter()
            .position(|(o, _)| *o == Op::Any || *o == op)?;
        self.faults.remove(idx).map(|(_, f)| f)
    }

    pub fn id_at(&self, virtual_num: &str, extend_num: &str) -> Option<String> {
        self.bindings
            .values()
            .find(|b| b.virtual_num == virtual_num && b.extend_num == extend_num)
            .map(|b| b.subscription_id.clone())
    }

    fn find_id(&self, sel: &Selector) -> Option<String> {
        match sel {
            Selector::Subscription(id) => self.bindings.contains_key(id).then(|| id.clone()),
            Selector::Number {
                virtual_num,
                extend_num,
            } => self.id_at(virtual_num, extend_num),
        }
    }

    pub fn query(&self, sel: &Selector) -> Result<SandboxBinding, Refusal> {
        self.find_id(sel)
            .and_then(|id| self.bindings.get(&id))
            .cloned()
            .ok_or_else(Refusal::not_found)
    }

    pub fn unbind(&mut self, sel: &Selector) -> Result<SandboxBinding, Refusal> {
        self.find_id(sel)
            .and_then(|id| self.bindings.remove(&id))
            .ok_or_else(Refusal::not_found)
    }

    fn used_extensions(&self, virtual_num: &str) -> HashSet<&str> {
        self.bindings
            .values()
            .filter(|b| b.virtual_num == virtual_num)
            .map(|b| b.extend_num.as_str())
            .collect()
    }

    /// The lowest free extension on X, if any of the 10^digits - 1 slots is left.
    pub fn free_extension(
        &self,
        virtual_num: &str,
        digits: ExtensionDigits,
    ) -> Option<ExtensionNumber> {
        let used = self.used_extensions(virtual_num);
        (1..=digits.max_value())
            .map(|i| ExtensionNumber::from_index(i, digits))
            .find(|e| !used.contains(e.as_str()))
    }

    /// Picks X for an area-code bind: a normal number of that city (or, loose, of any city) with
    /// a free extension, preferring the least used.
    fn pick_in_area(
        &self,
        area_code: &str,
        loose: bool,
        digits: ExtensionDigits,
    ) -> Result<(String, ExtensionNumber), Refusal> {
        let usable = |in_area: bool| {
            self.numbers
                .iter()
                .filter(move |(_, n)| n.normal && (!in_area || n.area_code == area_code))
                .map(|(x, _)| x.as_str())
                .collect::<Vec<_>>()
        };
        let mut candidates = usable(true);
        if candidates.is_empty() && loose {
            candidates = usable(false);
        }
        if candidates.is_empty() {
            return Err(Refusal::no_number_in_area());
        }
        candidates.sort_by_key(|x| self.used_extensions(x).len());
        candidates
            .into_iter()
            .find_map(|x| self.free_extension(x, digits).map(|e| (x.to_owned(), e)))
            .ok_or_else(Refusal::no_idle_extension)
    }

    /// Adds X to the inventory (area unknown) if it is not there yet.
    pub fn adopt_number(&mut self, number: &str) {
        self.numbers
            .entry(number.to_owned())
            .or_insert_with(|| NumberEntry {
                area_code: String::new(),
                normal: true,
            });
    }

    pub fn bind(
        &mut self,
        v: ValidBind,
        digits: ExtensionDigits,
        now: DateTime<Utc>,
    ) -> Result<SandboxBinding, Refusal> {
        let (virtual_num, extend_num) = match v.target {
            Target::Number {
                virtual_num,
                extend_num,
            } => {
                let x = virtual_num.as_str();
                let entry = self
                    .numbers
                    .get(x)
                    .ok_or_else(Refusal::number_not_applied)?;
                if !entry.normal {
                    return Err(Refusal::number_status());
                }
                let e = match extend_num {
                    Some(e) if self.id_at(x, e.as_str()).is_some() => {
                        return Err(Refusal::no_idle_extension())
                    }
                    Some(e) => e,
                    None => self
                        .free_extension(x, digits)
                        .ok_or_else(Refusal::no_idle_extension)?,
                };
                (x.to_owned(), e)
            }
            Target::Area { area_code, loose } => {
                self.pick_in_area(area_code.as_str(), loose, digits)?
            }
        };
        let o = v.options;
        let binding = SandboxBinding {
            subscription_id: uuid::Uuid::new_v4().to_string(),
            virtual_num,
            extend_num: extend_num.as_str().to_owned(),
            bind_num: v.bind_num.as_str().to_owned(),
            expires_at: expiry(now, o.time_unit.as_deref(), o.bind_expired_time),
            record_flag: o.record_flag,
            record_hint_tone: o.record_hint_tone,
            callback_num: o.callback_num,
            callback_tone: o.callback_tone,
            time_unit: o.time_unit,
            bind_expired_time: o.bind_expired_time,
            callback_expired_time: o.callback_expired_time,
            user_data: v.user_data,
            display_num_mode: o.display_num_mode,
            created_at: now,
        };
        self.bindings
            .insert(binding.subscription_id.clone(), binding.clone());
        Ok(binding)
    }

    /// Applies the fields present. `timeUnit` and `bindExpiredTime` keep reporting their
    /// bind-time values when the bind carried them (Huawei's documented query quirk), but a new
    /// `bindExpiredTime` always restarts the lifetime from `now`.
    pub fn modify(
        &mut self,
        m: ValidModify,
        now: DateTime<Utc>,
    ) -> Result<SandboxBinding, Refusal> {
        let id = self.find_id(&m.selector).ok_or_else(Refusal::not_found)?;
        let b = self.bindings.get_mut(&id).ok_or_else(Refusal::not_found)?;
        let Options {
            display_num_mode,
            record_flag,
            record_hint_tone,
            callback_tone,
            callback_num,
            time_unit,
            bind_expired_time,
            callback_expired_time,
        } = m.options;
        if let Some(v) = display_num_mode {
            b.display_num_mode = Some(v);
        }
        if let Some(v) = record_flag {
            b.record_flag = Some(v);
        }
        if let Some(v) = record_hint_tone {
            b.record_hint_tone = Some(v);
        }
        if let Some(v) = callback_num {
            b.callback_num = Some(v);
            b.callback_tone = None;
        }
        if let Some(v) = callback_tone {
            b.callback_tone = Some(v);
            b.callback_num = None;
        }
        if let Some(v) = callback_expired_time {
            b.callback_expired_time = Some(v);
        }
        if let Some(amount) = bind_expired_time {
            let unit = time_unit.as_deref().or(b.time_unit.as_deref());
            b.expires_at = expiry(now, unit, Some(amount));
            if b.bind_expired_time.is_none() {
                b.bind_expired_time = Some(amount);
            }
        }
        if b.time_unit.is_none() {
            b.time_unit = time_unit;
        }
        Ok(b.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_the_time_unit() {
        let now = Utc::now();
        assert_eq!(
            expiry(now, Some("1"), Some(30)),
            Some(now + chrono::Duration::minutes(30))
        );
        assert_eq!(
            expiry(now, Some("0"), Some(2)),
            Some(now + chrono::Duration::hours(2))
        );
        assert_eq!(
            expiry(now, None, Some(2)),
            Some(now + chrono::Duration::hours(2)),
            "hours by default"
        );
        assert_eq!(expiry(now, Some("1"), Some(0)), None);
        assert_eq!(expiry(now, Some("1"), None), None);
        assert_eq!(expiry(now, Some("0"), Some(i64::MAX)), None);
    }

    #[test]
    fn faults_are_taken_in_order_for_matching_operations() {
        let mut s = State::default();
        s.faults.push_back((Op::Query, Fault::Drop));
        s.faults
            .push_back((Op::Any, Fault::HangBeforeApply(std::time::Duration::ZERO)));
        s.faults.push_back((Op::Bind, Fault::Drop));
        assert_eq!(
            s.take_fault(Op::Bind),
            Some(Fault::HangBeforeApply(std::time::Duration::ZERO))
        );
        assert_eq!(s.take_fault(Op::Bind), Some(Fault::Drop));
        assert_eq!(s.take_fault(Op::Bind), None);
        assert_eq!(s.take_fault(Op::Query), Some(Fault::Drop));
    }
}
