//! The key ring: one configuration's keys and teams (swapped whole on reload), and each key's
//! and team's state, kept by name so that a reload keeps it: its in-process ledger counts and
//! what its telemetry shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ledger::{BudgetCheck, Counts, NANOS, Owner};
use super::period::{Now, Period};
use crate::config::{Budget, KeyDigest, RedisFailure};

/// The `reason` values of `llm_key_rejections_total`, in [`OwnerState::rejections`]' order.
pub(super) const REASONS: [&str; 7] = [
    "invalid_key",
    "expired",
    "model_not_allowed",
    "rate_limited",
    "tokens_limited",
    "budget_exceeded",
    "ledger_unavailable",
];

/// One key's or team's state: its in-process ledger counts and its telemetry.
#[derive(Debug, Default)]
pub(super) struct OwnerState {
    /// The in-process ledger's counts (without Redis).
    pub counts: Mutex<Counts>,
    /// Spend by (provider, model label), US dollars (keys only).
    pub spend: Mutex<Vec<(Arc<str>, String, f64)>>,
    /// Refusals by reason (keys only).
    pub rejections: [AtomicU64; REASONS.len()],
    /// The spend last read from the ledger in each period: (period id, nano-dollars), day then
    /// month; `None` until read.
    seen: Mutex<[Option<(i64, i64)>; 2]>,
}

impl OwnerState {
    /// Counts a refusal (`reason`: one of [`REASONS`]).
    pub fn reject(&self, reason: &str) {
        let index = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejections[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds spend at `provider` for `model`.
    pub fn spend(&self, provider: &str, model: &str, usd: f64) {
        let mut spend = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        match spend
            .iter_mut()
            .find(|(p, m, _)| &**p == provider && m == model)
        {
            Some((_, _, total)) => *total += usd,
            None => spend.push((provider.into(), model.to_owned(), usd)),
        }
    }

    /// Notes what the ledger says this owner has spent in `period` (its id).
    pub fn saw(&self, period: Period, id: i64, nanos: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen[usize::from(period == Period::Month)] = Some((id, nanos));
    }

    /// The spend last seen in `period`, if it was seen in the current one (US dollars; a new
    /// period starts at zero).
    pub fn seen_in(&self, period: Period, now: &Now) -> f64 {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen[usize::from(period == Period::Month)] {
            Some((id, nanos)) if id == now.id(period) => nanos as f64 / NANOS,
            _ => 0.0,
        }
    }
}

/// Every owner's state by name, made on first use (when a configuration is installed).
#[derive(Debug, Default)]
pub(super) struct Owners(Mutex<HashMap<Owner, Arc<OwnerState>>>);

impl Owners {
    /// The state of `owner`.
    pub fn state(&self, owner: &Owner) -> Arc<OwnerState> {
        let mut owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        owners.entry(owner.clone()).or_default().clone()
    }
}

/// A team: a budget its keys' spend also counts against.
#[derive(Debug)]
pub struct Team {
    /// Its configured name.
    pub name: Arc<str>,
    /// Its budgets.
    pub budget: Budget,
    pub(super) state: Arc<OwnerState>,
}

/// A configured gateway key (never its secret or its hash).
#[derive(Debug)]
pub struct VirtualKey {
    /// Its configured name: the only identity telemetry shows.
    pub name: Arc<str>,
    /// A stable identity for the per-client rate limit (`RATE_LIMIT_PER_CLIENT`).
    pub id: u64,
    /// Its team.
    pub team: Option<Arc<Team>>,
    /// When it stops being accepted (seconds since the Unix epoch).
    pub expires_at: Option<u64>,
    /// The model names it may use (a trailing `*` is a prefix); `None`: any.
    pub models: Option<Vec<String>>,
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Its own budgets.
    pub budget: Budget,
    pub(super) state: Arc<OwnerState>,
}

impl VirtualKey {
    /// Whether it may ask for `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|models| {
            models
                .iter()
                .any(|allowed| match allowed.strip_suffix('*') {
                    Some(prefix) => model.starts_with(prefix),
                    None => model == allowed,
                })
        })
    }

    /// Whether anything about it is counted (a limit or a budget, its own or its team's).
    pub(super) fn is_metered(&self) -> bool {
        self.requests_per_minute.is_some()
            || self.tokens_per_minute.is_some()
            || has_budget(&self.budget)
            || self.team.as_ref().is_some_and(|t| has_budget(&t.budget))
    }

    /// The budgets that apply to it, key's first, then its team's.
    pub(super) fn budgets(&self) -> Vec<(BudgetCheck, Arc<OwnerState>, f64)> {
        let mut checks = Vec::new();
        let mut add = |owner: Owner, budget: &Budget, state: &Arc<OwnerState>| {
            for (period, usd) in periods(budget) {
                checks.push((
                    BudgetCheck {
                        owner: owner.clone(),
                        period,
                        nanos: to_nanos(usd),
                    },
                    state.clone(),
                    usd,
                ));
            }
        };
        add(Owner::Key(self.name.clone()), &self.budget, &self.state);
        if let Some(team) = &self.team {
            add(Owner::Team(team.name.clone()), &team.budget, &team.state);
        }
        checks
    }

    /// Who its spend counts against: itself, and its team.
    pub(super) fn owners(&self) -> Vec<Owner> {
        let mut owners = vec![Owner::Key(self.name.clone())];
        owners.extend(self.team.as_ref().map(|t| Owner::Team(t.name.clone())));
        owners
    }
}

pub(super) fn has_budget(budget: &Budget) -> bool {
    budget.daily_usd.is_some() || budget.monthly_usd.is_some()
}

pub(super) fn to_nanos(usd: f64) -> i64 {
    (usd * NANOS).round() as i64
}

/// One configuration's keys and teams.
#[derive(Debug, Default)]
pub(super) struct KeyRing {
    pub by_digest: HashMap<KeyDigest, Arc<VirtualKey>>,
    pub keys: Vec<Arc<VirtualKey>>,
    pub teams: Vec<Arc<Team>>,
    pub on_redis_failure: RedisFailure,
    pub redis_timeout: Duration,
}

/// Every budget owner of a ring with its budget.
pub(super) fn budget_owners(
    ring: &KeyRing,
) -> impl Iterator<Item = (Owner, &Arc<OwnerState>, &Budget)> {
    ring.keys
        .iter()
        .filter(|k| has_budget(&k.budget))
        .map(|k| (Owner::Key(k.name.clone()), &k.state, &k.budget))
        .chain(
            ring.teams
                .iter()
                .filter(|t| has_budget(&t.budget))
                .map(|t| (Owner::Team(t.name.clone()), &t.state, &t.budget)),
        )
}

/// A budget's periods with their amounts.
pub(super) fn periods(budget: &Budget) -> impl Iterator<Item = (Period, f64)> {
    [
        (Period::Day, budget.daily_usd),
        (Period::Month, budget.monthly_usd),
    ]
    .into_iter()
    .filter_map(|(period, usd)| Some((period, usd?)))
}
