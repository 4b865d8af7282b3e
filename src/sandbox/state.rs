//! The sandbox's in-memory "Huawei": number inventory, bindings, recordings, queued faults and
//! counters, with the operations the Huawei routes perform on them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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

/// The live bindings with their indexes, so that no sandbox request costs time in proportion to
/// how many there are. The fields are private: every change goes through a method that keeps
/// all of them in step.
#[derive(Default)]
pub(crate) struct Bindings {
    by_id: HashMap<String, SandboxBinding>,
    /// X -> E -> subscription id. Ordered so that listing comes out by X then E and a number's
    /// used extensions (and their count) are at hand; an X without bindings has no entry.
    by_number: BTreeMap<String, BTreeMap<String, String>>,
    /// (deadline, subscription id) of every binding that expires, soonest first.
    by_expiry: BTreeSet<(DateTime<Utc>, String)>,
}

crate::debug_masking!(Bindings { by_id, by_expiry } masking { by_number });

impl Bindings {
    pub fn get(&self, id: &str) -> Option<&SandboxBinding> {
        self.by_id.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The subscription id of the binding on X+E.
    pub fn id_at(&self, virtual_num: &str, extend_num: &str) -> Option<&str> {
        self.by_number
            .get(virtual_num)?
            .get(extend_num)
            .map(String::as_str)
    }

    pub fn at(&self, virtual_num: &str, extend_num: &str) -> Option<&SandboxBinding> {
        self.id_at(virtual_num, extend_num)
            .and_then(|id| self.by_id.get(id))
    }

    /// How many bindings X holds (one per extension: an X+E holds at most one).
    pub fn count_on(&self, virtual_num: &str) -> usize {
        self.by_number.get(virtual_num).map_or(0, BTreeMap::len)
    }

    /// Whether X+E is free, as a test for many E of one X (X is looked up once).
    pub fn is_free_on<'a>(&'a self, virtual_num: &str) -> impl Fn(&str) -> bool + 'a {
        let used = self.by_number.get(virtual_num);
        move |e| !used.is_some_and(|used| used.contains_key(e))
    }

    /// The bindings on X, ordered by E.
    pub fn on_number<'a>(&'a self, virtual_num: &str) -> impl Iterator<Item = &'a SandboxBinding> {
        self.by_number
            .get(virtual_num)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.by_id.get(id))
    }

    /// All bindings, ordered by X then E.
    pub fn iter(&self) -> impl Iterator<Item = &SandboxBinding> {
        self.by_number
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.by_id.get(id))
    }

    /// Adds `b`, displacing (and returning) any binding already on its X+E, so that an X+E
    /// never holds two.
    pub fn insert(&mut self, b: SandboxBinding) -> Option<SandboxBinding> {
        // A reused subscription id replaces its binding wherever that was.
        self.remove(&b.subscription_id);
        let displaced = self
            .id_at(&b.virtual_num, &b.extend_num)
            .map(str::to_owned)
            .and_then(|id| self.remove(&id));
        self.by_number
            .entry(b.virtual_num.clone())
            .or_default()
            .insert(b.extend_num.clone(), b.subscription_id.clone());
        if let Some(at) = b.expires_at {
            self.by_expiry.insert((at, b.subscription_id.clone()));
        }
        self.by_id.insert(b.subscription_id.clone(), b);
        displaced
    }

    pub fn remove(&mut self, id: &str) -> Option<SandboxBinding> {
        let b = self.by_id.remove(id)?;
        if let Some(es) = self.by_number.get_mut(&b.virtual_num) {
            es.remove(&b.extend_num);
            if es.is_empty() {
                self.by_number.remove(&b.virtual_num);
            }
        }
        if let Some(at) = b.expires_at {
            self.by_expiry.remove(&(at, b.subscription_id.clone()));
        }
        Some(b)
    }

    /// Changes the binding `id` through `f`, re-indexing it afterwards (its deadline may move).
    pub fn update(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut SandboxBinding),
    ) -> Option<&SandboxBinding> {
        let mut b = self.remove(id)?;
        f(&mut b);
        let id = b.subscription_id.clone();
        self.insert(b);
        self.by_id.get(&id)
    }

    /// Removes and returns the binding with the earliest deadline if that is `now` or before.
    pub fn pop_expired(&mut self, now: DateTime<Utc>) -> Option<SandboxBinding> {
        let (at, id) = self.by_expiry.first()?;
        if *at > now {
            return None;
        }
        let id = id.clone();
        self.remove(&id)
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub numbers: BTreeMap<String, NumberEntry>,
    pub bindings: Bindings,
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

crate::debug_masking!(
    State {
        bindings, recordings, faults, stats, clock_offset, call_seq
    } masking { numbers }
);

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
        while let Some(b) = self.bindings.pop_expired(now) {
            log::info!(
                "sandbox: binding {} on X={} E={} expired",
                b.subscription_id,
                mask_phone(&b.virtual_num),
                b.extend_num
            );
        }
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
            .id_at(virtual_num, extend_num)
            .map(str::to_owned)
    }

    fn find_id(&self, sel: &Selector) -> Option<String> {
        match sel {
            Selector::Subscription(id) => self.bindings.contains(id).then(|| id.clone()),
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

    /// The lowest free extension on X, if any of the 10^digits - 1 slots is left.
    pub fn free_extension(
        &self,
        virtual_num: &str,
        digits: ExtensionDigits,
    ) -> Option<ExtensionNumber> {
        let is_free = self.bindings.is_free_on(virtual_num);
        (1..=digits.max_value())
            .map(|i| ExtensionNumber::from_index(i, digits))
            .find(|e| is_free(e.as_str()))
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
        candidates.sort_by_key(|x| self.bindings.count_on(x));
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
        self.bindings.insert(binding.clone());
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
        // Through `update`: a new deadline must move the binding in the expiry index.
        let b = self.bindings.update(&id, |b| {
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
        });
        b.cloned().ok_or_else(Refusal::not_found)
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

    fn binding(id: &str, x: &str, e: &str, expires_at: Option<DateTime<Utc>>) -> SandboxBinding {
        SandboxBinding {
            subscription_id: id.to_owned(),
            virtual_num: x.to_owned(),
            extend_num: e.to_owned(),
            bind_num: "+8613800000001".to_owned(),
            record_flag: None,
            record_hint_tone: None,
            callback_num: None,
            callback_tone: None,
            time_unit: None,
            bind_expired_time: None,
            callback_expired_time: None,
            user_data: None,
            display_num_mode: None,
            created_at: Utc::now(),
            expires_at,
        }
    }

    /// Every index agrees with `by_id`, and nothing else is in them.
    fn assert_consistent(b: &Bindings) {
        let mut on_numbers = 0;
        for (x, es) in &b.by_number {
            assert!(!es.is_empty(), "X={x} kept an empty entry");
            for (e, id) in es {
                let held = b.by_id.get(id).expect("indexed id is held");
                assert_eq!((&held.virtual_num, &held.extend_num), (x, e));
                on_numbers += 1;
            }
        }
        assert_eq!(on_numbers, b.by_id.len());
        let expiring: BTreeSet<_> = b
            .by_id
            .values()
            .filter_map(|h| h.expires_at.map(|at| (at, h.subscription_id.clone())))
            .collect();
        assert_eq!(b.by_expiry, expiring);
        for (id, h) in &b.by_id {
            assert_eq!(id, &h.subscription_id);
            assert_eq!(b.id_at(&h.virtual_num, &h.extend_num), Some(id.as_str()));
        }
    }

    const X1: &str = "+8613800000009";
    const X2: &str = "+8613800000019";

    #[test]
    fn insert_and_remove_keep_every_index() {
        let now = Utc::now();
        let mut b = Bindings::default();
        assert!(b.insert(binding("a", X1, "0002", None)).is_none());
        assert!(b.insert(binding("b", X1, "0001", Some(now))).is_none());
        assert!(b.insert(binding("c", X2, "0001", None)).is_none());
        assert_consistent(&b);
        assert_eq!(b.by_id.len(), 3);
        assert_eq!(b.id_at(X1, "0001"), Some("b"));
        assert_eq!(
            b.at(X2, "0001").map(|h| h.subscription_id.as_str()),
            Some("c")
        );
        assert_eq!(b.id_at(X2, "0002"), None);
        assert_eq!(
            (b.count_on(X1), b.count_on(X2), b.count_on("+861")),
            (2, 1, 0)
        );
        let order: Vec<_> = b.iter().map(|h| h.subscription_id.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"], "by X then E");
        assert!(!b.is_free_on(X1)("0001") && b.is_free_on(X1)("0003"));

        assert_eq!(b.remove("b").map(|h| h.extend_num), Some("0001".to_owned()));
        assert!(b.remove("b").is_none());
        assert_consistent(&b);
        assert_eq!(b.id_at(X1, "0001"), None);
        assert!(b.get("b").is_none() && !b.contains("b"));
        assert!(b.pop_expired(now).is_none(), "its deadline left with it");

        b.remove("c");
        assert_consistent(&b);
        assert_eq!(b.count_on(X2), 0);
        assert!(!b.by_number.contains_key(X2));
    }

    #[test]
    fn inserting_on_a_taken_x_e_displaces_the_binding_there() {
        let now = Utc::now();
        let mut b = Bindings::default();
        b.insert(binding("old", X1, "0001", Some(now)));
        let displaced = b.insert(binding("new", X1, "0001", None));
        assert_eq!(displaced.map(|h| h.subscription_id), Some("old".to_owned()));
        assert_consistent(&b);
        assert_eq!(b.by_id.len(), 1);
        assert_eq!(b.id_at(X1, "0001"), Some("new"));
        assert!(b.pop_expired(now).is_none(), "the old deadline is gone too");

        // The same subscription id again moves the binding rather than doubling it.
        b.insert(binding("new", X2, "0005", Some(now)));
        assert_consistent(&b);
        assert_eq!((b.by_id.len(), b.count_on(X1)), (1, 0));
        assert_eq!(b.id_at(X2, "0005"), Some("new"));
    }

    #[test]
    fn update_moves_the_deadline_in_the_expiry_index() {
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        let mut b = Bindings::default();
        b.insert(binding("a", X1, "0001", Some(now)));
        let updated = b.update("a", |h| h.expires_at = Some(later)).cloned();
        assert_eq!(updated.and_then(|h| h.expires_at), Some(later));
        assert_consistent(&b);
        assert!(
            b.pop_expired(now).is_none(),
            "no longer due at the old deadline"
        );
        assert!(b.update("missing", |h| h.expires_at = None).is_none());

        b.update("a", |h| h.expires_at = None);
        assert_consistent(&b);
        assert!(b.pop_expired(later + chrono::Duration::days(1)).is_none());
        assert_eq!(b.id_at(X1, "0001"), Some("a"));
    }

    #[test]
    fn purge_drops_only_what_is_due_and_from_every_index() {
        let now = Utc::now();
        let soon = now + chrono::Duration::minutes(1);
        let mut s = State::default();
        s.bindings.insert(binding("due", X1, "0001", Some(now)));
        s.bindings.insert(binding(
            "past",
            X1,
            "0002",
            Some(now - chrono::Duration::seconds(1)),
        ));
        s.bindings.insert(binding("soon", X1, "0003", Some(soon)));
        s.bindings.insert(binding("never", X2, "0001", None));
        s.purge_expired(now);
        assert_consistent(&s.bindings);
        let left: Vec<_> = s
            .bindings
            .iter()
            .map(|h| h.subscription_id.as_str())
            .collect();
        assert_eq!(left, ["soon", "never"]);
        assert_eq!(s.id_at(X1, "0001"), None);
        assert!(s.bindings.get("past").is_none());
        assert_eq!(s.bindings.count_on(X1), 1);

        s.purge_expired(soon);
        assert_consistent(&s.bindings);
        assert!(!s.bindings.by_number.contains_key(X1));
        assert_eq!(s.bindings.by_id.len(), 1);
    }

    #[test]
    fn free_extension_is_the_lowest_gap_on_that_number() {
        let digits = ExtensionDigits::new(1).expect("digits");
        let mut s = State::default();
        for (id, e) in [("1", "1"), ("2", "2"), ("3", "3")] {
            s.bindings.insert(binding(id, X1, e, None));
        }
        s.bindings.insert(binding("other", X2, "4", None));
        let free = |s: &State, x| s.free_extension(x, digits).map(|e| e.as_str().to_owned());
        assert_eq!(
            free(&s, X1).as_deref(),
            Some("4"),
            "X2's bindings do not count"
        );
        s.bindings.remove("2");
        assert_eq!(free(&s, X1).as_deref(), Some("2"));
        for i in 1..=9 {
            s.bindings
                .insert(binding(&format!("full{i}"), X2, &i.to_string(), None));
        }
        assert_eq!(free(&s, X2), None);
    }
}
