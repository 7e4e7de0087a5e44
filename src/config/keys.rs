//! Virtual keys and teams: the configuration file's `[keys.NAME]`, `[teams.NAME]` and
//! `[access]` tables, checked into [`AccessSettings`].
//!
//! A key is stored as the SHA-256 of its secret (`llm-observability keys hash` prints it), so the
//! file never holds a usable credential. Its name is the only identity that appears in
//! telemetry and the admin API; names are what metric labels and Redis keys can carry
//! (letters, digits, `-`, `_`, `.`; at most 64).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::calendar;

/// The highest `requests_per_minute` (one request per 60 µs).
pub const MAX_REQUESTS_PER_MINUTE: u32 = 1_000_000;
/// The longest wait for the shared ledger (Redis) on a request's path, by default.
pub const DEFAULT_LEDGER_TIMEOUT: Duration = Duration::from_millis(50);

/// Every virtual key and team from the file, and what happens when their shared ledger is
/// unreachable. Empty without a file or without `[keys.*]` tables.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// `[keys.NAME]`, by name.
    pub keys: Vec<KeySettings>,
    /// `[teams.NAME]`, by name.
    pub teams: Vec<TeamSettings>,
    /// `[access] on_redis_failure`.
    pub on_redis_failure: RedisFailure,
    /// `[access] redis_timeout_ms`: the deadline of a ledger check on a request's path.
    pub redis_timeout: Duration,
}

/// What a request gets while the shared ledger (Redis) cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisFailure {
    /// Served unchecked; its spend is kept in memory and written when Redis answers again.
    #[default]
    FailOpen,
    /// Refused: 503 `ledger_unavailable`.
    FailClosed,
}

/// The SHA-256 of a key's secret. Never printed: a hash of a short secret can be reversed.
/// Compared in constant time.
#[derive(Clone, Copy, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl std::hash::Hash for KeyDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        super::secret::constant_time_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest([redacted])")
    }
}

/// Budgets in USD per calendar period (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    /// Per UTC day.
    pub daily_usd: Option<f64>,
    /// Per UTC calendar month.
    pub monthly_usd: Option<f64>,
}

/// One virtual key.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// Its name: the `key` label, `llmobs.key.name`, the admin API's identity.
    pub name: String,
    /// The SHA-256 of its secret.
    pub digest: KeyDigest,
    /// The team whose budget it also spends, if any.
    pub team: Option<String>,
    /// When it stops being accepted (seconds since the Unix epoch).
    pub expires_at: Option<u64>,
    /// The model names it may ask for (a route, `provider/model`, or a prefix ending in `*`);
    /// `None`: any.
    pub models: Option<Vec<String>>,
    /// Requests per minute, in bursts of at most as many.
    pub requests_per_minute: Option<u32>,
    /// Tokens (input and output) per minute, charged once each call ends.
    pub tokens_per_minute: Option<u64>,
    /// Its own budgets.
    pub budget: Budget,
}

/// One team: a budget its keys' spend counts against.
#[derive(Debug, Clone)]
pub struct TeamSettings {
    /// Its name: the `team` label and `llmobs.team.name`.
    pub name: String,
    /// Its budgets.
    pub budget: Budget,
}

/// The file's `[access]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessSection {
    on_redis_failure: Option<String>,
    redis_timeout_ms: Option<u64>,
}

/// One `[keys.NAME]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeySection {
    sha256: String,
    team: Option<String>,
    expires_at: Option<toml::value::Datetime>,
    models: Option<Vec<String>>,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u64>,
    daily_budget_usd: Option<f64>,
    monthly_budget_usd: Option<f64>,
}

/// One `[teams.NAME]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamSection {
    daily_budget_usd: Option<f64>,
    monthly_budget_usd: Option<f64>,
}

/// A key or team name: what a metric label and a Redis key can carry unambiguously.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Checks the tables into settings; each error is one line naming the key.
pub(super) fn check(
    access: Option<AccessSection>,
    keys: BTreeMap<String, KeySection>,
    teams: BTreeMap<String, TeamSection>,
) -> Result<AccessSettings, String> {
    let access = access.unwrap_or_default();
    let on_redis_failure = match access.on_redis_failure.as_deref() {
        None | Some("fail_open") => RedisFailure::FailOpen,
        Some("fail_closed") => RedisFailure::FailClosed,
        Some(other) => {
            return Err(format!(
                "access.on_redis_failure = {other:?}: expected \"fail_open\" or \"fail_closed\""
            ));
        }
    };
    let redis_timeout = match access.redis_timeout_ms {
        None => DEFAULT_LEDGER_TIMEOUT,
        Some(ms @ 1..=10_000) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(format!(
                "access.redis_timeout_ms = {ms}: expected milliseconds from 1 to 10000"
            ));
        }
    };
    let teams = teams
        .into_iter()
        .map(|(name, section)| {
            let key = format!("teams.{name}");
            if !valid_name(&name) {
                return Err(format!(
                    "{key}: a team name is 1-64 letters, digits, '-', '_' or '.'"
                ));
            }
            Ok(TeamSettings {
                budget: budget(&key, section.daily_budget_usd, section.monthly_budget_usd)?,
                name,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let team_names: Vec<&str> = teams.iter().map(|t| t.name.as_str()).collect();
    let mut digests = Vec::with_capacity(keys.len());
    let keys = keys
        .into_iter()
        .map(|(name, section)| {
            let key = format!("keys.{name}");
            if !valid_name(&name) {
                return Err(format!(
                    "{key}: a key name is 1-64 letters, digits, '-', '_' or '.' (it is a metric label)"
                ));
            }
            let digest = parse_digest(&section.sha256).ok_or_else(|| {
                format!(
                    "{key}.sha256: expected the 64 hex digits of the key's SHA-256 (`llm-observability keys hash` prints them)"
                )
            })?;
            if digests.contains(&digest) {
                return Err(format!(
                    "{key}.sha256: another key has the same secret; each key needs its own"
                ));
            }
            digests.push(digest);
            if let Some(team) = &section.team
                && !team_names.contains(&team.as_str())
            {
                return Err(format!(
                    "{key}.team = {team:?}: expected one of the [teams.NAME] tables ({})",
                    if team_names.is_empty() {
                        "there are none".to_owned()
                    } else {
                        team_names.join(", ")
                    }
                ));
            }
            let expires_at = section
                .expires_at
                .map(|at| {
                    calendar::unix_seconds_of(&at).ok_or_else(|| {
                        format!(
                            "{key}.expires_at = {at}: expected a date (2027-01-31) or a date and time (2027-01-31T00:00:00Z)"
                        )
                    })
                })
                .transpose()?;
            if let Some(models) = &section.models
                && (models.is_empty() || models.iter().any(|m| m.trim().is_empty()))
            {
                return Err(format!(
                    "{key}.models: expected model names (a route, provider/model, or a prefix ending in *); leave it out to allow any"
                ));
            }
            if section.tokens_per_minute == Some(0) {
                return Err(format!(
                    "{key}.tokens_per_minute = 0: expected a whole number >= 1 (leave it out for no limit)"
                ));
            }
            // At most one request per 60 µs: the request limit keeps whole microseconds.
            if let Some(rpm) = section.requests_per_minute
                && !(1..=MAX_REQUESTS_PER_MINUTE).contains(&rpm)
            {
                return Err(format!(
                    "{key}.requests_per_minute = {rpm}: expected a whole number from 1 to {MAX_REQUESTS_PER_MINUTE} (leave it out for no limit)"
                ));
            }
            Ok(KeySettings {
                budget: budget(&key, section.daily_budget_usd, section.monthly_budget_usd)?,
                name,
                digest,
                team: section.team,
                expires_at,
                models: section.models,
                requests_per_minute: section.requests_per_minute,
                tokens_per_minute: section.tokens_per_minute,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccessSettings {
        keys,
        teams,
        on_redis_failure,
        redis_timeout,
    })
}

fn budget(key: &str, daily: Option<f64>, monthly: Option<f64>) -> Result<Budget, String> {
    for (field, value) in [("daily_budget_usd", daily), ("monthly_budget_usd", monthly)] {
        if let Some(usd) = value
            && !(0.0..1e9).contains(&usd)
        {
            return Err(format!(
                "{key}.{field} = {usd}: expected a number of US dollars >= 0"
            ));
        }
    }
    Ok(Budget {
        daily_usd: daily,
        monthly_usd: monthly,
    })
}

/// The 32 bytes of 64 hex digits (either case).
fn parse_digest(hex: &str) -> Option<KeyDigest> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(KeyDigest(digest))
}

/// The SHA-256 of a presented secret, what a key's `sha256` holds.
pub fn digest_of(secret: &str) -> KeyDigest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    KeyDigest(bytes)
}

/// Lower-case hex of a digest, for `keys hash` only (never logged).
pub fn hex(digest: &KeyDigest) -> String {
    digest.0.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<AccessSettings, String> {
        #[derive(Deserialize)]
        struct File {
            access: Option<AccessSection>,
            #[serde(default)]
            keys: BTreeMap<String, KeySection>,
            #[serde(default)]
            teams: BTreeMap<String, TeamSection>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        check(file.access, file.keys, file.teams)
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn the_digest_is_sha256_of_the_secret() {
        assert_eq!(hex(&digest_of("test")), HASH);
        assert_eq!(parse_digest(&HASH.to_uppercase()), Some(digest_of("test")));
        assert_eq!(parse_digest("abc"), None);
        assert_eq!(format!("{:?}", digest_of("test")), "KeyDigest([redacted])");
    }

    #[test]
    fn reads_keys_and_teams() {
        let settings = read(&format!(
            r#"
            [access]
            on_redis_failure = "fail_closed"
            redis_timeout_ms = 20
            [teams.search]
            monthly_budget_usd = 100
            [keys.search-prod]
            sha256 = "{HASH}"
            team = "search"
            expires_at = 2027-01-31
            models = ["fast", "groq/*"]
            requests_per_minute = 60
            tokens_per_minute = 10000
            daily_budget_usd = 2.5
            "#
        ))
        .unwrap();
        assert_eq!(settings.on_redis_failure, RedisFailure::FailClosed);
        assert_eq!(settings.redis_timeout, Duration::from_millis(20));
        let key = &settings.keys[0];
        assert_eq!(key.name, "search-prod");
        assert_eq!(key.digest, digest_of("test"));
        assert_eq!(key.team.as_deref(), Some("search"));
        assert_eq!(key.expires_at, Some(1_801_353_600));
        assert_eq!(key.budget.daily_usd, Some(2.5));
        assert_eq!(settings.teams[0].budget.monthly_usd, Some(100.0));
    }

    #[test]
    fn each_mistake_names_its_key() {
        let cases = [
            (
                format!("[keys.a]\nsha256 = \"{HASH}\"\nteam = \"nope\""),
                "keys.a.team = \"nope\"",
            ),
            ("[keys.a]\nsha256 = \"xyz\"".into(), "keys.a.sha256"),
            (
                format!("[keys.a]\nsha256 = \"{HASH}\"\n[keys.b]\nsha256 = \"{HASH}\""),
                "keys.b.sha256: another key",
            ),
            (
                format!("[keys.a]\nsha256 = \"{HASH}\"\ndaily_budget_usd = -1"),
                "keys.a.daily_budget_usd = -1",
            ),
            (
                format!("[keys.a]\nsha256 = \"{HASH}\"\nrequests_per_minute = 0"),
                "keys.a.requests_per_minute = 0",
            ),
            (
                format!("[keys.a]\nsha256 = \"{HASH}\"\nrequests_per_minute = 2000000"),
                "keys.a.requests_per_minute = 2000000",
            ),
            (
                format!("[keys.a]\nsha256 = \"{HASH}\"\nmodels = []"),
                "keys.a.models",
            ),
            (
                format!("[keys.\"a b\"]\nsha256 = \"{HASH}\""),
                "keys.a b: a key name",
            ),
            (
                "[access]\non_redis_failure = \"maybe\"".into(),
                "access.on_redis_failure",
            ),
        ];
        for (text, expected) in cases {
            let error = read(&text).unwrap_err();
            assert!(error.starts_with(expected), "{text}: {error}");
            assert!(!error.contains(HASH), "{error}");
        }
    }
}
