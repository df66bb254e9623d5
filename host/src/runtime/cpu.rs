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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The lanes long-running invocations share, so they can't take every core from short ones.
///
/// An invocation that has used more than `after` of CPU is long-running: from then on, at every
/// epoch tick it gives up its lane and queues (FIFO) for one again before its next slice. At most
/// `lanes` long-running guests compute at once — by default half the machine's cores — whatever
/// plugins they belong to, so requests that finish in a few milliseconds always find a core free.
#[derive(Debug, Clone)]
pub struct CpuLanes {
    lanes: Arc<Semaphore>,
    after: Duration,
}

/// The lane an invocation holds while it computes (empty until it is long-running).
pub type HeldLane = Arc<Mutex<Option<OwnedSemaphorePermit>>>;

impl CpuLanes {
    /// `lanes` long-running guests at once (0: half the cores, at least one), long-running after
    /// `after` of CPU.
    pub fn new(lanes: u32, after: Duration) -> Self {
        let lanes = match lanes {
            0 => std::thread::available_parallelism()
                .map(|n| n.get() / 2)
                .unwrap_or(1)
                .max(1),
            n => n as usize,
        };
        Self {
            lanes: Arc::new(Semaphore::new(lanes)),
            after,
        }
    }

    /// Whether an invocation that used `cpu` is long-running.
    pub fn is_long_running(&self, cpu: Duration) -> bool {
        cpu >= self.after
    }

    /// Gives up `held`'s lane and waits for one again (the next slice's).
    pub fn requeue(&self, held: &HeldLane) -> impl Future<Output = ()> + Send + 'static {
        drop(held.lock().unwrap_or_else(|e| e.into_inner()).take());
        let lanes = self.lanes.clone();
        let held = held.clone();
        async move {
            if let Ok(permit) = lanes.acquire_owned().await {
                *held.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
            }
        }
    }

    /// Lanes free now.
    pub fn available(&self) -> usize {
        self.lanes.available_permits()
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

    #[tokio::test]
    async fn long_running_work_takes_turns_on_the_lanes() {
        let lanes = CpuLanes::new(1, Duration::from_millis(20));
        assert!(!lanes.is_long_running(Duration::from_millis(5)));
        assert!(lanes.is_long_running(Duration::from_millis(20)));
        let (a, b): (HeldLane, HeldLane) = Default::default();
        lanes.requeue(&a).await;
        assert_eq!(lanes.available(), 0, "a holds the only lane");
        let waiting = tokio::spawn(lanes.requeue(&b));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "b waits while a computes");
        let back = lanes.requeue(&a);
        waiting.await.unwrap();
        assert!(
            b.lock().unwrap().is_some(),
            "a's turn ended: b got the lane"
        );
        let back = tokio::spawn(back);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!back.is_finished(), "a queues behind b");
        drop(b.lock().unwrap().take());
        back.await.unwrap();
        assert!(a.lock().unwrap().is_some());
    }
}
