//! `LLM_MAX_CONCURRENCY`: at most N upstream calls at once, a bounded queue of waiters, and a
//! bounded wait; beyond that the call is refused as `overloaded` (503 with Retry-After) rather
//! than piling up memory and latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The concurrency limit; `None` inside means unlimited.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// A held slot; released on drop.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl ConcurrencyLimit {
    /// `max_concurrency` 0 means unlimited.
    pub fn new(max_concurrency: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            slots: (max_concurrency > 0).then(|| Arc::new(Semaphore::new(max_concurrency))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// A slot now, or after waiting in the bounded queue; `None` when overloaded.
    pub async fn acquire(&self) -> Option<Slot> {
        let Some(slots) = &self.slots else {
            return Some(Slot(None));
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Some(Slot(Some(permit)));
        }
        let admitted = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_waiting).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return None;
        }
        // Leaves the queue however this ends, cancellation included.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.max_wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(Slot(Some(permit))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_slots_plus_queue_and_admits_again_when_freed() {
        let limit = Arc::new(ConcurrencyLimit::new(1, 1, Duration::from_secs(5)));
        let first = limit.acquire().await.expect("a free slot");
        let queued = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire().await.is_some() }
        });
        while limit.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(limit.acquire().await.is_none(), "queue full: refused");
        drop(first);
        assert!(
            queued.await.unwrap(),
            "the queued caller gets the freed slot"
        );
    }

    #[tokio::test]
    async fn a_bounded_wait_ends_in_refusal() {
        let limit = ConcurrencyLimit::new(1, 10, Duration::from_millis(20));
        let _held = limit.acquire().await.unwrap();
        assert!(limit.acquire().await.is_none());
    }
}
