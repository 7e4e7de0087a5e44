//! Where keys' limits and spend are counted: in this process (one replica) or in Redis (every
//! replica shares one count). Both apply the same rules, in the same order:
//!
//! 1. **Budgets** (key and team, day and month): refused while the period's spend has reached
//!    the budget. Spend is integer nano-dollars, so sums are exact.
//! 2. **Tokens per minute**: a token bucket kept as a GCRA "theoretical arrival time": each
//!    call's tokens push it forward by `tokens × 60 s / limit` once the call ends; a call is
//!    refused while it is more than a minute ahead (the bucket is in debt).
//! 3. **Requests per minute**: GCRA with a burst of the whole minute's allowance, so of any
//!    burst exactly `limit` requests pass, and after that one every `60 s / limit`.
//!
//! Only an admitted request moves the request limit; refusals change nothing. In Redis each
//! admission is one Lua script (one round trip, atomic: no read-modify-write race between
//! replicas) on Redis's own clock, and each charge another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;

use super::period::{Now, Period, label};
use crate::redis_client::RedisHandle;

/// A minute, in microseconds: the window of both rate limits.
pub(super) const MINUTE_US: u64 = 60_000_000;
/// Nano-dollars per dollar.
pub(super) const NANOS: f64 = 1e9;
/// How long a day's and a month's spend stay in Redis (for the admin API's history).
const DAY_TTL_SECS: u64 = 35 * 86_400;
const MONTH_TTL_SECS: u64 = 400 * 86_400;
/// The deadline of a charge written from a task of its own (off the request's path).
const CHARGE_TIMEOUT: Duration = Duration::from_secs(1);

/// A budget to check: who owns it, which period, how much (nano-dollars).
#[derive(Debug, Clone)]
pub(super) struct BudgetCheck {
    pub owner: Owner,
    pub period: Period,
    pub nanos: i64,
}

/// Whose spend: a key's or a team's, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Owner {
    Key(Arc<str>),
    Team(Arc<str>),
}

impl Owner {
    /// The Redis key of its spend in one period.
    pub fn redis_key(&self, period: Period, id: i64) -> String {
        let (kind, name) = match self {
            Owner::Key(name) => ("key", name),
            Owner::Team(name) => ("team", name),
        };
        format!(
            "llmobs:v1:spend:{kind}:{name}:{}:{}",
            period.as_str(),
            label(period, id)
        )
    }
}

/// What an admission asks: a key's limits and the budgets that apply to it.
#[derive(Debug)]
pub(super) struct Limits<'a> {
    pub key: &'a str,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub budgets: Vec<BudgetCheck>,
}

/// Why a ledger refused.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    Admitted,
    /// A budget is spent: the one at this index of `Limits::budgets`.
    OverBudget(usize),
    /// Over the token limit; seconds to wait.
    TokensLimited(u64),
    /// Over the request limit; seconds to wait.
    RateLimited(u64),
}

/// A ledger answer: the verdict, and what each budget has spent (in `Limits::budgets`' order).
#[derive(Debug)]
pub(super) struct Checked {
    pub verdict: Verdict,
    pub spent: Vec<i64>,
}

/// One call's charge: its cost to each budget owner and its tokens to the key's bucket.
#[derive(Debug, Clone)]
pub(super) struct Debit {
    pub key: Arc<str>,
    pub owners: Vec<Owner>,
    pub nanos: i64,
    /// `tokens × 60 s / limit`, in µs; 0 without a token limit.
    pub token_us: u64,
}

/// Whole seconds (at least 1) in `micros`.
fn ceil_seconds(micros: u64) -> u64 {
    micros.div_ceil(1_000_000).max(1)
}

/// The request limit's emission interval and burst tolerance (µs): exactly `limit` requests of
/// a burst pass.
fn gcra(limit: u32) -> (u64, u64) {
    let interval = MINUTE_US / u64::from(limit.max(1));
    (interval, interval * u64::from(limit.max(1)))
}

// ------------------------------------------------------------------ in this process

/// One owner's counts in this process: spend in the current day and month, and the two rate
/// limits' arrival times (a key's only).
#[derive(Debug, Default)]
pub(super) struct Counts {
    day: (i64, i64),
    month: (i64, i64),
    request_tat: u64,
    token_tat: u64,
}

impl Counts {
    /// This period's spend (a new period starts at zero).
    pub fn spent(&self, period: Period, now: &Now) -> i64 {
        let (id, nanos) = match period {
            Period::Day => self.day,
            Period::Month => self.month,
        };
        if id == now.id(period) { nanos } else { 0 }
    }

    fn add(&mut self, nanos: i64, now: &Now) {
        for (period, slot) in [
            (Period::Day, &mut self.day),
            (Period::Month, &mut self.month),
        ] {
            let id = now.id(period);
            if slot.0 != id {
                *slot = (id, 0);
            }
            slot.1 += nanos;
        }
    }
}

/// The ledger in this process: each owner's counts behind its own lock (no lock shared by
/// keys), kept by name in `stats::Owners` so that a reloaded configuration keeps them.
#[derive(Debug)]
pub(super) struct LocalLedger;

impl LocalLedger {
    /// Checks `limits` against `counts` (the key's first, then each budget owner's) and, if
    /// admitted, takes the request from the key's request limit.
    pub fn admit(
        key: &Mutex<Counts>,
        owners: &[&Mutex<Counts>],
        limits: &Limits<'_>,
        now: &Now,
    ) -> Checked {
        let spent: Vec<i64> = limits
            .budgets
            .iter()
            .zip(owners)
            .map(|(budget, counts)| lock(counts).spent(budget.period, now))
            .collect();
        let mut checked = Checked {
            verdict: Verdict::Admitted,
            spent,
        };
        if let Some(index) =
            (0..limits.budgets.len()).find(|&i| checked.spent[i] >= limits.budgets[i].nanos)
        {
            checked.verdict = Verdict::OverBudget(index);
            return checked;
        }
        let mut key = lock(key);
        if limits.tokens_per_minute.is_some() && key.token_tat > now.micros + MINUTE_US {
            checked.verdict =
                Verdict::TokensLimited(ceil_seconds(key.token_tat - now.micros - MINUTE_US));
            return checked;
        }
        if let Some(limit) = limits.requests_per_minute {
            let (interval, tolerance) = gcra(limit);
            let tat = key.request_tat.max(now.micros) + interval;
            if tat - now.micros > tolerance {
                checked.verdict = Verdict::RateLimited(ceil_seconds(tat - now.micros - tolerance));
                return checked;
            }
            key.request_tat = tat;
        }
        checked
    }

    /// Adds a call's cost to each owner and its tokens to the key's bucket.
    pub fn charge(key: &Mutex<Counts>, owners: &[&Mutex<Counts>], debit: &Debit, now: &Now) {
        for counts in owners {
            lock(counts).add(debit.nanos, now);
        }
        if debit.token_us > 0 {
            let mut key = lock(key);
            key.token_tat = key.token_tat.max(now.micros) + debit.token_us;
        }
    }
}

fn lock(counts: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------------ in Redis

/// The admission, atomic on Redis's clock. KEYS: the key's request and token arrival times,
/// then one spend key per budget. ARGV: the request interval and tolerance (µs; 0: no limit),
/// whether tokens are limited, then one budget (nano-dollars) per spend key.
/// Returns {verdict (0 admitted, 1 budget, 2 tokens, 3 requests), wait µs, budget index,
/// spent…}.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local reply = {0, 0, 0}
for i = 3, #KEYS do
  reply[i + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
for i = 3, #KEYS do
  if reply[i + 1] >= tonumber(ARGV[i + 1]) then
    reply[1] = 1
    reply[3] = i - 3
    return reply
  end
end
if ARGV[3] == '1' then
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat > now + 60000000 then
    reply[1] = 2
    reply[2] = tat - now - 60000000
    return reply
  end
end
local interval = tonumber(ARGV[1])
if interval > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + interval
  if tat - now > tonumber(ARGV[2]) then
    reply[1] = 3
    reply[2] = tat - now - tonumber(ARGV[2])
    return reply
  end
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return reply
";

/// A charge. KEYS: the key's token arrival time, then each spend key. ARGV: nano-dollars, the
/// token cost (µs; 0: none), then each spend key's TTL (s). Returns each spend key's total.
const CHARGE: &str = r"
local totals = {}
for i = 2, #KEYS do
  totals[i - 1] = redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[i + 1])
end
local cost = tonumber(ARGV[2])
if cost > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + cost
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return totals
";

/// Why Redis could not answer (never the library's text, which could carry the URL).
#[derive(Debug)]
pub(super) struct Unavailable(pub String);

/// The shared ledger: the scripts over the gateway's one Redis connection, and the charges
/// that could not be written yet.
pub(super) struct RedisLedger {
    handle: RedisHandle,
    admit: Script,
    charge: Script,
    /// Charges Redis did not take (it was down), by their spend keys: written when it answers
    /// again. Bounded: one entry per set of spend keys (keys × periods in the configuration).
    pending: Mutex<HashMap<Vec<String>, i64>>,
}

impl RedisLedger {
    pub fn new(handle: RedisHandle) -> Self {
        Self {
            handle,
            admit: Script::new(ADMIT),
            charge: Script::new(CHARGE),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Runs the admission script within `deadline`.
    pub async fn admit(
        &self,
        limits: &Limits<'_>,
        now: &Now,
        deadline: Duration,
    ) -> Result<Checked, Unavailable> {
        let mut connection = self
            .handle
            .usable()
            .ok_or_else(|| Unavailable("not connected".into()))?;
        let (interval, tolerance) = limits.requests_per_minute.map_or((0, 0), gcra);
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(format!("llmobs:v1:rate:{}", limits.key))
            .key(format!("llmobs:v1:tokens:{}", limits.key))
            .arg(interval)
            .arg(tolerance)
            .arg(u8::from(limits.tokens_per_minute.is_some()));
        for budget in &limits.budgets {
            invocation.key(budget.owner.redis_key(budget.period, now.id(budget.period)));
        }
        for budget in &limits.budgets {
            invocation.arg(budget.nanos);
        }
        let reply: Vec<i64> = self
            .within(deadline, invocation.invoke_async(&mut connection))
            .await?;
        let [verdict, wait, index, ..] = reply[..] else {
            return Err(Unavailable("unexpected reply".into()));
        };
        let wait = ceil_seconds(u64::try_from(wait).unwrap_or(0));
        let verdict = match verdict {
            0 => Verdict::Admitted,
            1 => Verdict::OverBudget(usize::try_from(index).unwrap_or(0)),
            2 => Verdict::TokensLimited(wait),
            _ => Verdict::RateLimited(wait),
        };
        Ok(Checked {
            verdict,
            spent: reply[3..].to_vec(),
        })
    }

    /// Writes a charge; on failure keeps it for [`RedisLedger::reconcile`]. Returns each
    /// owner's spend in `now`'s periods after it (day and month for each owner, in order).
    pub async fn charge(&self, debit: &Debit, now: &Now) -> Result<Vec<i64>, Unavailable> {
        let keys: Vec<String> = debit
            .owners
            .iter()
            .flat_map(|owner| [Period::Day, Period::Month].map(|p| owner.redis_key(p, now.id(p))))
            .collect();
        let result = self
            .write(&debit.key, &keys, debit.nanos, debit.token_us)
            .await;
        if result.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            *pending.entry(keys).or_default() += debit.nanos;
        }
        result
    }

    async fn write(
        &self,
        key: &str,
        spend_keys: &[String],
        nanos: i64,
        token_us: u64,
    ) -> Result<Vec<i64>, Unavailable> {
        let mut connection = self
            .handle
            .usable()
            .ok_or_else(|| Unavailable("not connected".into()))?;
        let mut invocation = self.charge.prepare_invoke();
        invocation
            .key(format!("llmobs:v1:tokens:{key}"))
            .arg(nanos)
            .arg(token_us);
        for spend_key in spend_keys {
            invocation.key(spend_key);
        }
        for spend_key in spend_keys {
            invocation.arg(if spend_key.contains(":day:") {
                DAY_TTL_SECS
            } else {
                MONTH_TTL_SECS
            });
        }
        self.within(CHARGE_TIMEOUT, invocation.invoke_async(&mut connection))
            .await
    }

    /// Spend not yet written, in nano-dollars.
    pub fn pending_nanos(&self) -> i64 {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.values().sum()
    }

    /// Writes the charges Redis missed; those it misses again stay for the next try.
    pub async fn reconcile(&self) -> Result<(), Unavailable> {
        let waiting: Vec<(Vec<String>, i64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        let mut failure = None;
        for (keys, nanos) in waiting {
            if failure.is_none() {
                match self.write("", &keys, nanos, 0).await {
                    Ok(_) => continue,
                    Err(error) => failure = Some(error),
                }
            }
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            *pending.entry(keys).or_default() += nanos;
        }
        failure.map_or(Ok(()), Err)
    }

    /// Each owner's spend in `(period, id)`: one `MGET`.
    pub async fn spent(
        &self,
        owners: &[(Owner, Period, i64)],
        deadline: Duration,
    ) -> Result<Vec<i64>, Unavailable> {
        if owners.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self
            .handle
            .usable()
            .ok_or_else(|| Unavailable("not connected".into()))?;
        let mut command = redis::cmd("MGET");
        for (owner, period, id) in owners {
            command.arg(owner.redis_key(*period, *id));
        }
        let values: Vec<Option<i64>> = self
            .within(deadline, command.query_async(&mut connection))
            .await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Runs a Redis call under `deadline`; a failure makes Redis rest (`RedisHandle::failed`).
    async fn within<T>(
        &self,
        deadline: Duration,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        let outcome = match tokio::time::timeout(deadline, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => crate::redis_client::describe(&error),
            Err(_) => format!("no answer within {} ms", deadline.as_millis()),
        };
        self.handle.failed();
        Err(Unavailable(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_796_299_200_000_000; // 2026-12-03T12:00:00Z

    fn limits(rpm: Option<u32>, tpm: Option<u64>, budgets: Vec<BudgetCheck>) -> Limits<'static> {
        Limits {
            key: "k",
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            budgets,
        }
    }

    #[test]
    fn a_burst_passes_exactly_the_limit_then_one_per_interval() {
        let key = Mutex::new(Counts::default());
        let limits = limits(Some(6), None, vec![]);
        let at = |us: u64| LocalLedger::admit(&key, &[], &limits, &Now::at(us)).verdict;
        let passed = (0..20).filter(|_| at(T0) == Verdict::Admitted).count();
        assert_eq!(passed, 6);
        assert_eq!(at(T0), Verdict::RateLimited(10), "one more in 60 s / 6");
        assert_eq!(at(T0 + 9_999_999), Verdict::RateLimited(1));
        assert_eq!(at(T0 + 10_000_000), Verdict::Admitted);
        assert_eq!(at(T0 + 10_000_000), Verdict::RateLimited(10));
    }

    #[test]
    fn budgets_refuse_once_reached_and_a_new_day_starts_at_zero() {
        let key = Mutex::new(Counts::default());
        let owner = Owner::Key("k".into());
        let budget = |period, nanos| BudgetCheck {
            owner: owner.clone(),
            period,
            nanos,
        };
        let limits = limits(
            None,
            None,
            vec![budget(Period::Day, 100), budget(Period::Month, 150)],
        );
        let owners = [&key, &key];
        let now = Now::at(T0);
        let debit = Debit {
            key: "k".into(),
            owners: vec![owner.clone()],
            nanos: 60,
            token_us: 0,
        };
        let admit = |now: &Now| LocalLedger::admit(&key, &owners, &limits, now);
        assert_eq!(admit(&now).verdict, Verdict::Admitted);
        LocalLedger::charge(&key, &[&key], &debit, &now);
        assert_eq!(admit(&now).verdict, Verdict::Admitted, "60 < 100");
        LocalLedger::charge(&key, &[&key], &debit, &now);
        let checked = admit(&now);
        assert_eq!(
            (checked.verdict, checked.spent),
            (Verdict::OverBudget(0), vec![120, 120])
        );
        // The next day: the day's budget is fresh, the month's (120 of 150) still counts.
        let tomorrow = Now::at(T0 + 86_400_000_000);
        assert_eq!(admit(&tomorrow).verdict, Verdict::Admitted);
        LocalLedger::charge(&key, &[&key], &debit, &tomorrow);
        assert_eq!(admit(&tomorrow).verdict, Verdict::OverBudget(1));
    }

    #[test]
    fn tokens_refuse_while_more_than_a_minute_is_owed() {
        let key = Mutex::new(Counts::default());
        let limits = limits(None, Some(100), vec![]);
        let now = Now::at(T0);
        // 150 tokens at 100 a minute: 90 s owed, 30 s past the minute's allowance.
        let debit = Debit {
            key: "k".into(),
            owners: vec![],
            nanos: 0,
            token_us: 150 * MINUTE_US / 100,
        };
        assert_eq!(
            LocalLedger::admit(&key, &[], &limits, &now).verdict,
            Verdict::Admitted
        );
        LocalLedger::charge(&key, &[], &debit, &now);
        assert_eq!(
            LocalLedger::admit(&key, &[], &limits, &now).verdict,
            Verdict::TokensLimited(30)
        );
        let later = Now::at(T0 + 30_000_000);
        assert_eq!(
            LocalLedger::admit(&key, &[], &limits, &later).verdict,
            Verdict::Admitted
        );
    }

    #[test]
    fn spend_keys_name_the_owner_and_the_period() {
        let now = Now::at(T0);
        assert_eq!(
            Owner::Team("search".into()).redis_key(Period::Month, now.month),
            "llmobs:v1:spend:team:search:month:2026-12"
        );
        assert_eq!(
            Owner::Key("a.b".into()).redis_key(Period::Day, now.day),
            "llmobs:v1:spend:key:a.b:day:2026-12-03"
        );
    }
}
