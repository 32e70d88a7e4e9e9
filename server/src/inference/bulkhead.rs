//! The bulkhead in front of one adapter: a bounded queue that drops its oldest frame when full, a
//! fixed number of workers (the concurrency limit), a timeout per call, and a circuit breaker that
//! opens after consecutive failures and half-opens after a cool-down. Whatever an adapter does —
//! hang, crawl, crash, answer garbage — only its own frames wait or fail.
use super::client::{AdapterClient, CallError};
use crate::clock::SharedClock;
use crate::domain::inference::Finding;
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

/// Consecutive failures that open the circuit.
pub const TRIP_AFTER: u32 = 5;
/// How long an open circuit refuses calls before a trial call.
pub const COOL_DOWN_SECS: i64 = 30;

/// One frame to analyse.
#[derive(Debug)]
pub struct Job {
    pub jpeg: Vec<u8>,
    pub task: String,
    pub camera_id: Option<Uuid>,
    pub frame_time: Option<DateTime<Utc>>,
    pub reply: oneshot::Sender<Result<Vec<Finding>, Refusal>>,
}

/// Why a frame got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The queue was full and this frame was the oldest (or there is no queue and every worker is busy).
    Dropped,
    /// The circuit is open: the adapter is not called until `until`.
    CircuitOpen { until: DateTime<Utc> },
    /// The call was made and failed.
    Call(CallError),
    /// The adapter is being reconfigured or removed.
    Closed,
}

pub use crate::domain::inference::Circuit;

/// Counters since start, and the recent latencies.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub rejected: AtomicU64,
    pub timeouts: AtomicU64,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Job>,
    busy: usize,
    circuit: Circuit,
    failures: u32,
    /// A half-open circuit lets one trial call through at a time.
    trial_running: bool,
    closed: bool,
    latencies_ms: VecDeque<f64>,
    last_error: Option<(String, DateTime<Utc>)>,
    last_success: Option<DateTime<Utc>>,
}

/// What the bulkhead looks like now.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub circuit: Circuit,
    pub in_flight: usize,
    pub queued: usize,
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub timeouts: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub last_error: Option<(String, DateTime<Utc>)>,
    pub last_success: Option<DateTime<Utc>>,
}

/// The bulkhead of one adapter.
pub struct Bulkhead {
    state: Mutex<State>,
    work: Notify,
    pub counters: Counters,
    workers: usize,
    /// Calls in flight at most: the workers, or fewer when the adapter takes fewer at once.
    limit: std::sync::atomic::AtomicUsize,
    max_queue: usize,
    clock: SharedClock,
}

impl std::fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead").field("max_queue", &self.max_queue).finish_non_exhaustive()
    }
}

impl Bulkhead {
    /// A bulkhead of `workers` in flight and `max_queue` waiting in front of `client`; the workers
    /// run until [`Bulkhead::close`].
    pub fn start(client: AdapterClient, workers: usize, max_queue: usize, clock: SharedClock) -> Arc<Bulkhead> {
        let b = Arc::new(Bulkhead {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                busy: 0,
                circuit: Circuit::Closed,
                failures: 0,
                trial_running: false,
                closed: false,
                latencies_ms: VecDeque::new(),
                last_error: None,
                last_success: None,
            }),
            work: Notify::new(),
            counters: Counters::default(),
            workers: workers.max(1),
            limit: std::sync::atomic::AtomicUsize::new(workers.max(1)),
            max_queue,
            clock,
        });
        for _ in 0..workers.max(1) {
            let (b, client) = (b.clone(), client.clone());
            tokio::spawn(async move { b.work(client).await });
        }
        b
    }

    /// Caps the calls in flight at what the adapter says it takes at once (`max_in_flight`;
    /// 0: no word, the workers' count stands).
    pub fn set_max_in_flight(&self, max_in_flight: usize) {
        let limit = if max_in_flight == 0 { self.workers } else { max_in_flight.min(self.workers) };
        if self.limit.swap(limit, Ordering::Relaxed) < limit {
            self.work.notify_waiters();
        }
    }

    /// Calls in flight at most now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a frame over: it waits its turn, pushing out the oldest waiting frame when the queue
    /// is full. An open circuit refuses it at once.
    pub fn submit(&self, job: Job) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let mut st = self.lock();
        if st.closed {
            drop(st);
            let _ = job.reply.send(Err(Refusal::Closed));
            return;
        }
        if let Circuit::Open { until } = st.circuit {
            if now < until {
                drop(st);
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                let _ = job.reply.send(Err(Refusal::CircuitOpen { until }));
                return;
            }
            st.circuit = Circuit::HalfOpen;
        }
        // Without a queue a frame is taken only when a worker is free for it.
        if self.max_queue == 0 && st.busy + st.queue.len() >= self.limit() {
            drop(st);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(Err(Refusal::Dropped));
            return;
        }
        let mut pushed_out = None;
        if self.max_queue > 0 && st.queue.len() >= self.max_queue {
            pushed_out = st.queue.pop_front();
        }
        st.queue.push_back(job);
        drop(st);
        if let Some(old) = pushed_out {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = old.reply.send(Err(Refusal::Dropped));
        }
        self.work.notify_one();
    }

    /// Stops taking frames; waiting ones are answered `Closed`, the workers end.
    pub fn close(&self) {
        let waiting: Vec<Job> = {
            let mut st = self.lock();
            st.closed = true;
            st.queue.drain(..).collect()
        };
        for j in waiting {
            let _ = j.reply.send(Err(Refusal::Closed));
        }
        self.work.notify_waiters();
    }

    /// The state now.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        let mut lat: Vec<f64> = st.latencies_ms.iter().copied().collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied();
        let circuit = match st.circuit {
            Circuit::Open { until } if self.clock.now() >= until => Circuit::HalfOpen,
            c => c,
        };
        Snapshot {
            circuit,
            in_flight: st.busy,
            queued: st.queue.len(),
            requests: self.counters.requests.load(Ordering::Relaxed),
            succeeded: self.counters.succeeded.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            timeouts: self.counters.timeouts.load(Ordering::Relaxed),
            latency_p50_ms: if lat.is_empty() { None } else { pct(0.5) },
            latency_p95_ms: if lat.is_empty() { None } else { pct(0.95) },
            last_error: st.last_error.clone(),
            last_success: st.last_success,
        }
    }

    /// The next frame for a worker: queued, and allowed by the circuit. `None` once closed.
    async fn next(&self) -> Option<Job> {
        loop {
            let notified = self.work.notified();
            {
                let mut st = self.lock();
                if st.closed {
                    return None;
                }
                let trial_blocked = st.circuit == Circuit::HalfOpen && st.trial_running;
                if !trial_blocked
                    && st.busy < self.limit()
                    && let Some(job) = st.queue.pop_front()
                {
                    if st.circuit == Circuit::HalfOpen {
                        st.trial_running = true;
                    }
                    st.busy += 1;
                    return Some(job);
                }
            }
            notified.await;
        }
    }

    async fn work(self: Arc<Self>, client: AdapterClient) {
        while let Some(job) = self.next().await {
            let now = self.clock.now();
            // A circuit that opened while this frame waited refuses it.
            let open = match self.lock().circuit {
                Circuit::Open { until } if now < until => Some(until),
                _ => None,
            };
            let outcome = match open {
                Some(until) => {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    Err(Refusal::CircuitOpen { until })
                }
                None => {
                    let started = std::time::Instant::now();
                    let r = client.infer(job.jpeg, &job.task, job.camera_id, job.frame_time).await;
                    self.record(&r, started.elapsed());
                    r.map_err(Refusal::Call)
                }
            };
            self.lock().busy -= 1;
            let _ = job.reply.send(outcome);
            self.work.notify_one();
        }
    }

    /// Counts an outcome and moves the circuit.
    fn record(&self, r: &Result<Vec<Finding>, CallError>, took: std::time::Duration) {
        let now = self.clock.now();
        let mut st = self.lock();
        st.trial_running = false;
        match r {
            Ok(_) => {
                self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
                st.failures = 0;
                st.circuit = Circuit::Closed;
                st.last_success = Some(now);
                st.latencies_ms.push_back(took.as_secs_f64() * 1000.0);
                if st.latencies_ms.len() > 200 {
                    st.latencies_ms.pop_front();
                }
            }
            Err(e @ CallError::Rejected(_)) => {
                // The adapter answered as the contract says; only the frame was wrong.
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                st.last_error = Some((e.to_string(), now));
                st.failures = 0;
                st.circuit = Circuit::Closed;
            }
            Err(e) => {
                if *e == CallError::Timeout {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                st.failures += 1;
                st.last_error = Some((e.to_string(), now));
                if st.circuit == Circuit::HalfOpen || st.failures >= TRIP_AFTER {
                    st.circuit = Circuit::Open { until: now + Duration::seconds(COOL_DOWN_SECS) };
                }
            }
        }
    }
}
