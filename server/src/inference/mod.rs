//! AI inference routing: the registry of adapters (external HTTP model services), each behind its
//! own bulkhead, their health, and where an adapter may live (loopback and private networks unless
//! the operator allows remote ones).
pub mod bulkhead;
pub mod client;
pub mod frames;
pub mod motion;
pub mod router;

use crate::bus::EventBus;
use crate::clock::SharedClock;
use crate::domain::event::{EventKind, SiteEvent};
pub use crate::domain::inference::Health;
use crate::error::{Error, ErrorKind, Result};
use crate::security::seal::{MasterKey, Sealed};
use crate::store::Store;
use crate::store::inference::{AdapterCapabilities, AdapterRow};
use bulkhead::{Bulkhead, Circuit, Snapshot};
use client::AdapterClient;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use uuid::Uuid;

/// How often adapters are asked for their health.
pub const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The owner string the token of adapter `id` is sealed for.
pub fn token_owner(id: Uuid) -> String {
    format!("adapters/{id}/token")
}

/// Whether `ip` is on this host or a private network.
fn local_or_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

/// Looks up the addresses of a host name.
pub type Lookup = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        + Send
        + Sync,
>;

/// Where adapters may live, and the HTTP client that reaches them only there: every connection
/// goes to an address checked at that moment (a name that resolves elsewhere the next time is
/// refused, not followed), redirects are never followed, and an adapter URL carries no query,
/// fragment or credentials.
#[derive(Clone)]
pub struct AdapterNetwork {
    /// Adapters may live beyond this host and its private networks.
    allow_remote: bool,
    lookup: Lookup,
}

impl std::fmt::Debug for AdapterNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterNetwork").field("allow_remote", &self.allow_remote).finish()
    }
}

/// The addresses of `host` an adapter may be reached at: all of them with `allow_remote`, else the
/// loopback and private ones — none when any is neither (a name must not half lead outside).
fn allowed(addrs: Vec<IpAddr>, allow_remote: bool) -> Vec<IpAddr> {
    if allow_remote || addrs.iter().all(|ip| local_or_private(*ip)) { addrs } else { Vec::new() }
}

/// The resolver of the adapters' HTTP client: [`allowed`] addresses only.
struct CheckedResolver(AdapterNetwork);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let network = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = allowed((network.lookup)(host.clone()).await?, network.allow_remote);
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no address on this host or a private network (remote adapters need OPENNVR_INFERENCE_ALLOW_REMOTE=true)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter().map(|ip| std::net::SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

impl AdapterNetwork {
    /// Names resolved by the system's resolver.
    pub fn system(allow_remote: bool) -> AdapterNetwork {
        let lookup: Lookup = Arc::new(|host: String| {
            Box::pin(async move {
                Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect::<Vec<_>>())
            })
        });
        AdapterNetwork { allow_remote, lookup }
    }

    /// Names resolved by `lookup` (tests: a name that answers differently each time).
    pub fn with_lookup(allow_remote: bool, lookup: Lookup) -> AdapterNetwork {
        AdapterNetwork { allow_remote, lookup }
    }

    /// The HTTP client of adapters: checked addresses, no redirects, no proxy from the environment.
    /// Fails rather than fall back to a client without those.
    pub fn client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .user_agent(concat!("opennvr/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(CheckedResolver(self.clone()))
            .build()
            .map_err(|e| Error::internal(format!("the AI adapters' HTTP client: {e}")))
    }

    /// Checks an adapter URL: http(s), no credentials, query or fragment, and every address of its
    /// host loopback or private unless remote adapters are allowed. The message names `field`.
    pub async fn check_endpoint(&self, field: &'static str, url: &str) -> Result<()> {
        let parsed = url::Url::parse(url).map_err(|_| Error::invalid(field, format!("{field} is not a URL")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::invalid(field, format!("{field} must be http:// or https://")));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::invalid(
                field,
                format!("{field} must not carry credentials (give the token separately)"),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::invalid(
                field,
                format!(
                    "{field} must not have a query string or fragment: it is the base the contract's paths go under"
                ),
            ));
        }
        let host = parsed.host_str().ok_or_else(|| Error::invalid(field, format!("{field} has no host")))?;
        if self.allow_remote {
            return Ok(());
        }
        let host = host.trim_matches(['[', ']']).to_owned();
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (self.lookup)(host.clone())
                .await
                .map_err(|e| Error::invalid(field, format!("{field}: {host} does not resolve: {e}")))?,
        };
        if allowed(addrs, false).is_empty() {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "{field}: {host} is not on this host or a private network; remote adapters need OPENNVR_INFERENCE_ALLOW_REMOTE=true"
                ),
            ));
        }
        Ok(())
    }
}

/// Whether a stored adapter token may go to `next`: only to the exact scheme, host and port it was
/// given for at `given`.
pub fn same_origin(given: &str, next: &str) -> bool {
    let origin = |u: &str| {
        url::Url::parse(u)
            .ok()
            .map(|u| (u.scheme().to_owned(), u.host_str().map(str::to_owned), u.port_or_known_default()))
    };
    origin(given).is_some() && origin(given) == origin(next)
}

/// One adapter at run time.
pub struct AdapterRuntime {
    pub id: Uuid,
    pub name: String,
    pub enabled: bool,
    pub max_concurrency: i32,
    pub max_queue: i32,
    pub bulkhead: Arc<Bulkhead>,
    client: AdapterClient,
    /// The row's version it was built from.
    version: i64,
    probe: Mutex<Probe>,
    /// What the adapter last said of itself (taken up before its probe counts as done, so that a
    /// healthy adapter is never shown without it).
    learned: Mutex<AdapterCapabilities>,
}

/// The last health probe.
#[derive(Debug, Clone, Default)]
struct Probe {
    done: bool,
    ok: bool,
    error: Option<(String, chrono::DateTime<chrono::Utc>)>,
    reported: Option<Health>,
}

impl AdapterRuntime {
    /// Health now: disabled, probe failing or circuit open → unhealthy, half-open → degraded.
    pub fn health(&self) -> Health {
        let probe = self.probe.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !self.enabled {
            return Health::Disabled;
        }
        match self.bulkhead.snapshot().circuit {
            Circuit::Open { .. } => return Health::Unhealthy,
            Circuit::HalfOpen => return Health::Degraded,
            Circuit::Closed => {}
        }
        match (probe.done, probe.ok) {
            (false, _) => Health::Unknown,
            (true, true) => Health::Healthy,
            (true, false) => Health::Unhealthy,
        }
    }

    /// `task`, or when empty the first task the adapter last said it runs (empty: not known yet).
    pub fn task_or_first(&self, task: &str) -> String {
        if !task.is_empty() {
            return task.to_owned();
        }
        self.learned.lock().unwrap_or_else(|e| e.into_inner()).tasks.first().cloned().unwrap_or_default()
    }

    /// What the adapter last said of itself.
    pub fn capabilities(&self) -> AdapterCapabilities {
        self.learned.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes up what the adapter said of itself: its tasks, and how many calls it takes at once.
    fn learn(&self, caps: &AdapterCapabilities) {
        *self.learned.lock().unwrap_or_else(|e| e.into_inner()) = caps.clone();
        self.bulkhead.set_max_in_flight(usize::try_from(caps.max_in_flight).unwrap_or(0));
    }

    /// The bulkhead's counters.
    pub fn snapshot(&self) -> Snapshot {
        self.bulkhead.snapshot()
    }

    /// The last error seen, by a probe or a call.
    pub fn last_error(&self) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
        let probe = self.probe.lock().unwrap_or_else(|e| e.into_inner()).error.clone();
        let call = self.bulkhead.snapshot().last_error;
        match (probe, call) {
            (Some(p), Some(c)) => Some(if p.1 >= c.1 { p } else { c }),
            (p, c) => p.or(c),
        }
    }
}

/// One adapter's figures for the metrics endpoint.
#[derive(Debug, Clone)]
pub struct AdapterFigures {
    pub id: Uuid,
    pub name: String,
    pub health: Health,
    pub counters: Snapshot,
}

/// Every adapter at run time, rebuilt from the database when they change.
#[derive(Clone)]
pub struct AdapterRegistry {
    store: Store,
    clock: SharedClock,
    master: MasterKey,
    events: EventBus,
    http: reqwest::Client,
    /// Where adapters may live.
    pub network: AdapterNetwork,
    adapters: Arc<RwLock<HashMap<Uuid, Arc<AdapterRuntime>>>>,
    changed: Arc<tokio::sync::Notify>,
    syncing: Arc<tokio::sync::Mutex<()>>,
}

impl AdapterRegistry {
    /// An empty registry; [`AdapterRegistry::sync`] fills it. Fails when the adapters' HTTP client
    /// cannot be built.
    pub fn new(
        store: Store,
        clock: SharedClock,
        master: MasterKey,
        events: EventBus,
        network: AdapterNetwork,
    ) -> Result<Self> {
        Ok(AdapterRegistry {
            store,
            clock,
            master,
            events,
            http: network.client()?,
            network,
            adapters: Arc::default(),
            changed: Arc::default(),
            syncing: Arc::default(),
        })
    }

    /// The adapter `id`, if registered.
    pub fn get(&self, id: Uuid) -> Option<Arc<AdapterRuntime>> {
        self.adapters.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// Every adapter's health and bulkhead counters now, for the metrics endpoint.
    pub fn figures(&self) -> Vec<AdapterFigures> {
        let adapters: Vec<_> = self.adapters.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        adapters
            .iter()
            .map(|rt| AdapterFigures { id: rt.id, name: rt.name.clone(), health: rt.health(), counters: rt.snapshot() })
            .collect()
    }

    /// Asks the background task to take up a change at once.
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    /// Brings the run-time adapters in line with the database: new or changed ones are (re)built
    /// with a fresh bulkhead (keeping what their last probe found), removed ones closed. One sync
    /// at a time; an adapter that cannot be built (its token cannot be opened) is left out and
    /// logged, not the others.
    pub async fn sync(&self) -> Result<()> {
        let _one = self.syncing.lock().await;
        let rows = self.store.run(AdapterRow::all).await?;
        let mut keep = HashMap::new();
        let current = self.adapters.read().unwrap_or_else(|e| e.into_inner()).clone();
        for row in rows {
            match current.get(&row.id) {
                Some(rt) if rt.version == row.version => {
                    keep.insert(row.id, rt.clone());
                }
                old => match self.build(&row) {
                    Ok(rt) => {
                        if let Some(old) = old {
                            old.bulkhead.close();
                            let probe = old.probe.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            *rt.probe.lock().unwrap_or_else(|e| e.into_inner()) = probe;
                        }
                        keep.insert(row.id, Arc::new(rt));
                    }
                    Err(e) => {
                        tracing::error!(adapter = %row.name, error = %e.message(), "cannot set up the adapter; it is left out");
                    }
                },
            }
        }
        for (id, rt) in &current {
            if !keep.contains_key(id) {
                rt.bulkhead.close();
            }
        }
        *self.adapters.write().unwrap_or_else(|e| e.into_inner()) = keep;
        Ok(())
    }

    fn build(&self, row: &AdapterRow) -> Result<AdapterRuntime> {
        let token = match (&row.token_sealed, &row.token_kek_id) {
            (Some(blob), Some(kek)) => {
                let sealed = Sealed { kek_id: kek.clone(), blob: blob.clone() };
                Some(String::from_utf8(self.master.open(&token_owner(row.id), &sealed)?).map_err(Error::internal)?)
            }
            _ => None,
        };
        let timeout = std::time::Duration::from_millis(u64::try_from(row.timeout_ms).unwrap_or(5000));
        let client = AdapterClient::new(self.http.clone(), &row.endpoint_url, token, timeout);
        let workers = usize::try_from(row.max_concurrency).unwrap_or(1);
        let queue = usize::try_from(row.max_queue).unwrap_or(0);
        let rt = AdapterRuntime {
            id: row.id,
            name: row.name.clone(),
            enabled: row.enabled,
            max_concurrency: row.max_concurrency,
            max_queue: row.max_queue,
            bulkhead: Bulkhead::start(client.clone(), workers, queue, self.clock.clone()),
            client,
            version: row.version,
            probe: Mutex::default(),
            learned: Mutex::default(),
        };
        // What it said when last probed holds until it is probed again.
        rt.learn(&row.capabilities());
        Ok(rt)
    }

    /// Probes every enabled adapter (health, then capabilities when healthy), concurrently; each
    /// health change is published as an event.
    pub async fn probe_all(&self) {
        let all: Vec<Arc<AdapterRuntime>> =
            self.adapters.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut probes = tokio::task::JoinSet::new();
        for rt in all {
            let this = self.clone();
            probes.spawn(async move { this.probe(&rt).await });
        }
        while probes.join_next().await.is_some() {}
    }

    async fn probe(&self, rt: &AdapterRuntime) {
        if rt.enabled {
            let row = self.store.run({
                let id = rt.id;
                move |c| AdapterRow::find(c, id)
            });
            let outcome = match row.await {
                Ok(Some(row)) => match self.network.check_endpoint("endpoint_url", &row.endpoint_url).await {
                    Err(e) => Err(e.message().to_owned()),
                    Ok(()) => match rt.client.health().await {
                        Err(e) => Err(format!("health check: {e}")),
                        Ok(()) => match rt.client.capabilities().await {
                            Ok(caps) => {
                                rt.learn(&caps);
                                let id = rt.id;
                                let _ = self
                                    .store
                                    .run(move |c| crate::store::inference::AdapterRow::set_capabilities(c, id, &caps))
                                    .await;
                                Ok(())
                            }
                            Err(e) => Err(format!("capabilities: {e}")),
                        },
                    },
                },
                Ok(None) => return,
                Err(e) => Err(e.message().to_owned()),
            };
            let mut probe = rt.probe.lock().unwrap_or_else(|e| e.into_inner());
            probe.done = true;
            probe.ok = outcome.is_ok();
            if let Err(e) = outcome {
                probe.error = Some((e, self.clock.now()));
            }
        }
        self.report(rt);
    }

    /// Publishes a change of `rt`'s health since it was last reported.
    pub fn report(&self, rt: &AdapterRuntime) {
        let now_health = rt.health();
        let previous = {
            let mut probe = rt.probe.lock().unwrap_or_else(|e| e.into_inner());
            let previous = probe.reported.unwrap_or(Health::Unknown);
            probe.reported = Some(now_health);
            previous
        };
        if previous != now_health {
            tracing::info!(adapter = %rt.name, from = previous.as_str(), to = now_health.as_str(), "adapter health changed");
            self.events.publish(SiteEvent::new(
                self.clock.now(),
                None,
                EventKind::AdapterHealth {
                    adapter_id: rt.id,
                    name: rt.name.clone(),
                    health: now_health,
                    previous,
                    circuit: rt.snapshot().circuit,
                    error: rt.last_error().map(|(e, _)| e).unwrap_or_default(),
                },
            ));
        }
    }

    /// Keeps the registry in line with the database and probes adapters until the server stops.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e.message(), "cannot load the adapters");
            }
            self.probe_all().await;
            let _ = tokio::time::timeout(HEALTH_EVERY, self.changed.notified()).await;
        }
    }
}
