//! The per-client rate limiter under a flood of distinct clients: memory for 1,000,000
//! tracked addresses, the cost of one check, and of forgetting idle clients.
//!
//! ```text
//! cargo run --release --example limiter_memory -- [--clients 1000000]
//! ```
//!
//! Prints resident memory before and after (from /proc/self/statm), so run it alone.
//! BENCHMARKS.md records the figures.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use llm_observability::api::middleware::{ClientIdentity, ClientRateLimit};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let clients: u32 = std::env::args()
        .skip_while(|a| a != "--clients")
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("--clients takes a number"));
    // One request per second with a burst of 10: every bucket stays "recent" for 10 s.
    let limit = ClientRateLimit::new(1.0, 10.0, &[]);
    let buckets = limit.buckets().expect("the limit is on");
    let before = rss_bytes();
    let started = Instant::now();
    for i in 0..clients {
        let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        assert!(buckets.check(ClientIdentity::Address(ip)).is_ok());
    }
    let per_check = started.elapsed() / clients;
    let after = rss_bytes();
    let started = Instant::now();
    let tracked = buckets.forget_idle();
    let sweep = started.elapsed();
    println!(
        "{clients} distinct clients: RSS +{:.1} MiB ({:.0} bytes per client), {:.0} ns per new-client check, \
         sweep of {tracked} recent clients {:.1} ms",
        (after - before) as f64 / (1 << 20) as f64,
        (after - before) as f64 / f64::from(clients),
        per_check.as_nanos(),
        sweep.as_secs_f64() * 1e3
    );
    std::thread::sleep(Duration::from_millis(10));
}
