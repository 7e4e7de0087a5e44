//! An HTTP load generator for `bench/run.sh`: open-loop at a fixed rate (latency measured from
//! each request's *scheduled* send time, so a stalled server cannot hide its stall: no
//! coordinated omission), or closed-loop at a fixed concurrency, optionally for a fixed number
//! of requests. `--sse` also measures the time to the first `data:` line of a streamed answer.
//!
//! ```text
//! loadgen --url URL [--body JSON | --body-file F] [--header 'K: V']...
//!         (--rate R | --concurrency N) [--duration S] [--requests N] [--warmup S]
//!         [--timeout S] [--max-inflight N] [--threads N] [--sse]
//! ```
//!
//! `@N@` in the body (if any) is replaced in every request by a number unique to it (a random
//! prefix per process, then a counter), e.g. a response cache miss every time.
//!
//! Prints one JSON object: sent, ok, errors (by status or kind), rps, and p50/p90/p99/p99.9/max
//! latency in ms (plus `ttfc_*` with `--sse`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

struct Options {
    url: String,
    body: Bytes,
    /// The body split at each `@N@`, when it has any: a unique number goes between the parts.
    unique: Option<Vec<Bytes>>,
    headers: HeaderMap,
    rate: Option<f64>,
    concurrency: Option<usize>,
    duration: Duration,
    requests: Option<u64>,
    warmup: Duration,
    timeout: Duration,
    max_inflight: i64,
    threads: usize,
    sse: bool,
}

fn usage() -> String {
    "usage: loadgen --url URL [--body JSON | --body-file F] [--header 'K: V']... \
     (--rate R | --concurrency N) [--duration S] [--requests N] [--warmup S] [--timeout S] \
     [--max-inflight N] [--threads N] [--sse]\n\
     (`@N@` in the body: replaced by a number unique to each request)"
        .into()
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        url: String::new(),
        body: Bytes::new(),
        unique: None,
        headers: HeaderMap::new(),
        rate: None,
        concurrency: None,
        duration: Duration::from_secs(10),
        requests: None,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(10),
        max_inflight: 20_000,
        threads: 1,
        sse: false,
    };
    o.headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(usage()),
            "--sse" => {
                o.sse = true;
                continue;
            }
            _ => {}
        }
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let float = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--url" => o.url = v,
            "--body" => o.body = Bytes::from(v),
            "--body-file" => {
                o.body = Bytes::from(std::fs::read(&v).map_err(|e| format!("{v}: {e}"))?)
            }
            "--header" => {
                let (k, val) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--header {v}: expected 'Name: value'"))?;
                let name = HeaderName::from_bytes(k.trim().as_bytes())
                    .map_err(|e| format!("--header {v}: {e}"))?;
                let value =
                    HeaderValue::from_str(val.trim()).map_err(|e| format!("--header {v}: {e}"))?;
                o.headers.insert(name, value);
            }
            "--rate" => o.rate = Some(float(&v)?).filter(|r| *r > 0.0),
            "--concurrency" => o.concurrency = Some(float(&v)? as usize).filter(|c| *c > 0),
            "--duration" => o.duration = Duration::from_secs_f64(float(&v)?),
            "--requests" => o.requests = Some(float(&v)? as u64),
            "--warmup" => o.warmup = Duration::from_secs_f64(float(&v)?),
            "--timeout" => o.timeout = Duration::from_secs_f64(float(&v)?),
            "--max-inflight" => o.max_inflight = float(&v)? as i64,
            "--threads" => o.threads = (float(&v)? as usize).max(1),
            other => return Err(format!("unknown flag {other}\n{}", usage())),
        }
    }
    if contains(&o.body, UNIQUE) {
        let text = String::from_utf8_lossy(&o.body).into_owned();
        o.unique = Some(
            text.split("@N@")
                .map(|part| Bytes::from(part.to_owned()))
                .collect(),
        );
    }
    if o.url.is_empty() {
        return Err(format!("--url is required\n{}", usage()));
    }
    if o.rate.is_some() == o.concurrency.is_some() {
        return Err(format!(
            "give exactly one of --rate and --concurrency\n{}",
            usage()
        ));
    }
    if o.requests.is_some() && o.rate.is_some() {
        return Err("--requests is for closed-loop (--concurrency) runs".into());
    }
    Ok(o)
}

/// Replaced in the body by a number unique to each request.
const UNIQUE: &[u8] = b"@N@";

/// Everything recorded; latencies in nanoseconds.
#[derive(Default)]
struct Stats {
    latency: Vec<u64>,
    ttfc: Vec<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    last_done: Option<Instant>,
}

impl Stats {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }
}

struct Shared {
    opts: Options,
    client: reqwest::Client,
    stats: Mutex<Stats>,
    inflight: AtomicI64,
    sent: AtomicU64,
    /// `@N@`: this process's prefix (so that two runs against one server never repeat a body)
    /// and the count of bodies made so far.
    unique_prefix: u64,
    unique_next: AtomicU64,
    /// Every finished request, warm-up included (for CPU time per request).
    completed_total: AtomicU64,
    /// Requests scheduled before this instant are warm-up: sent but not recorded.
    record_from: Mutex<Option<Instant>>,
}

enum Outcome {
    Ok { ttfc: Option<Duration> },
    Failed(String),
}

impl Shared {
    /// The next request's body: the one given, or with `@N@` replaced by a fresh number.
    fn body(&self) -> Bytes {
        let Some(parts) = &self.opts.unique else {
            return self.opts.body.clone();
        };
        let n = format!(
            "{}-{}",
            self.unique_prefix,
            self.unique_next.fetch_add(1, Relaxed)
        );
        let mut body = Vec::with_capacity(self.opts.body.len() + parts.len() * n.len());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(n.as_bytes());
            }
            body.extend_from_slice(part);
        }
        Bytes::from(body)
    }

    /// Sends one request and reads the whole answer.
    async fn request(&self, from: Instant) -> Outcome {
        let sent = self
            .client
            .post(&self.opts.url)
            .headers(self.opts.headers.clone())
            .body(self.body())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(kind(&e)),
        };
        let status = response.status();
        if !self.opts.sse {
            return match response.bytes().await {
                Err(e) => Outcome::Failed(kind(&e)),
                Ok(_) if !status.is_success() => Outcome::Failed(status.as_u16().to_string()),
                Ok(_) => Outcome::Ok { ttfc: None },
            };
        }
        if !status.is_success() {
            let _ = response.bytes().await;
            return Outcome::Failed(status.as_u16().to_string());
        }
        let mut stream = response.bytes_stream();
        let mut ttfc = None;
        let mut seen: Vec<u8> = Vec::new();
        let mut tail: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Outcome::Failed(kind(&e)),
            };
            if ttfc.is_none() {
                seen.extend_from_slice(&chunk);
                if first_data_line(&seen) {
                    ttfc = Some(from.elapsed());
                }
            }
            tail.extend_from_slice(&chunk);
            if tail.len() > 64 {
                tail.drain(..tail.len() - 64);
            }
        }
        if ttfc.is_none() {
            return Outcome::Failed("sse_no_data".into());
        }
        if !contains(&tail, b"data: [DONE]") {
            return Outcome::Failed("sse_no_done".into());
        }
        Outcome::Ok { ttfc }
    }

    fn record(&self, scheduled: Instant, outcome: Outcome) {
        let latency = scheduled.elapsed();
        self.completed_total.fetch_add(1, Relaxed);
        if self
            .record_from
            .lock()
            .unwrap()
            .is_some_and(|t| scheduled < t)
        {
            return;
        }
        let mut stats = self.stats.lock().unwrap();
        stats.last_done = Some(Instant::now());
        match outcome {
            Outcome::Ok { ttfc } => {
                stats.ok += 1;
                stats.latency.push(latency.as_nanos() as u64);
                if let Some(t) = ttfc {
                    stats.ttfc.push(t.as_nanos() as u64);
                }
            }
            Outcome::Failed(k) => stats.error(k),
        }
    }
}

/// Whether a complete line starting with `data:` has arrived.
fn first_data_line(seen: &[u8]) -> bool {
    let mut line_start = 0;
    for (i, b) in seen.iter().enumerate() {
        if *b == b'\n' {
            if seen[line_start..i].starts_with(b"data:") {
                return true;
            }
            line_start = i + 1;
        }
    }
    false
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else {
        "request".into()
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = {
        let _guard = runtime.enter();
        reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(opts.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .expect("http client")
    };
    let shared = Arc::new(Shared {
        opts,
        client,
        stats: Mutex::new(Stats::default()),
        inflight: AtomicI64::new(0),
        sent: AtomicU64::new(0),
        unique_prefix: unique_prefix(),
        unique_next: AtomicU64::new(0),
        completed_total: AtomicU64::new(0),
        record_from: Mutex::new(None),
    });
    let (elapsed, mode) = if let Some(rate) = shared.opts.rate {
        (open_loop(&runtime, &shared, rate), "rate")
    } else {
        (runtime.block_on(closed_loop(&shared)), "concurrency")
    };
    let report = report(&shared, mode, elapsed);
    println!("{report}");
    runtime.shutdown_timeout(Duration::from_millis(100));
}

/// A number that differs between runs: the clock's nanoseconds mixed with the process id.
fn unique_prefix() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 40)) % 1_000_000_000_000
}

/// Sends at `rate` per second from a dedicated pacing thread (finer sleeps than tokio's 1 ms
/// timer), each request timed from its scheduled instant. Returns the measured time span.
fn open_loop(runtime: &tokio::runtime::Runtime, shared: &Arc<Shared>, rate: f64) -> Duration {
    let o = &shared.opts;
    let start = Instant::now() + Duration::from_millis(5);
    let measure_from = start + o.warmup;
    *shared.record_from.lock().unwrap() = Some(measure_from);
    let end = measure_from + o.duration;
    let interval = 1.0 / rate;
    let handle = runtime.handle().clone();
    let mut i: u64 = 0;
    loop {
        let scheduled = start + Duration::from_secs_f64(i as f64 * interval);
        if scheduled >= end {
            break;
        }
        i += 1;
        let now = Instant::now();
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        if shared.inflight.load(Relaxed) >= o.max_inflight {
            // Bounded: a server this far behind gets these counted as failures, not queued.
            if scheduled >= measure_from {
                shared.stats.lock().unwrap().error("skipped_overload");
            }
            continue;
        }
        shared.inflight.fetch_add(1, Relaxed);
        if scheduled >= measure_from {
            shared.sent.fetch_add(1, Relaxed);
        }
        let s = shared.clone();
        handle.spawn(async move {
            let outcome = s.request(scheduled).await;
            s.record(scheduled, outcome);
            s.inflight.fetch_sub(1, Relaxed);
        });
    }
    // Wait for stragglers (each bounded by the client timeout).
    let drain_deadline = Instant::now() + o.timeout + Duration::from_secs(1);
    while shared.inflight.load(Relaxed) > 0 && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Until the last answer: a server that keeps up finishes just after the schedule ends.
    let last = shared.stats.lock().unwrap().last_done;
    last.unwrap_or_else(Instant::now)
        .max(end)
        .saturating_duration_since(measure_from)
}

/// `--concurrency` workers each send back to back until the duration (or `--requests`) is spent.
async fn closed_loop(shared: &Arc<Shared>) -> Duration {
    let o = &shared.opts;
    let workers = o.concurrency.unwrap_or(1);
    if !o.warmup.is_zero() {
        let until = Instant::now() + o.warmup;
        run_workers(
            shared,
            workers,
            until,
            Arc::new(AtomicI64::new(i64::MAX)),
            false,
        )
        .await;
    }
    let start = Instant::now();
    let until = start + o.duration;
    let tickets = o.requests.map_or(i64::MAX, |n| n as i64);
    let until = if o.requests.is_some() {
        start + Duration::from_secs(86_400)
    } else {
        until
    };
    run_workers(
        shared,
        workers,
        until,
        Arc::new(AtomicI64::new(tickets)),
        true,
    )
    .await;
    start.elapsed()
}

async fn run_workers(
    shared: &Arc<Shared>,
    workers: usize,
    until: Instant,
    tickets: Arc<AtomicI64>,
    record: bool,
) {
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let s = shared.clone();
        let tickets = tickets.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until && tickets.fetch_sub(1, Relaxed) > 0 {
                let from = Instant::now();
                let outcome = s.request(from).await;
                if !record {
                    s.completed_total.fetch_add(1, Relaxed);
                }
                if record {
                    s.sent.fetch_add(1, Relaxed);
                    s.record(from, outcome);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn report(shared: &Shared, mode: &str, elapsed: Duration) -> Value {
    let mut stats = shared.stats.lock().unwrap();
    let errors: u64 = stats.errors.values().sum();
    let completed = stats.ok + errors;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut out = Map::new();
    out.insert("mode".into(), json!(mode));
    if let Some(r) = shared.opts.rate {
        out.insert("target_rate".into(), json!(r));
    }
    if let Some(c) = shared.opts.concurrency {
        out.insert("concurrency".into(), json!(c));
    }
    out.insert("duration_s".into(), json!(round(secs, 3)));
    out.insert("sent".into(), json!(shared.sent.load(Relaxed)));
    out.insert("ok".into(), json!(stats.ok));
    out.insert("errors".into(), json!(errors));
    out.insert("errors_by_kind".into(), json!(stats.errors));
    out.insert(
        "completed_total".into(),
        json!(shared.completed_total.load(Relaxed)),
    );
    out.insert("rps".into(), json!(round(completed as f64 / secs, 1)));
    let latency = std::mem::take(&mut stats.latency);
    percentiles(&mut out, "", latency);
    if shared.opts.sse {
        let ttfc = std::mem::take(&mut stats.ttfc);
        percentiles(&mut out, "ttfc_", ttfc);
    }
    Value::Object(out)
}

fn percentiles(out: &mut Map<String, Value>, prefix: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    let ms = |ns: u64| round(ns as f64 / 1e6, 3);
    let at = |p: f64| -> Value {
        if samples.is_empty() {
            return Value::Null;
        }
        // Nearest rank.
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        json!(ms(samples[rank.clamp(1, samples.len()) - 1]))
    };
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
        out.insert(format!("{prefix}{name}_ms"), at(p));
    }
    out.insert(format!("{prefix}max_ms"), at(100.0));
    let mean = if samples.is_empty() {
        Value::Null
    } else {
        json!(ms(samples.iter().sum::<u64>() / samples.len() as u64))
    };
    out.insert(format!("{prefix}mean_ms"), mean);
    out.insert(format!("{prefix}samples"), json!(samples.len()));
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
