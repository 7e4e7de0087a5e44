//! Virtual keys: who may call, which models, how often, and how much they may spend.
//!
//! - **Keys** come from the configuration file (`[keys.NAME]`, stored as SHA-256 hashes) and
//!   from `GATEWAY_API_KEYS` (named `key-1`, `key-2`…, no limits). A presented key is hashed
//!   and looked up; digests compare in constant time. A reload (`SIGHUP`) swaps the key ring
//!   (`ArcSwap`: no lock per request) and keeps every count, which is kept by name.
//! - **Admission** (`Access::admit`), before any upstream call, on every endpoint that spends:
//!   expiry (401), the allowed models (403 `permission_denied`), then the ledger
//!   (`ledger.rs`): budgets (429 `budget_exceeded`, `Retry-After` until the period ends),
//!   tokens and requests per minute (429 `rate_limited`).
//! - **Charging**: the call tells its [`Admission`] (an `llm::Payer`) what it cost when it
//!   ends; the spend goes to the key's and its team's day and month. An in-flight call may
//!   overshoot a budget by at most itself.
//! - **The ledger** is this process's (one replica) or Redis's (`REDIS_URL`: every replica
//!   shares one count). Redis unreachable: `fail_open` (default) admits unchecked and keeps the
//!   spend to write when Redis answers again; `fail_closed` refuses with 503. Either way it is
//!   counted (`llm_ledger_errors_total`) and logged at most every 30 s.
//!
//! Telemetry names keys and teams by their configured names only: never a secret or a hash.

mod ledger;
pub mod period;
mod report;
mod ring;
mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{AccessSettings, Budget, KeyDigest, RedisFailure, Secret, digest_of};
use crate::llm::{Charge, Payer};
use crate::redis_client::RedisHandle;
use crate::telemetry::Metrics;
use ledger::{BudgetCheck, Checked, Debit, LocalLedger, NANOS, Owner, RedisLedger, Verdict};
use period::{Now, Period};
pub use report::{AccessReport, KeyReport, PeriodSpend, TeamReport};
use ring::{KeyRing, OwnerState, Owners, budget_owners, periods, to_nanos};
pub use ring::{Team, VirtualKey};
use stats::AccessCollector;

/// How often charges Redis missed are tried again.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);
/// Ledger failures are logged at most this often (the metrics count each).
const LOG_EVERY_MS: u64 = 30_000;

/// Why a request was refused before any upstream call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No key, or not one of the configured keys.
    #[error("invalid or missing gateway API key: send `Authorization: Bearer <key>`")]
    InvalidKey,
    /// The key's `expires_at` has passed.
    #[error("this gateway key has expired")]
    Expired,
    /// The key may not use the model.
    #[error("this gateway key may not use the model {0:?}")]
    ModelNotAllowed(String),
    /// Over the key's requests per minute.
    #[error(
        "this gateway key is over its limit of {limit} requests per minute; retry in {retry_after} s"
    )]
    RateLimited {
        /// The limit.
        limit: u32,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Over the key's tokens per minute.
    #[error(
        "this gateway key is over its limit of {limit} tokens per minute; retry in {retry_after} s"
    )]
    TokensLimited {
        /// The limit.
        limit: u64,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A key's or its team's budget for the period is spent.
    #[error(
        "the {owner} budget of {budget_usd} USD per {period} is spent; it resets in {retry_after} s"
    )]
    BudgetExceeded {
        /// `key "name"` or `team "name"`.
        owner: String,
        /// `day` or `month`.
        period: &'static str,
        /// The budget.
        budget_usd: f64,
        /// Seconds until the period ends.
        retry_after: u64,
    },
    /// Redis cannot be asked and the policy is `fail_closed`.
    #[error("the key ledger is unavailable; retry shortly")]
    LedgerUnavailable,
}

impl Refusal {
    /// The `reason` label of `llm_key_rejections_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::InvalidKey => "invalid_key",
            Refusal::Expired => "expired",
            Refusal::ModelNotAllowed(_) => "model_not_allowed",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::TokensLimited { .. } => "tokens_limited",
            Refusal::BudgetExceeded { .. } => "budget_exceeded",
            Refusal::LedgerUnavailable => "ledger_unavailable",
        }
    }

    /// Seconds until a retry can succeed, when known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::RateLimited { retry_after, .. }
            | Refusal::TokensLimited { retry_after, .. }
            | Refusal::BudgetExceeded { retry_after, .. } => Some(*retry_after),
            Refusal::LedgerUnavailable => Some(1),
            _ => None,
        }
    }
}

/// Keys, their limits and their spend. Present when any key is configured, or a
/// configuration file is (whose reload may add keys).
pub struct Access {
    ring: Arc<ArcSwap<KeyRing>>,
    env_keys: Vec<Secret>,
    owners: Owners,
    /// Requests refused for an unknown key (`llm_key_rejections_total{key=""}`).
    unknown_keys: Arc<AtomicU64>,
    redis: Option<Arc<RedisLedger>>,
    metrics: Arc<Metrics>,
    last_error_log: AtomicU64,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("keys", &self.ring.load().keys.len())
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// The keys of `settings` and `env_keys`; the ledger in Redis when `redis` is given. Starts
    /// the task that writes charges Redis missed (it ends with the `Access`). Call inside a
    /// Tokio runtime.
    pub fn new(
        settings: &AccessSettings,
        env_keys: &[Secret],
        redis: Option<&RedisHandle>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let access = Arc::new(Self {
            ring: Arc::new(ArcSwap::from_pointee(KeyRing::default())),
            env_keys: env_keys.to_vec(),
            owners: Owners::default(),
            unknown_keys: Arc::default(),
            redis: redis
                .cloned()
                .map(|handle| Arc::new(RedisLedger::new(handle))),
            metrics,
            last_error_log: AtomicU64::new(0),
        });
        access.metrics.init_ledger();
        access
            .metrics
            .register_collector(Box::new(AccessCollector::new(
                Arc::downgrade(&access.ring),
                access.unknown_keys.clone(),
                access.redis.is_none(),
            )));
        access.install(settings);
        if access.redis.is_some() {
            tokio::spawn(reconcile(Arc::downgrade(&access)));
        }
        access
    }

    /// Whether a key must be presented (any key is configured).
    pub fn requires_key(&self) -> bool {
        !self.ring.load().keys.is_empty()
    }

    /// Swaps in a reloaded configuration's keys. Refused if it would remove every key: that
    /// would open the gateway to anyone (a restart can).
    pub fn reload(&self, settings: &AccessSettings) -> Result<(), String> {
        if settings.keys.is_empty() && self.env_keys.is_empty() && self.requires_key() {
            return Err(
                "the file has no [keys.NAME] left: a reload cannot turn gateway authentication off (restart to do so)".into(),
            );
        }
        self.install(settings);
        Ok(())
    }

    fn install(&self, settings: &AccessSettings) {
        let teams: Vec<Arc<Team>> = settings
            .teams
            .iter()
            .map(|team| {
                let name: Arc<str> = team.name.as_str().into();
                Arc::new(Team {
                    state: self.owners.state(&Owner::Team(name.clone())),
                    name,
                    budget: team.budget,
                })
            })
            .collect();
        let file_keys = settings.keys.iter().map(|key| {
            let team = key
                .team
                .as_ref()
                .and_then(|name| teams.iter().find(|t| *t.name == **name).cloned());
            (key.name.clone(), key.digest, team, key)
        });
        let mut keys = Vec::new();
        for (name, digest, team, key) in file_keys {
            keys.push(self.key(name, digest, team, Some(key)));
        }
        for (index, secret) in self.env_keys.iter().enumerate() {
            keys.push(self.key(
                format!("key-{}", index + 1),
                digest_of(secret.expose()),
                None,
                None,
            ));
        }
        let ring = KeyRing {
            by_digest: keys.iter().map(|k| (k.1, k.0.clone())).collect(),
            keys: keys.into_iter().map(|k| k.0).collect(),
            teams,
            on_redis_failure: settings.on_redis_failure,
            redis_timeout: settings.redis_timeout,
        };
        self.ring.store(Arc::new(ring));
        // What Redis says each budget has spent, off the start-up path.
        self.read_spent();
    }

    fn key(
        &self,
        name: String,
        digest: KeyDigest,
        team: Option<Arc<Team>>,
        settings: Option<&crate::config::KeySettings>,
    ) -> (Arc<VirtualKey>, KeyDigest) {
        let name: Arc<str> = name.into();
        let id = u64::from_le_bytes(digest.0[..8].try_into().unwrap_or_default());
        let key = VirtualKey {
            state: self.owners.state(&Owner::Key(name.clone())),
            name,
            id,
            team,
            expires_at: settings.and_then(|s| s.expires_at),
            models: settings.and_then(|s| s.models.clone()),
            requests_per_minute: settings.and_then(|s| s.requests_per_minute),
            tokens_per_minute: settings.and_then(|s| s.tokens_per_minute),
            budget: settings.map(|s| s.budget).unwrap_or_default(),
        };
        (Arc::new(key), digest)
    }

    /// The key `presented` names, if it is configured and has not expired. Refusals are
    /// counted (`llm_key_rejections_total`).
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Arc<VirtualKey>, Refusal> {
        let ring = self.ring.load();
        let found = presented.and_then(|secret| ring.by_digest.get(&digest_of(secret)));
        let Some(key) = found else {
            self.unknown_keys.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::InvalidKey);
        };
        if key
            .expires_at
            .is_some_and(|at| Now::current().micros / 1_000_000 >= at)
        {
            key.state.reject(Refusal::Expired.reason());
            return Err(Refusal::Expired);
        }
        Ok(key.clone())
    }

    /// Admits a call of `key` to `model` or says why not (counted). The admission is the call's
    /// `Payer`.
    pub async fn admit(
        self: &Arc<Self>,
        key: &Arc<VirtualKey>,
        model: &str,
    ) -> Result<Arc<Admission>, Refusal> {
        let refused = |refusal: Refusal| {
            key.state.reject(refusal.reason());
            Err(refusal)
        };
        if !key.allows(model) {
            return refused(Refusal::ModelNotAllowed(model.to_owned()));
        }
        let admission = Arc::new(Admission {
            access: self.clone(),
            key: key.clone(),
            held: Mutex::new(None),
            hold: AtomicBool::new(false),
        });
        if !key.is_metered() {
            return Ok(admission);
        }
        let now = Now::current();
        let budgets = key.budgets();
        let limits = ledger::Limits {
            key: &key.name,
            requests_per_minute: key.requests_per_minute,
            tokens_per_minute: key.tokens_per_minute,
            budgets: budgets.iter().map(|b| b.0.clone()).collect(),
        };
        let checked = match &self.redis {
            None => {
                let owners: Vec<_> = budgets.iter().map(|b| &b.1.counts).collect();
                LocalLedger::admit(&key.state.counts, &owners, &limits, &now)
            }
            Some(redis) => {
                let timeout = self.ring.load().redis_timeout;
                match redis.admit(&limits, &now, timeout).await {
                    Ok(checked) => checked,
                    Err(error) => {
                        self.ledger_failed("admit", &error.0);
                        return match self.ring.load().on_redis_failure {
                            RedisFailure::FailOpen => Ok(admission),
                            RedisFailure::FailClosed => refused(Refusal::LedgerUnavailable),
                        };
                    }
                }
            }
        };
        saw_spent(&budgets, &checked.spent, &now);
        match checked_refusal(key, &budgets, &checked, &now) {
            None => Ok(admission),
            Some(refusal) => refused(refusal),
        }
    }

    /// A ledger failure: counted, and logged at most every 30 s.
    fn ledger_failed(&self, operation: &'static str, error: &str) {
        self.metrics.record_ledger_error(operation);
        let now = Now::current().micros / 1000;
        let last = self.last_error_log.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOG_EVERY_MS
            && self
                .last_error_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let policy = match self.ring.load().on_redis_failure {
                RedisFailure::FailOpen => {
                    "fail_open: calls are admitted unchecked and their spend is kept until Redis answers"
                }
                RedisFailure::FailClosed => {
                    "fail_closed: calls with metered keys are refused (503)"
                }
            };
            tracing::warn!(
                operation,
                error,
                policy,
                "key ledger (Redis) unavailable (logged at most every 30 s; see llm_ledger_errors_total)"
            );
        }
    }

    /// Reads what Redis says each budget has spent this period, in a task of its own (one
    /// MGET, retried while the connection is still opening at start-up), for
    /// `llm_budget_remaining_usd` before the first call; each admission and charge updates it
    /// after. Without Redis the collector reads the counts themselves.
    fn read_spent(&self) {
        let Some(redis) = &self.redis else { return };
        let ring = self.ring.load_full();
        let now = Now::current();
        let mut wanted = Vec::new();
        let mut states = Vec::new();
        for (owner, state, budget) in budget_owners(&ring) {
            for (period, _) in periods(budget) {
                wanted.push((owner.clone(), period, now.id(period)));
                states.push(state.clone());
            }
        }
        if wanted.is_empty() {
            return;
        }
        let redis = redis.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                if let Ok(spent) = redis.spent(&wanted, Duration::from_secs(1)).await {
                    for (((_, period, id), state), nanos) in wanted.iter().zip(&states).zip(spent) {
                        state.saw(*period, *id, nanos);
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// Every key with its limits and this period's spend, for `GET /admin/keys`.
    pub async fn report(&self) -> Result<AccessReport, Refusal> {
        let ring = self.ring.load_full();
        let now = Now::current();
        let mut wanted = Vec::new();
        for key in &ring.keys {
            for period in [Period::Day, Period::Month] {
                wanted.push((Owner::Key(key.name.clone()), period, now.id(period)));
            }
        }
        for team in &ring.teams {
            for period in [Period::Day, Period::Month] {
                wanted.push((Owner::Team(team.name.clone()), period, now.id(period)));
            }
        }
        let spent = self.spent(&wanted).await?;
        let mut spent = spent.into_iter();
        let mut usage = |budget: &Budget| {
            let day = spent.next().unwrap_or(0) as f64 / NANOS;
            let month = spent.next().unwrap_or(0) as f64 / NANOS;
            PeriodSpend {
                spend_day_usd: day,
                spend_month_usd: month,
                remaining_day_usd: budget.daily_usd.map(|b| (b - day).max(0.0)),
                remaining_month_usd: budget.monthly_usd.map(|b| (b - month).max(0.0)),
            }
        };
        let keys = ring
            .keys
            .iter()
            .map(|key| KeyReport {
                name: key.name.to_string(),
                team: key.team.as_ref().map(|t| t.name.to_string()),
                expires_at: key.expires_at,
                models: key.models.clone(),
                requests_per_minute: key.requests_per_minute,
                tokens_per_minute: key.tokens_per_minute,
                daily_budget_usd: key.budget.daily_usd,
                monthly_budget_usd: key.budget.monthly_usd,
                spend: usage(&key.budget),
            })
            .collect();
        let teams = ring
            .teams
            .iter()
            .map(|team| TeamReport {
                name: team.name.to_string(),
                daily_budget_usd: team.budget.daily_usd,
                monthly_budget_usd: team.budget.monthly_usd,
                spend: usage(&team.budget),
            })
            .collect();
        Ok(AccessReport {
            day: period::label(Period::Day, now.day),
            month: period::label(Period::Month, now.month),
            keys,
            teams,
        })
    }

    /// A key's (of a team, if one is named), a team's, or, neither named, every key's spend in
    /// one period, for `GET /admin/spend`. `None`: no such key (in that team) or team. Without Redis only the current periods
    /// are known (earlier ones answer 0).
    pub async fn spend_of(
        &self,
        key: Option<&str>,
        team: Option<&str>,
        period: (Period, i64),
    ) -> Result<Option<f64>, Refusal> {
        let ring = self.ring.load_full();
        let owners: Vec<Owner> = match (key, team) {
            // A key, of that team if one is named.
            (Some(name), team) => {
                let Some(key) = ring.keys.iter().find(|k| {
                    &*k.name == name
                        && team.is_none_or(|t| k.team.as_ref().is_some_and(|kt| &*kt.name == t))
                }) else {
                    return Ok(None);
                };
                vec![Owner::Key(key.name.clone())]
            }
            (None, Some(name)) => {
                let Some(team) = ring.teams.iter().find(|t| &*t.name == name) else {
                    return Ok(None);
                };
                vec![Owner::Team(team.name.clone())]
            }
            // Every key's: the gateway's whole spend through keys.
            (None, None) => ring
                .keys
                .iter()
                .map(|k| Owner::Key(k.name.clone()))
                .collect(),
        };
        let wanted: Vec<_> = owners
            .into_iter()
            .map(|owner| (owner, period.0, period.1))
            .collect();
        let spent = self.spent(&wanted).await?;
        Ok(Some(spent.iter().sum::<i64>() as f64 / NANOS))
    }

    async fn spent(&self, wanted: &[(Owner, Period, i64)]) -> Result<Vec<i64>, Refusal> {
        match &self.redis {
            Some(redis) => redis
                .spent(wanted, Duration::from_secs(2))
                .await
                .map_err(|_| Refusal::LedgerUnavailable),
            None => {
                let now = Now::current();
                Ok(wanted
                    .iter()
                    .map(|(owner, period, id)| {
                        if *id == now.id(*period) {
                            let state = self.owners.state(owner);
                            let counts = state.counts.lock().unwrap_or_else(|e| e.into_inner());
                            counts.spent(*period, &now)
                        } else {
                            0
                        }
                    })
                    .collect())
            }
        }
    }
}

/// Notes what the ledger said each budget had spent (for `llm_budget_remaining_usd`).
fn saw_spent(budgets: &[(BudgetCheck, Arc<OwnerState>, f64)], spent: &[i64], now: &Now) {
    for ((check, state, _), nanos) in budgets.iter().zip(spent) {
        state.saw(check.period, now.id(check.period), *nanos);
    }
}

/// The refusal a ledger's verdict means.
fn checked_refusal(
    key: &VirtualKey,
    budgets: &[(BudgetCheck, Arc<OwnerState>, f64)],
    checked: &Checked,
    now: &Now,
) -> Option<Refusal> {
    match checked.verdict {
        Verdict::Admitted => None,
        Verdict::OverBudget(index) => {
            let (check, _, usd) = budgets.get(index)?;
            let owner = match &check.owner {
                Owner::Key(name) => format!("key {name:?}"),
                Owner::Team(name) => format!("team {name:?}"),
            };
            Some(Refusal::BudgetExceeded {
                owner,
                period: check.period.as_str(),
                budget_usd: *usd,
                retry_after: now.seconds_left(check.period),
            })
        }
        Verdict::TokensLimited(retry_after) => Some(Refusal::TokensLimited {
            limit: key.tokens_per_minute.unwrap_or(0),
            retry_after,
        }),
        Verdict::RateLimited(retry_after) => Some(Refusal::RateLimited {
            limit: key.requests_per_minute.unwrap_or(0),
            retry_after,
        }),
    }
}

/// Writes the charges Redis missed, every [`RECONCILE_EVERY`], while the `Access` lives.
async fn reconcile(access: Weak<Access>) {
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(access) = access.upgrade() else {
            return;
        };
        let Some(redis) = &access.redis else { return };
        let pending = redis.pending_nanos();
        if pending == 0 {
            continue;
        }
        if let Err(error) = redis.reconcile().await {
            access.ledger_failed("reconcile", &error.0);
        } else {
            tracing::info!(
                usd = pending as f64 / NANOS,
                "key ledger: spend counted while Redis was unreachable is written"
            );
        }
        access
            .metrics
            .record_ledger_pending(redis.pending_nanos() as f64 / NANOS);
    }
}

/// An admitted call: who pays, told the cost when the call ends.
pub struct Admission {
    access: Arc<Access>,
    /// The key that pays.
    pub key: Arc<VirtualKey>,
    /// A charge for Redis that the handler writes itself (`settle`), for a whole answer.
    held: Mutex<Option<Held>>,
    /// The handler will call `settle` (a whole answer): hold the charge for it.
    hold: AtomicBool,
}

/// A charge waiting to be written to Redis.
struct Held {
    debit: Debit,
    budgets: Vec<(BudgetCheck, Arc<OwnerState>, f64)>,
    now: Now,
}

impl Admission {
    /// Says that the handler will call [`Admission::settle`] once the call returns: a whole
    /// answer, whose charge is then written by the handler itself before the answer is
    /// released (so the client's next call sees its spend), rather than from a task of its own.
    pub fn will_settle(&self) {
        self.hold.store(true, Ordering::Relaxed);
    }

    /// Writes the charge held for the handler, if any (at most the ledger's deadline; on
    /// failure it is kept for reconciling).
    pub async fn settle(&self) {
        let held = self.take_held();
        if let Some(held) = held {
            let deadline = self.access.ring.load().redis_timeout;
            let _ = tokio::time::timeout(deadline, write(&self.access, &held)).await;
        }
    }

    fn take_held(&self) -> Option<Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for Admission {
    /// A held charge whose handler went away (the client left) is written all the same.
    fn drop(&mut self) {
        if let Some(held) = self.take_held()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let access = self.access.clone();
            runtime.spawn(async move { write(&access, &held).await });
        }
    }
}

/// Writes a charge to Redis; notes the totals, or counts the failure (the ledger keeps the
/// charge for reconciling).
async fn write(access: &Access, held: &Held) {
    let Some(redis) = &access.redis else { return };
    match redis.charge(&held.debit, &held.now).await {
        Ok(totals) => {
            // The totals come day, month for each owner in turn.
            let spent: Vec<i64> = held
                .budgets
                .iter()
                .map(|(check, _, _)| {
                    let owner = held
                        .debit
                        .owners
                        .iter()
                        .position(|o| *o == check.owner)
                        .unwrap_or(0);
                    let slot = owner * 2 + usize::from(check.period == Period::Month);
                    totals.get(slot).copied().unwrap_or(0)
                })
                .collect();
            saw_spent(&held.budgets, &spent, &held.now);
        }
        Err(error) => {
            access.ledger_failed("charge", &error.0);
            access
                .metrics
                .record_ledger_pending(redis.pending_nanos() as f64 / NANOS);
        }
    }
}

impl Payer for Admission {
    fn charge(&self, charge: Charge<'_>) {
        let key = &self.key;
        let access = &self.access;
        if charge.cost_usd > 0.0 {
            key.state
                .spend(charge.provider, charge.model, charge.cost_usd);
        }
        let nanos = to_nanos(charge.cost_usd);
        let token_us = key.tokens_per_minute.map_or(0, |limit| {
            (u128::from(charge.tokens) * u128::from(ledger::MINUTE_US) / u128::from(limit))
                .min(u128::from(u64::MAX)) as u64
        });
        if nanos == 0 && token_us == 0 {
            return;
        }
        let now = Now::current();
        let debit = Debit {
            key: key.name.clone(),
            owners: key.owners(),
            nanos,
            token_us,
        };
        if access.redis.is_none() {
            let mut owners = vec![&key.state.counts];
            owners.extend(key.team.as_ref().map(|t| &t.state.counts));
            LocalLedger::charge(&key.state.counts, &owners, &debit, &now);
            return;
        }
        let held = Held {
            debit,
            budgets: key.budgets(),
            now,
        };
        if self.hold.load(Ordering::Relaxed) {
            // The handler writes it before releasing the answer (`settle`).
            *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
            return;
        }
        // A stream's end: written from a task of its own, off the stream's path.
        let access = access.clone();
        tokio::spawn(async move { write(&access, &held).await });
    }
}
