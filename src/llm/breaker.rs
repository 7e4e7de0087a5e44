//! A route target's circuit breaker: closed → (N consecutive failures) → open → (cool-down) →
//! half-open, one probe → closed on success, open again on failure.
//!
//! Lock-free (three atomics): every call on a route reads its targets' breakers, and a mutex
//! here would be a lock every request of a popular route takes.
//!
//! Only failures of the route's fallback classes count (429, 5xx, timeouts, connection
//! errors by default): a client's 400 says nothing about the target's health. A probe whose
//! client went away neither closes nor reopens the circuit; another probe is let through once a
//! cool-down has passed since it started, so a lost probe cannot hold the circuit half-open.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::IntGauge;

use crate::config::BreakerSettings;

/// The `llm_route_target_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BreakerState {
    /// Calls go through.
    Closed = 0,
    /// The target is skipped until the cool-down ends.
    Open = 1,
    /// One probe is in flight; others skip the target.
    HalfOpen = 2,
}

/// Whether a call may use the target now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go.
    Pass,
    /// Half-open: this call is the probe.
    Probe,
    /// Open (or a probe is in flight): skip it; it may be probed after this long.
    Skip(Duration),
}

/// One target's breaker.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    /// Open: when a probe may go (ms since `epoch`). Half-open: when the probe counts as lost.
    until_ms: AtomicU64,
    epoch: Instant,
    /// `llm_route_target_state{route, provider, model}`.
    gauge: IntGauge,
}

impl Breaker {
    /// A closed breaker reporting its state to `gauge`.
    pub fn new(settings: BreakerSettings, gauge: IntGauge) -> Self {
        gauge.set(BreakerState::Closed as i64);
        Self {
            settings,
            state: AtomicU8::new(BreakerState::Closed as u8),
            consecutive_failures: AtomicU32::new(0),
            until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            gauge,
        }
    }

    /// The same breaker state under new settings and a gauge (a reloaded configuration keeps
    /// what it knows of a target that is still there).
    pub fn carry_over(&self, settings: BreakerSettings, gauge: IntGauge) -> Self {
        let state = self.state.load(Ordering::Acquire);
        gauge.set(i64::from(state));
        Self {
            settings,
            state: AtomicU8::new(state),
            consecutive_failures: AtomicU32::new(self.consecutive_failures.load(Ordering::Relaxed)),
            until_ms: AtomicU64::new(self.until_ms.load(Ordering::Acquire)),
            epoch: self.epoch,
            gauge,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn cooldown_ms(&self) -> u64 {
        u64::try_from(self.settings.cooldown.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    fn set(&self, from: BreakerState, to: BreakerState) -> bool {
        let swapped = self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if swapped {
            self.gauge.set(to as i64);
        }
        swapped
    }

    /// Whether this call may use the target.
    pub fn admit(&self) -> Admission {
        if !self.settings.enabled {
            return Admission::Pass;
        }
        match self.state() {
            BreakerState::Closed => Admission::Pass,
            state => {
                let now = self.now_ms();
                let until = self.until_ms.load(Ordering::Acquire);
                if now < until {
                    return Admission::Skip(Duration::from_millis(until - now));
                }
                // Cool-down over (open), or the probe is lost (half-open): this call probes.
                let probe_until = now.saturating_add(self.cooldown_ms());
                if self
                    .until_ms
                    .compare_exchange(until, probe_until, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    // Another call took the probe.
                    return Admission::Skip(Duration::from_millis(self.cooldown_ms()));
                }
                if state == BreakerState::Open {
                    self.set(BreakerState::Open, BreakerState::HalfOpen);
                }
                Admission::Probe
            }
        }
    }

    /// The target answered (or refused the client's request, which says it is up).
    pub fn succeed(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.state() != BreakerState::Closed {
            self.set(BreakerState::HalfOpen, BreakerState::Closed);
            self.set(BreakerState::Open, BreakerState::Closed);
        }
    }

    /// The target failed in one of the route's fallback classes.
    pub fn fail(&self) {
        if !self.settings.enabled {
            return;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let reopen = match self.state() {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => failures >= self.settings.failure_threshold,
            BreakerState::Open => false,
        };
        if reopen {
            self.until_ms
                .store(self.now_ms() + self.cooldown_ms(), Ordering::Release);
            if !self.set(BreakerState::HalfOpen, BreakerState::Open) {
                self.set(BreakerState::Closed, BreakerState::Open);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cooldown_ms: u64) -> (Breaker, IntGauge) {
        let gauge = IntGauge::new("state", "state").unwrap();
        let settings = BreakerSettings {
            enabled: true,
            failure_threshold: threshold,
            cooldown: Duration::from_millis(cooldown_ms),
        };
        (Breaker::new(settings, gauge.clone()), gauge)
    }

    #[test]
    fn opens_after_n_consecutive_failures_probes_once_and_closes_on_success() {
        let (b, gauge) = breaker(3, 50);
        b.fail();
        b.fail();
        b.succeed();
        b.fail();
        b.fail();
        assert_eq!(b.admit(), Admission::Pass, "a success resets the count");
        b.fail();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(gauge.get(), 1);
        assert!(matches!(b.admit(), Admission::Skip(d) if d <= Duration::from_millis(50)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(gauge.get(), 2);
        assert!(
            matches!(b.admit(), Admission::Skip(_)),
            "one probe at a time"
        );
        b.succeed();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(gauge.get(), 0);
        assert_eq!(b.admit(), Admission::Pass);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_lost_probe_is_replaced() {
        let (b, gauge) = breaker(1, 30);
        b.fail();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Admission::Probe);
        b.fail();
        assert_eq!((b.state(), gauge.get()), (BreakerState::Open, 1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Admission::Probe);
        // That probe's client went away: nothing is reported; after a cool-down, another goes.
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Admission::Probe);
        b.succeed();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_disabled_breaker_never_skips() {
        let gauge = IntGauge::new("s", "s").unwrap();
        let b = Breaker::new(
            BreakerSettings {
                enabled: false,
                failure_threshold: 1,
                cooldown: Duration::from_secs(60),
            },
            gauge,
        );
        for _ in 0..10 {
            b.fail();
        }
        assert_eq!(b.admit(), Admission::Pass);
    }
}
