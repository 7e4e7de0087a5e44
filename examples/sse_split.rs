//! The SSE splitter's cost on one large event: a `data:` event of just under 4 MiB (the
//! per-event limit) arriving in 16 KiB reads, as a slow upstream would send it.
//!
//! ```text
//! cargo run --release --example sse_split -- [--rounds 20]
//! ```
//!
//! Prints the time per event (one thread, no I/O: time is CPU time). BENCHMARKS.md records it.

use std::time::Instant;

use llm_observability::llm::sse::{MAX_EVENT_BYTES, SseSplitter};

fn main() {
    let rounds: u32 = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .map_or(20, |n| n.parse().expect("--rounds takes a number"));
    let mut event = b"data: ".to_vec();
    event.resize(MAX_EVENT_BYTES - 2, b'x');
    event.extend_from_slice(b"\n\n");
    let started = Instant::now();
    for _ in 0..rounds {
        let mut splitter = SseSplitter::default();
        let mut events = 0;
        for chunk in event.chunks(16 * 1024) {
            events += splitter.push(chunk).expect("within the limit").len();
        }
        assert_eq!(events, 1);
    }
    let per_event = started.elapsed() / rounds;
    println!(
        "{} KiB event in 16 KiB reads: {:.3} ms per event ({rounds} rounds)",
        event.len() / 1024,
        per_event.as_secs_f64() * 1e3
    );
}
