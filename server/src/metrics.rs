//! Prometheus metrics: RPC counts and latencies by method and status code, database pool usage,
//! MediaMTX convergence, each AI adapter's frames, failures and latency, and the built-in motion
//! detectors' work.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Labels of an RPC observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

/// Labels of an adapter's series: its name and id (a re-created adapter is a new series).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdapterLabels {
    pub adapter: String,
    pub adapter_id: String,
}

/// Labels of an adapter's frames by what became of them.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdapterOutcomeLabels {
    pub adapter: String,
    pub adapter_id: String,
    /// succeeded, failed, timeout, dropped (queue full) or rejected (circuit open).
    pub outcome: String,
}

/// Labels of an adapter's latency quantile.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdapterQuantileLabels {
    pub adapter: String,
    pub adapter_id: String,
    pub quantile: String,
}

/// Per-adapter series, rebuilt from the bulkheads' own counters at every scrape.
#[derive(Clone, Default)]
struct AdapterSeries {
    /// Serialises scrapes: a rebuild clears and refills the families.
    rebuild: Arc<std::sync::Mutex<()>>,
    sent: Family<AdapterLabels, Counter>,
    frames: Family<AdapterOutcomeLabels, Counter>,
    in_flight: Family<AdapterLabels, Gauge>,
    queued: Family<AdapterLabels, Gauge>,
    up: Family<AdapterLabels, Gauge>,
    latency: Family<AdapterQuantileLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl AdapterSeries {
    fn register(&self, registry: &mut Registry) {
        registry.register("adapter_frames_sent", "Frames submitted to each AI adapter's bulkhead", self.sent.clone());
        registry.register(
            "adapter_frames",
            "Frames by outcome: succeeded, failed, timeout, dropped (queue full), rejected (circuit open)",
            self.frames.clone(),
        );
        registry.register("adapter_in_flight", "Calls in flight to each adapter", self.in_flight.clone());
        registry.register("adapter_queued", "Frames waiting in each adapter's bulkhead", self.queued.clone());
        registry.register("adapter_up", "1 when the adapter is healthy or degraded", self.up.clone());
        registry.register(
            "adapter_latency_seconds",
            "Adapter call latency over a recent window (quantile 0.5 and 0.95)",
            self.latency.clone(),
        );
    }

    fn set(&self, adapters: &[crate::inference::AdapterFigures]) {
        use crate::domain::inference::Health;
        let _guard = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        self.sent.clear();
        self.frames.clear();
        self.in_flight.clear();
        self.queued.clear();
        self.up.clear();
        self.latency.clear();
        for a in adapters {
            let labels = AdapterLabels { adapter: a.name.clone(), adapter_id: a.id.to_string() };
            let c = &a.counters;
            self.sent.get_or_create(&labels).inc_by(c.requests);
            for (outcome, n) in [
                ("succeeded", c.succeeded),
                ("failed", c.failed),
                ("timeout", c.timeouts),
                ("dropped", c.dropped),
                ("rejected", c.rejected),
            ] {
                let l = AdapterOutcomeLabels {
                    adapter: labels.adapter.clone(),
                    adapter_id: labels.adapter_id.clone(),
                    outcome: outcome.to_owned(),
                };
                self.frames.get_or_create(&l).inc_by(n);
            }
            self.in_flight.get_or_create(&labels).set(c.in_flight as i64);
            self.queued.get_or_create(&labels).set(c.queued as i64);
            self.up.get_or_create(&labels).set(i64::from(matches!(a.health, Health::Healthy | Health::Degraded)));
            for (q, ms) in [("0.5", c.latency_p50_ms), ("0.95", c.latency_p95_ms)] {
                if let Some(ms) = ms {
                    let l = AdapterQuantileLabels {
                        adapter: labels.adapter.clone(),
                        adapter_id: labels.adapter_id.clone(),
                        quantile: q.to_owned(),
                    };
                    self.latency.get_or_create(&l).set(ms / 1000.0);
                }
            }
        }
    }
}

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    motion: crate::inference::motion::MotionMetrics,
    rpcs: Family<RpcLabels, Counter>,
    latency: Family<RpcLabels, Histogram>,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_max: Gauge,
    pool_waiting: Gauge,
    password_hashes: Gauge,
    media_reachable: Gauge,
    media_pending: Gauge,
    media_last_sync: Gauge,
    media_writes: Gauge,
    adapters: AdapterSeries,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("opennvr");
        let rpcs = Family::<RpcLabels, Counter>::default();
        let latency = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 14))
        });
        let (pool_size, pool_available, pool_max, pool_waiting) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("rpc_requests", "gRPC calls by method and status code", rpcs.clone());
        registry.register(
            "rpc_duration_seconds",
            "gRPC call latency to response headers, by method and status code",
            latency.clone(),
        );
        registry.register("db_pool_connections", "Open database connections", pool_size.clone());
        registry.register("db_pool_available", "Idle database connections", pool_available.clone());
        registry.register("db_pool_max_connections", "Database pool capacity", pool_max.clone());
        registry.register("db_pool_waiting", "Tasks waiting for a database connection", pool_waiting.clone());
        let password_hashes = Gauge::default();
        registry.register(
            "password_hashes_in_flight",
            "argon2id hashes being computed or queued",
            password_hashes.clone(),
        );
        let (media_reachable, media_pending, media_last_sync, media_writes) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("media_reachable", "1 when MediaMTX answered the last attempt", media_reachable.clone());
        registry.register("media_pending_changes", "Camera changes not yet applied in MediaMTX", media_pending.clone());
        registry.register(
            "media_last_sync_timestamp_seconds",
            "End of the last complete convergence of MediaMTX (Unix time)",
            media_last_sync.clone(),
        );
        registry.register(
            "media_config_writes",
            "Path config writes sent to MediaMTX since start",
            media_writes.clone(),
        );
        let adapters = AdapterSeries::default();
        adapters.register(&mut registry);
        let motion = crate::inference::motion::MotionMetrics::default();
        registry.register(
            "motion_frames",
            "Frames analysed by each camera's built-in motion detector",
            motion.frames.clone(),
        );
        registry.register(
            "motion_analysis_seconds",
            "Server time the motion detectors spent on frames (decoding and comparing)",
            motion.seconds.clone(),
        );
        registry.register("motion_episodes", "Motion episodes stored", motion.episodes.clone());
        registry.register(
            "adapter_frames_gated",
            "Frames of motion-gated bindings not sent to their adapter: no motion then",
            motion.gated.clone(),
        );
        Self {
            registry: Arc::new(registry),
            motion,
            adapters,
            media_reachable,
            media_pending,
            media_last_sync,
            media_writes,
            rpcs,
            latency,
            pool_size,
            pool_available,
            pool_max,
            pool_waiting,
            password_hashes,
        }
    }

    /// The motion detectors' counters, for the frame router to update.
    pub fn motion(&self) -> crate::inference::motion::MotionMetrics {
        self.motion.clone()
    }

    /// The gauge of password hashes in flight, for the hasher pool to update.
    pub fn password_hashes_in_flight(&self) -> Gauge {
        self.password_hashes.clone()
    }

    /// Records one finished call.
    pub fn observe_rpc(&self, method: &str, code: &str, seconds: f64) {
        let labels = RpcLabels { method: method.to_owned(), code: code.to_owned() };
        self.rpcs.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// Renders the Prometheus text format, with pool usage and adapter figures read now.
    pub fn render(
        &self,
        pool: Option<crate::store::PoolUsage>,
        media: Option<&crate::media::plane::SyncState>,
        adapters: &[crate::inference::AdapterFigures],
    ) -> String {
        self.adapters.set(adapters);
        if let Some(m) = media.filter(|m| m.configured) {
            self.media_reachable.set(i64::from(m.reachable));
            self.media_pending.set(m.pending as i64);
            self.media_last_sync.set(m.last_sync.map(|t| t.timestamp()).unwrap_or(0));
            self.media_writes.set(m.writes as i64);
        }
        if let Some(p) = pool {
            self.pool_size.set(p.size as i64);
            self.pool_available.set(p.available as i64);
            self.pool_max.set(p.max_size as i64);
            self.pool_waiting.set(p.waiting as i64);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}
