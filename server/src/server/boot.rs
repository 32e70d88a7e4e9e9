//! Booting the server in phases: the database (embedded or external, migrated), the core handles
//! (keys, audit trail, caches, media plane), the use cases, the router's parts, and the background
//! workers.
use super::{API_KEY_USE_FLUSH, check_master_keys, database_urls};
use crate::api::{self, RouterParts, auth_service::AuthApi, authn::Gate, http_routes::HttpState, policy::PolicyTable};
use crate::app::auth::AuthApp;
use crate::app::setup::SetupToken;
use crate::audit::AuditTrail;
use crate::clock::SharedClock;
use crate::config::{Config, Database};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::postgres::EmbeddedPostgres;
use crate::security::keyring::{KeyPolicy, KeyRing};
use crate::security::password::PasswordHasherPool;
use crate::security::revocation::{POLL_INTERVAL, RevocationCache};
use crate::security::seal::MasterKey;
use crate::security::token::TokenIssuer;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A configured duration as a chrono duration.
fn chrono_of(d: Duration) -> Result<chrono::Duration> {
    chrono::Duration::from_std(d).map_err(Error::internal)
}

/// The database, migrated and pooled: the embedded cluster (started) or the configured one. From here
/// on, a failed boot drops the embedded cluster's handle, which stops it.
pub(super) async fn open_database(
    config: &Config,
    master: &MasterKey,
) -> Result<(Store, Option<Arc<EmbeddedPostgres>>)> {
    let (runtime_url, owner_url, embedded) = database_urls(config).await?;
    let embedded = embedded.map(Arc::new);
    if let Database::External { runtime_url, owner_url } = &config.database
        && runtime_url == owner_url
    {
        tracing::warn!(
            "OPENNVR_DATABASE_OWNER_URL is not set: migrations and queries run as one role; give the runtime role only the privileges it needs (see README)"
        );
    }
    let archive_enabled = config.audit_archive_after.is_some();
    let applied = tokio::task::spawn_blocking(move || {
        let applied = crate::store::migrate(&owner_url)?;
        crate::store::apply_owner_settings(&owner_url, archive_enabled)?;
        Ok::<_, Error>(applied)
    })
    .await
    .map_err(Error::internal)??;
    if applied > 0 {
        tracing::info!(applied, "database migrated");
    }
    let store = Store::connect(&runtime_url, config.db_pool_size, config.db_statement_timeout)?;
    check_master_keys(&store, master).await?;
    Ok((store, embedded))
}

/// The handles every part of the server shares: the database, keys, the audit trail, what the
/// authentication layer caches, the event bus and the media plane.
pub(super) struct Core {
    pub(super) clock: SharedClock,
    pub(super) master: MasterKey,
    pub(super) store: Store,
    pub(super) keys: KeyRing,
    pub(super) audit: AuditTrail,
    pub(super) revocations: RevocationCache,
    pub(super) tokens: TokenIssuer,
    pub(super) api_keys: crate::security::api_keys::ApiKeyCache,
    pub(super) metrics: Metrics,
    pub(super) events: crate::bus::EventBus,
    pub(super) event_log: crate::app::events::EventLog,
    pub(super) mtx: Option<crate::media::mediamtx::MediaMtx>,
    pub(super) media: crate::media::plane::MediaPlane,
    pub(super) issuer: String,
    pub(super) media_config: crate::media::MediaConfig,
}

impl Core {
    /// Links pending audit entries, maintains the signing keys, fills the caches.
    pub(super) async fn start(config: &Config, clock: SharedClock, master: MasterKey, store: Store) -> Result<Core> {
        let access_ttl = chrono_of(config.access_token_ttl)?;
        let keys = KeyRing::new(
            master.clone(),
            clock.clone(),
            KeyPolicy {
                publish_ahead: chrono_of(config.signing_key_publish)?,
                rotate_after: chrono_of(config.signing_key_rotate)?,
                max_token_ttl: access_ttl,
            },
        );
        let audit = AuditTrail::new(store.clone(), clock.clone(), master.clone(), chrono_of(config.audit_key_rotate)?);
        // Entries committed but not linked before a stop join the chain before anything else.
        audit.link_pending().await?;
        crate::app::keys::maintain_signing_keys(&keys, &store, clock.now()).await?;
        let revocations = RevocationCache::new(store.clone(), clock.clone(), access_ttl);
        revocations.poll().await?;
        let tokens = TokenIssuer::new(keys.clone(), clock.clone(), config.token_issuer.clone(), access_ttl);
        let api_keys = crate::security::api_keys::ApiKeyCache::new(store.clone(), clock.clone());
        api_keys.poll().await?;
        let mtx = match &config.media.api_url {
            Some(api) => Some(
                crate::media::mediamtx::MediaMtx::new(api, keys.clone(), clock.clone(), &config.token_issuer)
                    .map_err(Error::internal)?,
            ),
            None => None,
        };
        let media = crate::media::plane::MediaPlane::new(mtx.clone());
        let events = crate::bus::EventBus::default();
        let event_log = crate::app::events::EventLog::new(store.clone(), &events);
        Ok(Core {
            clock,
            master,
            store,
            keys,
            audit,
            revocations,
            tokens,
            api_keys,
            metrics: Metrics::new(),
            events,
            event_log,
            mtx,
            media,
            issuer: config.token_issuer.clone(),
            media_config: config.media.clone(),
        })
    }

    /// Issues the short-lived tokens viewers and frame sources present to MediaMTX.
    fn live_view(&self) -> crate::media::LiveView {
        crate::media::LiveView {
            keys: self.keys.clone(),
            clock: self.clock.clone(),
            issuer: self.issuer.clone(),
            config: self.media_config.clone(),
        }
    }
}

/// Says at boot what a site misses for want of a media setting: MediaMTX itself, its hooks, the
/// public live-view URLs (the log names the setting; the media plane's status repeats the first).
pub(super) fn warn_of_media_gaps(config: &Config, plane: &crate::media::plane::MediaPlane) {
    let media = &config.media;
    if media.api_url.is_none() {
        tracing::warn!("{}", crate::media::supervisor::HOW_TO_GET);
        plane.update(|s| s.absent_reason = Some(crate::media::supervisor::HOW_TO_GET.to_owned()));
        return;
    }
    // A MediaMTX the server runs said already why its hooks are off.
    if !media.hooks && config.mediamtx.is_none() {
        tracing::warn!(
            "OPENNVR_HOOK_SECRET_FILE is not set: MediaMTX's hooks are off and it is given no hook commands; new \
             segments are indexed every {:?} (OPENNVR_RECORDING_RECONCILE_SECS) and camera availability is polled",
            media.recording_reconcile_every
        );
    }
    if media.whep_url.is_none() && media.hls_url.is_none() {
        tracing::warn!(
            "OPENNVR_MEDIAMTX_WHEP_URL and OPENNVR_MEDIAMTX_HLS_URL are not set: live view is not offered (set \
             them to the MediaMTX addresses viewers reach)"
        );
    }
}

/// The use cases, built over the core.
pub(super) struct Apps {
    pub(super) auth: AuthApp,
    pub(super) step_up_window: chrono::Duration,
    pub(super) api_keys: crate::app::api_keys::ApiKeyApp,
    pub(super) policies: PolicyTable,
    pub(super) audit: crate::app::audit::AuditApp,
    pub(super) cameras: crate::app::cameras::CameraApp,
    pub(super) recordings: crate::app::recordings::RecordingApp,
    pub(super) registry: crate::inference::AdapterRegistry,
    pub(super) frames: crate::inference::router::FrameRouter,
    pub(super) inference: crate::app::inference::InferenceApp,
    pub(super) bindings: crate::app::bindings::BindingsApp,
    pub(super) ids: crate::app::ids::IdsApp,
    pub(super) events: crate::app::events::EventsApp,
}

impl Apps {
    pub(super) async fn build(config: &Config, core: &Core) -> Result<Apps> {
        let (store, clock, master, events) = (&core.store, &core.clock, &core.master, &core.events);
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let hasher = PasswordHasherPool::new(config.argon2_memory_kib, config.argon2_iterations, parallel)?
            .with_in_flight_gauge(core.metrics.password_hashes_in_flight());
        let setup = SetupToken::default();
        let step_up_window = chrono_of(config.step_up_window)?;
        let mfa = crate::app::mfa::MfaSettings {
            policy: config.mfa_policy.clone(),
            passkeys: config.webauthn.clone().map(crate::security::webauthn::PasskeyCeremonies::new).transpose()?,
            step_up_window,
            master: master.clone(),
            issuer: config.webauthn.as_ref().map(|rp| rp.name.clone()).unwrap_or_else(|| "OpenNVR".to_owned()),
        };
        let auth = AuthApp {
            store: store.clone(),
            clock: clock.clone(),
            hasher,
            tokens: core.tokens.clone(),
            revocations: core.revocations.clone(),
            setup: setup.clone(),
            session_ttl: chrono_of(config.session_ttl)?,
            attempts: Default::default(),
            password_checks: Default::default(),
            media: core.media.clone(),
            mfa,
            api_keys: core.api_keys.clone(),
            set_up: Default::default(),
        };
        if store.run(crate::store::users::UserRow::count).await? == 0 {
            let path = setup.issue(&config.data_dir)?;
            tracing::warn!(
                path = %path.display(),
                "no users yet: create the first administrator in the dashboard (http://{}/, with the setup token in \
                 {}) or with `nvrctl bootstrap --setup-token-file {}`",
                config.listen,
                path.display(),
                path.display()
            );
        }
        let policies = PolicyTable::from_descriptor(opennvr_proto::FILE_DESCRIPTOR_SET, api::PACKAGE)?;
        let api_keys = crate::app::api_keys::ApiKeyApp {
            store: store.clone(),
            clock: clock.clone(),
            cache: core.api_keys.clone(),
            catalog: Arc::new(policies.step_up_catalog()),
        };
        let audit =
            crate::app::audit::AuditApp { store: store.clone(), trail: core.audit.clone(), clock: clock.clone() };
        let cameras = crate::app::cameras::CameraApp {
            store: store.clone(),
            clock: clock.clone(),
            master: master.clone(),
            media: core.media.clone(),
            live: core.live_view(),
            networks: config.camera_networks.clone(),
            events: events.clone(),
        };
        let recordings = crate::app::recordings::RecordingApp {
            store: store.clone(),
            clock: clock.clone(),
            record_path: config.media.record_path.clone(),
            recordings_dir: config.media.recordings_dir.clone(),
            mtx: core.mtx.clone(),
            live: core.live_view(),
            exports_dir: config.data_dir.join("exports"),
            media: core.media.clone(),
            events: events.clone(),
            last_segment: Default::default(),
            running_exports: Default::default(),
        };
        recordings.recover_exports().await?;
        let registry = crate::inference::AdapterRegistry::new(
            store.clone(),
            clock.clone(),
            master.clone(),
            events.clone(),
            crate::inference::AdapterNetwork::system(config.inference_allow_remote),
        )?;
        registry.sync().await?;
        let frames = crate::inference::router::FrameRouter::new(
            store.clone(),
            clock.clone(),
            registry.clone(),
            events.clone(),
            core.live_view(),
            config.frames.clone(),
            core.metrics.motion(),
        );
        let inference = crate::app::inference::InferenceApp {
            store: store.clone(),
            clock: clock.clone(),
            master: master.clone(),
            registry: registry.clone(),
            frames: frames.clone(),
        };
        let bindings = crate::app::bindings::BindingsApp {
            store: store.clone(),
            clock: clock.clone(),
            router: frames.clone(),
            retention: chrono_of(config.detection_retention)?,
        };
        let ids = crate::app::ids::IdsApp {
            store: store.clone(),
            clock: clock.clone(),
            retention: chrono_of(config.ids_alert_retention)?,
        };
        let events = crate::app::events::EventsApp {
            store: store.clone(),
            clock: clock.clone(),
            log: core.event_log.clone(),
            retention: chrono_of(config.event_retention)?,
        };
        Ok(Apps {
            auth,
            step_up_window,
            api_keys,
            policies,
            audit,
            cameras,
            recordings,
            registry,
            frames,
            inference,
            bindings,
            ids,
            events,
        })
    }

    /// The services of the router, and the one gate in front of them.
    pub(super) fn router_parts(&self, config: &Config, core: &Core) -> Result<RouterParts> {
        let (store, clock) = (&core.store, &core.clock);
        let gate = Arc::new(Gate {
            policies: self.policies.clone(),
            tokens: core.tokens.clone(),
            revocations: core.revocations.clone(),
            api_keys: core.api_keys.clone(),
            step_up: crate::app::mfa::StepUpGuard {
                store: store.clone(),
                clock: clock.clone(),
                window: self.step_up_window,
            },
            trusted_proxies: config.trusted_proxies.clone(),
            metrics: core.metrics.clone(),
            audit: core.audit.clone(),
            anonymous: crate::security::budget::Budget::new(crate::security::budget::Rate::per_second(
                config.anonymous_calls_per_sec,
                10,
            )),
            streams: Default::default(),
        });
        Ok(RouterParts {
            auth: AuthApi { app: self.auth.clone() },
            users: crate::api::user_service::UserApi { app: self.auth.clone() },
            api_keys: crate::api::api_key_service::ApiKeyApi { api_keys: self.api_keys.clone() },
            master_key: crate::api::master_key_service::MasterKeyApi {
                keys: crate::app::keys::KeyApp {
                    store: store.clone(),
                    clock: clock.clone(),
                    master: core.master.clone(),
                },
            },
            ids: crate::api::ids_service::IdsApi { ids: self.ids.clone() },
            audit: crate::api::audit_service::AuditApi { app: self.audit.clone() },
            cameras: crate::api::camera_service::CameraApi { app: self.cameras.clone() },
            recordings: crate::api::recording_service::RecordingApi { app: self.recordings.clone() },
            inference: crate::api::inference_service::InferenceApi {
                adapters: self.inference.clone(),
                bindings: self.bindings.clone(),
            },
            events: crate::api::event_service::EventApi { app: self.events.clone() },
            gate: gate.clone(),
            http: Arc::new(HttpState {
                gate,
                store: store.clone(),
                keys: core.keys.clone(),
                metrics: core.metrics.clone(),
                media: core.media.clone(),
                hook_secret: config.hook_secret.as_deref().map(crate::security::secret::SecretDigest::of),
                recordings: self.recordings.clone(),
                adapters: self.registry.clone(),
            }),
            cors_origins: config.cors_origins.clone(),
            dashboard: crate::api::dashboard::DashboardConfig::locate(
                config.dashboard_dir.as_deref(),
                &[config.media.whep_url.as_deref(), config.media.hls_url.as_deref()],
            )?,
        })
    }
}

/// Runs `f` on a clone of `handle` every `period` (see [`every`]).
fn every_on<T, F, Fut>(period: Duration, handle: &T, f: F) -> JoinHandle<()>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let handle = handle.clone();
    every(period, move || f(handle.clone()))
}

/// The workers: caches polled, keys maintained, retention, the audit linker and checkpoints, the
/// adapter registry and frame sources, the IDS follower, the embedded database's watchdog, and the
/// media plane (reconciler, status watcher, recording index).
pub(super) fn spawn_background(
    config: &Config,
    core: &Core,
    apps: &Apps,
    embedded: Option<&Arc<EmbeddedPostgres>>,
) -> Result<Vec<JoinHandle<()>>> {
    let mut background = vec![
        every_on(POLL_INTERVAL, &core.revocations, |r| async move { r.poll().await }),
        every_on(POLL_INTERVAL, &core.api_keys, |k| async move { k.poll().await }),
        // Last uses of API keys, batched.
        every_on(API_KEY_USE_FLUSH, &core.api_keys, |k| async move { k.flush_uses().await }),
        every_on(
            Duration::from_secs(60),
            &(core.keys.clone(), core.store.clone(), core.clock.clone()),
            |(k, st, cl)| async move { crate::app::keys::maintain_signing_keys(&k, &st, cl.now()).await },
        ),
        every_on(Duration::from_secs(600), &apps.auth, |a| async move { a.housekeeping().await }),
        every_on(Duration::from_secs(3600), &apps.ids, |i| async move { i.enforce_retention().await.map(|_| ()) }),
        every_on(Duration::from_secs(3600), &apps.bindings, |b| async move { b.enforce_retention().await.map(|_| ()) }),
        every_on(Duration::from_secs(3600), &apps.events, |e| async move { e.enforce_retention().await.map(|_| ()) }),
        tokio::spawn(apps.registry.clone().run()),
        tokio::spawn(apps.frames.clone().run()),
        // The one linker of audit entries into the chain.
        tokio::spawn(core.audit.clone().run_linker()),
        // The event history: stored, linked in commit order, followed across processes.
        tokio::spawn(core.event_log.clone().run_recorder(core.events.clone())),
        tokio::spawn(core.event_log.clone().run_linker()),
        tokio::spawn(core.event_log.clone().run_listener()),
        every_on(config.audit_checkpoint, &core.audit, |a| async move { a.checkpoint().await.map(|_| ()) }),
    ];
    if let Some(path) = &config.suricata_eve_file {
        let follower = crate::intrusion::EveFollower::new(
            path.clone(),
            core.store.clone(),
            core.clock.clone(),
            core.events.clone(),
        );
        tracing::info!(path = %path.display(), "following Suricata's EVE log for IDS alerts");
        background.push(tokio::spawn(follower.run()));
    }
    if let Some(after) = config.audit_archive_after {
        let (dir, after) = (config.audit_archive_dir.clone(), chrono_of(after)?);
        background.push(every_on(
            Duration::from_secs(3600),
            &(apps.audit.clone(), dir),
            move |(app, dir)| async move { app.archive(after, &dir).await.map(|_| ()) },
        ));
    }
    if let Some(pg) = embedded {
        background.push(every_on(Duration::from_secs(5), pg, |pg| async move {
            tokio::task::spawn_blocking(move || pg.ensure_running()).await.map_err(Error::internal)?
        }));
    }
    // The media plane: MediaMTX made to hold what the database says.
    if let Some(mtx) = &core.mtx {
        let reconciler = crate::app::reconciler::Reconciler::new(
            mtx.clone(),
            apps.cameras.clone(),
            config.media.clone(),
            core.clock.clone(),
            core.media.clone(),
        );
        background.push(tokio::spawn(reconciler.clone().watch_status()));
        background.push(tokio::spawn(reconciler.run()));
        background.push(tokio::spawn(apps.recordings.clone().watchdog()));
        // The recording index (what the segment hooks missed), and retention.
        background.push(every_on(config.media.recording_reconcile_every, &apps.recordings, |r| async move {
            r.reconcile().await.map(|_| ())
        }));
        background.push(every_on(config.media.retention_every, &apps.recordings, |r| async move {
            r.expire_exports().await?;
            r.enforce_retention(None).await.map(|_| ())
        }));
    }
    Ok(background)
}

/// Runs `f` every `period`, logging failures.
fn every<F, Fut>(period: Duration, f: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = f().await {
                tracing::warn!(error = %e, "background task failed");
            }
        }
    })
}
