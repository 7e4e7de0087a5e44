//! Virtual keys, their limits and budgets (issue 16): in one process without Redis, and across
//! three gateway processes sharing one real `redis-server`. Exactly N of a burst pass a request
//! limit; a budget admits calls to the cent and the spend equals the sum of the answers'
//! `cost_usd`; Redis killed under `fail_open` (served, reconciled) and `fail_closed` (503, then
//! recovery); spend survives a restart; no secret or hash in any answer, metric or log.

use std::time::Duration;

use llmobs_testkit::RedisServer;
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, write_config};
use crate::support::otlp::{attr, otlp};
use crate::support::process::{ServiceProcess, start_binary};
use crate::support::prometheus::sample;
use crate::support::upstream::{API_KEY, FakeUpstream, Reply};

const ADMIN: &str = "admin-secret-7c1f";
/// A key with no limits.
const OPEN: &str = "sk-open-1";

/// The SHA-256 of a secret, in hex, as `keys hash` prints it.
fn sha256(secret: &str) -> String {
    llm_observability::config::hex(&llm_observability::config::digest_of(secret))
}

/// A file with one simulated provider behind route `fast` (and `slow`, which some keys may not
/// use), plus `keys` (TOML tables).
fn config(keys: &str) -> String {
    format!(
        r#"
        [providers.sim]
        kind = "simulated"
        simulated_latency_ms = 0
        [routes.fast]
        targets = [{{ provider = "sim", model = "llama-3.1-8b-instant" }}]
        [routes.slow]
        targets = [{{ provider = "sim", model = "llama-3.3-70b-versatile" }}]
        {keys}
        "#
    )
}

fn key_table(name: &str, secret: &str, extra: &str) -> String {
    format!("[keys.{name}]\nsha256 = \"{}\"\n{extra}\n", sha256(secret))
}

async fn spawn_keyed(keys: &str) -> TestApp {
    let path = write_config(&config(keys));
    spawn_app_with(&[("GATEWAY_CONFIG", &path), ("ADMIN_API_KEY", ADMIN)]).await
}

/// `POST /api/chat` to `fast` with `secret`; the same prompt every time, so the same cost.
async fn call(client: &reqwest::Client, base: &str, secret: &str) -> reqwest::Response {
    client
        .post(format!("{base}/api/chat"))
        .bearer_auth(secret)
        .json(&json!({"prompt": "Say hi", "model": "fast", "max_tokens": 16}))
        .send()
        .await
        .unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, response.json().await.unwrap())
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// The sum of every series of `name` with `key="<key>"` (whatever its other labels).
fn key_total(text: &str, name: &str, key: &str) -> f64 {
    let wanted = format!("key=\"{key}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&wanted))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn admin(client: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// What one call to `fast` costs (the simulated provider's answer to the fixed prompt).
async fn one_call_cost() -> f64 {
    let app = spawn_keyed(&key_table("probe", OPEN, "")).await;
    let body: Value = call(&app.client, &app.url(""), OPEN)
        .await
        .json()
        .await
        .unwrap();
    let cost = body["cost_usd"].as_f64().expect("a priced answer");
    assert!(cost > 0.0);
    cost
}

#[tokio::test]
async fn keys_are_checked_before_any_call_with_the_right_status_and_counted() {
    let app = spawn_keyed(&format!(
        "{}{}{}",
        key_table("open", OPEN, ""),
        key_table("narrow", "sk-narrow", "models = [\"fast\", \"sim/*\"]"),
        key_table("old", "sk-old", "expires_at = 2001-01-01"),
    ))
    .await;
    let base = app.url("");
    let client = &app.client;
    let before = app.scrape().await;

    let (status, _, body) = error_of(call(client, &base, "sk-wrong").await).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "invalid_request");
    let (status, _, body) = error_of(call(client, &base, "sk-old").await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("key_expired"))
    );

    // The allowed models: exact names and a prefix; the same on every spending endpoint.
    assert_eq!(call(client, &base, "sk-narrow").await.status(), 200);
    for (path, body) in [
        ("/api/chat", json!({"prompt": "hi", "model": "slow"})),
        (
            "/v1/chat/completions",
            json!({"model": "slow", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        ("/v1/embeddings", json!({"model": "slow", "input": "hi"})),
    ] {
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth("sk-narrow")
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, _, body) = error_of(response).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["type"], "permission_denied", "{path}");
    }
    let direct = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-narrow")
        .json(&json!({"model": "sim/llama-3.1-8b-instant", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200, "sim/* allows direct addressing");
    // The open key may use anything.
    assert_eq!(call(client, &base, OPEN).await.status(), 200);

    let after = app.scrape().await;
    let delta = |labels: &[(&str, &str)]| {
        metric(&after, "llm_key_rejections_total", labels)
            - metric(&before, "llm_key_rejections_total", labels)
    };
    assert_eq!(delta(&[("key", ""), ("reason", "invalid_key")]), 1.0);
    assert_eq!(delta(&[("key", "old"), ("reason", "expired")]), 1.0);
    assert_eq!(
        delta(&[("key", "narrow"), ("reason", "model_not_allowed")]),
        3.0
    );
    // No call was made for a refusal: only the three admitted calls are counted.
    let calls = |text: &str| {
        ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"]
            .iter()
            .map(|m| {
                metric(
                    text,
                    "llm_requests_total",
                    &[("provider", "sim"), ("model", m), ("status", "ok")],
                )
            })
            .sum::<f64>()
    };
    assert_eq!(calls(&after) - calls(&before), 3.0);
    for secret in ["sk-narrow", "sk-old", OPEN] {
        assert!(!after.contains(secret) && !after.contains(&sha256(secret)));
    }
}

#[tokio::test]
async fn a_request_limit_admits_exactly_its_number_of_a_burst_in_one_process() {
    let app = spawn_keyed(&key_table("rl", "sk-rl", "requests_per_minute = 5")).await;
    let base = app.url("");
    let calls = (0..12).map(|_| {
        let (client, base) = (app.client.clone(), base.clone());
        tokio::spawn(async move { error_of(call(&client, &base, "sk-rl").await).await })
    });
    let outcomes: Vec<_> = futures_join(calls).await;
    let ok = outcomes.iter().filter(|o| o.0 == 200).count();
    assert_eq!(ok, 5, "{outcomes:?}");
    for (status, retry, body) in outcomes.iter().filter(|o| o.0 != 200) {
        assert_eq!(*status, 429);
        assert_eq!(body["error"]["type"], "rate_limited");
        assert_eq!(body["error"]["code"], "key_rate_limit_exceeded");
        let retry: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1..=12).contains(&retry), "{retry}");
    }
    let text = app.scrape().await;
    assert_eq!(
        metric(
            &text,
            "llm_key_rejections_total",
            &[("key", "rl"), ("reason", "rate_limited")]
        ),
        7.0
    );
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_budget_admits_calls_to_the_cent_and_spend_equals_the_answers() {
    let cost = one_call_cost().await;
    // 3.5 calls' worth: the fourth call starts under budget and is the last.
    let app = spawn_keyed(&format!(
        "[teams.research]\ndaily_budget_usd = {}\n{}{}",
        cost * 5.5,
        key_table(
            "solo",
            "sk-solo",
            &format!("daily_budget_usd = {}", cost * 3.5)
        ),
        // Named like its team, with a budget of the same period: their series stay apart
        // (the prometheus crate's label vectors would have merged them).
        key_table(
            "research",
            "sk-member",
            "team = \"research\"\ndaily_budget_usd = 100"
        ),
    ))
    .await;
    let base = app.url("");
    let client = &app.client;
    let mut charged = 0.0;
    for i in 0..4 {
        let body: Value = call(client, &base, "sk-solo").await.json().await.unwrap();
        assert!(body["cost_usd"].is_number(), "call {i}: {body}");
        charged += body["cost_usd"].as_f64().unwrap();
    }
    let (status, retry, body) = error_of(call(client, &base, "sk-solo").await).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "budget_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("key \"solo\"")
    );
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(
        (1..=86_400).contains(&retry),
        "until the UTC day ends: {retry}"
    );

    // The team's budget is the member's too: 5.5 calls' worth → the sixth is refused.
    for _ in 0..6 {
        assert_eq!(call(client, &base, "sk-member").await.status(), 200);
    }
    let (status, _, body) = error_of(call(client, &base, "sk-member").await).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (429, Some("budget_exceeded"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("team \"research\"")
    );

    let text = app.scrape().await;
    let spent = key_total(&text, "llm_spend_usd_total", "solo");
    assert!(
        text.contains(
            "llm_spend_usd_total{key=\"research\",model=\"fast\",provider=\"sim\",team=\"research\"}"
        ),
        "{text}"
    );
    assert!((spent - charged).abs() < 1e-12, "{spent} vs {charged}");
    assert_eq!(
        metric(
            &text,
            "llm_budget_usd",
            &[("key", "research"), ("team", ""), ("period", "day")]
        ),
        100.0
    );
    let remaining = metric(
        &text,
        "llm_budget_remaining_usd",
        &[("key", "solo"), ("team", ""), ("period", "day")],
    );
    assert!(
        remaining.abs() < 1e-12,
        "spent past the budget: {remaining}"
    );
    assert_eq!(
        metric(
            &text,
            "llm_budget_usd",
            &[("key", "",), ("team", "research"), ("period", "day")]
        ),
        cost * 5.5
    );
    assert_eq!(
        metric(
            &text,
            "llm_key_rejections_total",
            &[("key", "solo"), ("reason", "budget_exceeded")]
        ),
        1.0
    );

    let (status, spend) = admin(client, &base, "/admin/spend?key=solo").await;
    assert_eq!(status, 200, "{spend}");
    let spend: Value = serde_json::from_str(&spend).unwrap();
    assert!((spend["spend_usd"].as_f64().unwrap() - charged).abs() < 1e-9 * 4.0);
    let (status, team) = admin(client, &base, "/admin/spend?team=research&period=month").await;
    assert_eq!(status, 200);
    let team: Value = serde_json::from_str(&team).unwrap();
    assert!((team["spend_usd"].as_f64().unwrap() - cost * 6.0).abs() < 1e-9 * 6.0);
    let (status, keys) = admin(client, &base, "/admin/keys").await;
    assert_eq!(status, 200);
    for secret in ["sk-solo", "sk-member"] {
        assert!(
            !keys.contains(secret) && !keys.contains(&sha256(secret)),
            "{keys}"
        );
    }
    let keys: Value = serde_json::from_str(&keys).unwrap();
    let solo = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "solo")
        .unwrap();
    assert_eq!(solo["remaining_day_usd"], 0.0);
    // Admin errors.
    assert_eq!(admin(client, &base, "/admin/spend?key=nobody").await.0, 404);
    assert_eq!(
        admin(client, &base, "/admin/spend?key=solo&team=research")
            .await
            .0,
        404,
        "solo is in no team"
    );
    let (_, all) = admin(client, &base, "/admin/spend").await;
    let all: Value = serde_json::from_str(&all).unwrap();
    assert!(
        (all["spend_usd"].as_f64().unwrap() - cost * 10.0).abs() < 1e-9 * 10.0,
        "every key's spend: {all}"
    );
    assert_eq!(
        admin(client, &base, "/admin/spend?key=solo&period=2026-02-30")
            .await
            .0,
        422
    );
    let unauthorised = client
        .get(format!("{base}/admin/keys"))
        .bearer_auth("sk-solo")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
}

#[tokio::test]
async fn spans_name_the_key_team_end_user_and_conversation_never_the_secret() {
    otlp();
    let app = spawn_keyed(&format!(
        "[teams.t1]\n{}",
        key_table("tagged", "sk-tagged-secret", "team = \"t1\""),
    ))
    .await;
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("sk-tagged-secret")
        .header("x-llmobs-conversation-id", "conv-42")
        .json(&json!({"model": "fast", "user": "user-7", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let trace = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let spans = otlp().wait_for_trace(&trace, 2).await;
    let chat = spans
        .iter()
        .find(|s| s.span.name.starts_with("chat "))
        .expect("the GenAI span");
    let attrs = &chat.span.attributes;
    assert_eq!(attr(attrs, "llmobs.key.name"), Some(json!("tagged")));
    assert_eq!(attr(attrs, "llmobs.team.name"), Some(json!("t1")));
    assert_eq!(attr(attrs, "user.id"), Some(json!("user-7")));
    assert_eq!(
        attr(attrs, "gen_ai.conversation.id"),
        Some(json!("conv-42"))
    );
    let everything = format!("{spans:?}");
    assert!(!everything.contains("sk-tagged-secret"));
    assert!(!everything.contains(&sha256("sk-tagged-secret")));
}

// ------------------------------------------------------------------ three replicas, one Redis

struct Replicas {
    redis: RedisServer,
    gateways: Vec<ServiceProcess>,
    client: reqwest::Client,
}

fn start_replicas(redis: RedisServer, keys: &str, policy: &str, count: usize) -> Replicas {
    let path = write_config(&format!(
        "{}\n[access]\non_redis_failure = \"{policy}\"\nredis_timeout_ms = 500\n",
        config(keys)
    ));
    let url = redis.url();
    let gateways = (0..count)
        .map(|_| {
            start_binary(&[
                ("GATEWAY_CONFIG", &path),
                ("REDIS_URL", &url),
                ("ADMIN_API_KEY", ADMIN),
                ("OTEL_SDK_DISABLED", "true"),
            ])
        })
        .collect();
    Replicas {
        redis,
        gateways,
        client: reqwest::Client::new(),
    }
}

impl Replicas {
    fn base(&self, i: usize) -> String {
        self.gateways[i % self.gateways.len()].url("")
    }

    /// Waits until every replica has connected to Redis (its connection in `CLIENT LIST`).
    async fn connected(&self) {
        for _ in 0..400 {
            if self.redis.cli(&["CLIENT", "LIST"]).lines().count() > self.gateways.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the replicas never connected to Redis");
    }

    async fn scrapes(&self) -> Vec<String> {
        let mut texts = Vec::new();
        for gateway in &self.gateways {
            let url = format!("http://127.0.0.1:{}/metrics", gateway.metrics_port);
            texts.push(reqwest::get(url).await.unwrap().text().await.unwrap());
        }
        texts
    }

    async fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.scrapes()
            .await
            .iter()
            .map(|t| metric(t, name, labels))
            .sum()
    }
}

#[tokio::test]
async fn three_replicas_share_one_request_limit_and_one_budget_through_redis() {
    let cost = one_call_cost().await;
    let keys = format!(
        "{}{}",
        key_table("burst", "sk-burst", "requests_per_minute = 10"),
        key_table(
            "budget",
            "sk-budget",
            &format!("daily_budget_usd = {}", cost * 7.5)
        ),
    );
    let replicas = start_replicas(RedisServer::start(), &keys, "fail_open", 3);
    replicas.connected().await;

    // 30 concurrent requests spread over the three: exactly 10 pass.
    let calls = (0..30).map(|i| {
        let (client, base) = (replicas.client.clone(), replicas.base(i));
        tokio::spawn(async move { call(&client, &base, "sk-burst").await.status().as_u16() })
    });
    let statuses = futures_join(calls).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        20,
        "{statuses:?}"
    );

    // One budget across the three: the eighth call starts under it and is the last.
    let mut charged = 0.0;
    let mut admitted = 0;
    for i in 0..12 {
        let response = call(&replicas.client, &replicas.base(i), "sk-budget").await;
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            charged += body["cost_usd"].as_f64().unwrap();
            admitted += 1;
        } else {
            let (status, _, body) = error_of(response).await;
            assert_eq!(
                (status, body["error"]["type"].as_str()),
                (429, Some("budget_exceeded"))
            );
        }
    }
    assert_eq!(admitted, 8);
    // Spend: Redis's total, each replica's counter summed, and the answers agree.
    let (status, spend) = admin(
        &replicas.client,
        &replicas.base(1),
        "/admin/spend?key=budget",
    )
    .await;
    assert_eq!(status, 200);
    let spend: Value = serde_json::from_str(&spend).unwrap();
    assert!(
        (spend["spend_usd"].as_f64().unwrap() - charged).abs() < 1e-9 * 8.0,
        "{spend} vs {charged}"
    );
    let counted: f64 = replicas
        .scrapes()
        .await
        .iter()
        .map(|t| key_total(t, "llm_spend_usd_total", "budget"))
        .sum();
    assert!((counted - charged).abs() < 1e-12, "{counted} vs {charged}");
    assert_eq!(
        replicas
            .metric_sum(
                "llm_key_rejections_total",
                &[("key", "burst"), ("reason", "rate_limited")]
            )
            .await,
        20.0
    );

    // Spend survives a gateway restart: a new replica reads it from Redis.
    let url = replicas.redis.url();
    let Replicas {
        redis,
        gateways,
        client,
    } = replicas;
    let log: String = gateways.iter().map(ServiceProcess::log).collect();
    drop(gateways);
    let fresh = start_replicas(redis, &keys, "fail_open", 1);
    assert_eq!(fresh.redis.url(), url);
    fresh.connected().await;
    let (_, spend) = admin(&client, &fresh.base(0), "/admin/spend?key=budget").await;
    let spend: Value = serde_json::from_str(&spend).unwrap();
    assert!((spend["spend_usd"].as_f64().unwrap() - charged).abs() < 1e-9 * 8.0);
    assert_eq!(
        call(&client, &fresh.base(0), "sk-budget").await.status(),
        429
    );
    for secret in ["sk-burst", "sk-budget", ADMIN] {
        assert!(
            !log.contains(secret) && !log.contains(&sha256(secret)),
            "a secret in the logs"
        );
    }
}

#[tokio::test]
async fn redis_down_fail_open_serves_and_reconciles_fail_closed_refuses_then_recovers() {
    let cost = one_call_cost().await;
    let keys = key_table("metered", "sk-metered", "monthly_budget_usd = 1000");
    let mut open = start_replicas(RedisServer::start(), &keys, "fail_open", 2);
    open.connected().await;
    for i in 0..4 {
        assert_eq!(
            call(&open.client, &open.base(i), "sk-metered")
                .await
                .status(),
            200
        );
    }
    // Killed: a Redis without persistence loses what it held (durability is Redis's own:
    // appendonly). What the replicas spend meanwhile is kept and written when it is back.
    open.redis.stop();
    let mut charged = 0.0;
    for i in 0..6 {
        let response = call(&open.client, &open.base(i), "sk-metered").await;
        assert_eq!(
            response.status(),
            200,
            "fail_open serves while Redis is down"
        );
        let body: Value = response.json().await.unwrap();
        charged += body["cost_usd"].as_f64().unwrap();
    }
    assert!(
        open.metric_sum("llm_ledger_errors_total", &[("operation", "admit")])
            .await
            >= 1.0
    );
    assert!(open.metric_sum("llm_ledger_pending_usd", &[]).await > 0.0);
    open.redis.restart();
    // Reconciled: Redis's total is every answer's cost.
    let mut total = 0.0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, spend) = admin(
            &open.client,
            &open.base(0),
            "/admin/spend?key=metered&period=month",
        )
        .await;
        if status == 200 {
            total = serde_json::from_str::<Value>(&spend).unwrap()["spend_usd"]
                .as_f64()
                .unwrap();
            if (total - charged).abs() < 1e-9 * 10.0 {
                break;
            }
        }
    }
    assert!(
        (total - charged).abs() < 1e-9 * 10.0,
        "{total} vs {charged} ({cost} a call)"
    );
    assert_eq!(open.metric_sum("llm_ledger_pending_usd", &[]).await, 0.0);

    let mut closed = start_replicas(RedisServer::start(), &keys, "fail_closed", 1);
    closed.connected().await;
    assert_eq!(
        call(&closed.client, &closed.base(0), "sk-metered")
            .await
            .status(),
        200
    );
    closed.redis.stop();
    let (status, retry, body) =
        error_of(call(&closed.client, &closed.base(0), "sk-metered").await).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (503, Some("ledger_unavailable")),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("1"));
    closed.redis.restart();
    let mut recovered = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if call(&closed.client, &closed.base(0), "sk-metered")
            .await
            .status()
            == 200
        {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "calls are admitted again once Redis is back");
}

// ------------------------------------------------------------------ streams, tokens, reload

/// The app against a fake Groq upstream it routes `fast` to, with `keys`.
async fn spawn_keyed_upstream(keys: &str) -> (TestApp, FakeUpstream) {
    let upstream = FakeUpstream::start().await;
    let path = write_config(&format!(
        r#"
        [providers.groq]
        kind = "groq"
        base_url = "{}"
        api_key_env = "KEYS_TEST_GROQ_KEY"
        [routes.fast]
        targets = [{{ provider = "groq", model = "llama-3.1-8b-instant" }}]
        {keys}
        "#,
        upstream.base_url()
    ));
    let app = spawn_app_with(&[
        ("GATEWAY_CONFIG", &path),
        ("KEYS_TEST_GROQ_KEY", API_KEY),
        ("LLM_MAX_RETRIES", "0"),
    ])
    .await;
    (app, upstream)
}

#[tokio::test]
async fn a_stream_is_charged_at_its_end_and_an_abandoned_one_an_estimate() {
    let (app, upstream) = spawn_keyed_upstream(&key_table(
        "streamer",
        "sk-streamer",
        "daily_budget_usd = 5",
    ))
    .await;
    let stream = |app: &TestApp| {
        app.client
            .post(app.url("/api/chat"))
            .bearer_auth("sk-streamer")
            .json(&json!({"prompt": "stream it", "model": "fast", "stream": true}))
            .send()
    };
    upstream.script([Reply::Stream {
        chunks: 5,
        chunk_bytes: 8,
        delay: Duration::from_millis(1),
    }]);
    let text = stream(&app).await.unwrap().text().await.unwrap();
    let done = text
        .split("event: done\ndata: ")
        .nth(1)
        .expect("a done event");
    let done: Value = serde_json::from_str(done.lines().next().unwrap()).unwrap();
    let cost = done["cost_usd"].as_f64().expect("a priced stream");
    let spent = key_total(&app.scrape().await, "llm_spend_usd_total", "streamer");
    assert!((spent - cost).abs() < 1e-15, "{spent} vs {cost}");

    // One chunk, then the client leaves: the call is charged what it likely used.
    upstream.script([Reply::StreamThenHang]);
    let mut abandoned = stream(&app).await.unwrap();
    let first = abandoned.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    let trace = abandoned.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(abandoned);
    let mut estimate = 0.0;
    for _ in 0..100 {
        estimate = key_total(&app.scrape().await, "llm_spend_usd_total", "streamer") - spent;
        if estimate > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Input ≈ the request's bytes / 4 at 0.05 $/M, one output token at 0.08 $/M.
    assert!(estimate > 0.0 && estimate < 1e-5, "{estimate}");
    let spans = otlp().wait_for_trace(&trace, 2).await;
    let chat = spans
        .iter()
        .find(|s| s.span.name.starts_with("chat "))
        .unwrap();
    assert_eq!(
        attr(&chat.span.attributes, "error.type"),
        Some(json!("cancelled"))
    );
    assert_eq!(
        attr(&chat.span.attributes, "llmobs.cost.estimated"),
        Some(json!(true))
    );
}

#[tokio::test]
async fn a_token_limit_refuses_once_a_minute_of_tokens_is_spent() {
    let app = spawn_keyed(&key_table("tokens", "sk-tokens", "tokens_per_minute = 10")).await;
    let base = app.url("");
    // The first call is admitted with an empty bucket and uses more than 10 tokens.
    assert_eq!(call(&app.client, &base, "sk-tokens").await.status(), 200);
    let (status, retry, body) = error_of(call(&app.client, &base, "sk-tokens").await).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "key_token_limit_exceeded");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(
        metric(
            &app.scrape().await,
            "llm_key_rejections_total",
            &[("key", "tokens"), ("reason", "tokens_limited")]
        ),
        1.0
    );
}

#[tokio::test]
async fn sighup_adds_and_revokes_keys_and_never_removes_the_last_one() {
    let path = write_config(&config(&key_table("first", "sk-first", "")));
    let service = start_binary(&[("GATEWAY_CONFIG", &path), ("OTEL_SDK_DISABLED", "true")]);
    let client = reqwest::Client::new();
    let base = service.url("");
    assert_eq!(call(&client, &base, "sk-first").await.status(), 200);
    assert_eq!(call(&client, &base, "sk-second").await.status(), 401);

    std::fs::write(&path, config(&key_table("second", "sk-second", ""))).unwrap();
    service.signal("HUP");
    wait_for_line(
        &service,
        &format!("reloaded {path}: 1 providers, 2 routes, 1 keys"),
    )
    .await;
    assert_eq!(
        call(&client, &base, "sk-first").await.status(),
        401,
        "revoked"
    );
    assert_eq!(
        call(&client, &base, "sk-second").await.status(),
        200,
        "added"
    );

    std::fs::write(&path, config("")).unwrap();
    service.signal("HUP");
    wait_for_line(&service, "a reload cannot turn gateway authentication off").await;
    assert_eq!(
        call(&client, &base, "sk-second").await.status(),
        200,
        "kept"
    );
    assert_eq!(
        call(&client, &base, "sk-anything").await.status(),
        401,
        "still closed"
    );
    let log = service.log();
    for secret in ["sk-first", "sk-second"] {
        assert!(!log.contains(secret) && !log.contains(&sha256(secret)));
    }
}

async fn wait_for_line(service: &ServiceProcess, needle: &str) {
    for _ in 0..500 {
        if service.log().contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no log line with {needle:?}:\n{}", service.log());
}
