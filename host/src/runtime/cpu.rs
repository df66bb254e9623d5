//! CPU time per invocation, measured on the threads that run it.
//!
//! An invocation's future may move between worker threads, so [`CpuMeter`] reads the running
//! thread's CPU clock at the start and end of every poll and adds up the differences. The epoch
//! callback reads it mid-poll ([`CpuMeter::used`]) to stop a guest that spends its budget, however
//! long the wall-clock deadline is. Host functions that compute on the guest's behalf during a
//! poll count too; waiting (for the database, the network, a permit) doesn't.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The CPU time spent by one invocation so far.
#[derive(Debug, Default)]
pub struct CpuMeter {
    used_ns: AtomicU64,
    /// The thread CPU clock when the current poll started; 0 between polls.
    poll_started_ns: AtomicU64,
}

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

impl CpuMeter {
    /// CPU time used so far, including the poll in progress when called from inside it.
    pub fn used(&self) -> Duration {
        let mut ns = self.used_ns.load(Ordering::Relaxed);
        let started = self.poll_started_ns.load(Ordering::Relaxed);
        if started != 0 {
            ns += thread_cpu_ns().saturating_sub(started);
        }
        Duration::from_nanos(ns)
    }

    /// Runs `future`, adding the CPU time of each of its polls to this meter.
    pub async fn measure<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            let start = thread_cpu_ns().max(1);
            self.poll_started_ns.store(start, Ordering::Relaxed);
            let result = future.as_mut().poll(cx);
            let spent = thread_cpu_ns().saturating_sub(start);
            self.poll_started_ns.store(0, Ordering::Relaxed);
            self.used_ns.fetch_add(spent, Ordering::Relaxed);
            result
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_computing_not_waiting() {
        let meter = CpuMeter::default();
        meter
            .measure(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(30) {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                std::hint::black_box(x);
            })
            .await;
        let used = meter.used();
        assert!(
            used >= Duration::from_millis(20),
            "busy time counted: {used:?}"
        );
        assert!(
            used < Duration::from_millis(70),
            "sleeping not counted: {used:?}"
        );
    }
}
