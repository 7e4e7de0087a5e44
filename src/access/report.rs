//! What the admin API answers about keys and teams (`GET /admin/keys`).

/// `GET /admin/keys`: every key and team, their limits, and their spend this day and month.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccessReport {
    /// The current UTC day (`2026-12-03`).
    pub day: String,
    /// The current UTC month (`2026-12`).
    pub month: String,
    /// The keys, file's first, then `GATEWAY_API_KEYS`'.
    pub keys: Vec<KeyReport>,
    /// The teams.
    pub teams: Vec<TeamReport>,
}

/// One key: its name and limits, never its secret or hash.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyReport {
    /// Its name.
    pub name: String,
    /// Its team.
    pub team: Option<String>,
    /// When it expires (seconds since the Unix epoch).
    pub expires_at: Option<u64>,
    /// The models it may use; absent: any.
    pub models: Option<Vec<String>>,
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Budget per UTC day.
    pub daily_budget_usd: Option<f64>,
    /// Budget per UTC month.
    pub monthly_budget_usd: Option<f64>,
    /// Spend this day and month.
    #[serde(flatten)]
    pub spend: PeriodSpend,
}

/// One team.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TeamReport {
    /// Its name.
    pub name: String,
    /// Budget per UTC day.
    pub daily_budget_usd: Option<f64>,
    /// Budget per UTC month.
    pub monthly_budget_usd: Option<f64>,
    /// Spend this day and month.
    #[serde(flatten)]
    pub spend: PeriodSpend,
}

/// Spend this day and month and what remains of the budgets.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PeriodSpend {
    /// US dollars spent this UTC day.
    pub spend_day_usd: f64,
    /// US dollars spent this UTC month.
    pub spend_month_usd: f64,
    /// What remains of the daily budget.
    pub remaining_day_usd: Option<f64>,
    /// What remains of the monthly budget.
    pub remaining_month_usd: Option<f64>,
}
