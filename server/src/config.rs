//! Server configuration: command-line flags and environment variables over an optional TOML file,
//! validated at boot. Weak or missing secrets stop the server with a message naming the variable.
use crate::error::{Error, Result};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default listen address: loopback only, so a fresh install is not reachable from the network until
/// the operator decides (`OPENNVR_LISTEN=0.0.0.0:7450`, ideally with TLS).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7450";

/// `opennvr-server`: the OpenNVR network video recorder server.
#[derive(Debug, Parser)]
#[command(name = "opennvr-server", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
}

/// Every configuration key. Each may come from the flag, the environment variable, or the TOML file
/// (`OPENNVR_CONFIG`, keys in snake_case), in that order of precedence.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// TOML configuration file (keys are the long flag names in snake_case).
    #[arg(long, env = "OPENNVR_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on for gRPC, grpc-web and HTTP [default: 127.0.0.1:7450].
    #[arg(long, env = "OPENNVR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for server state: embedded PostgreSQL, generated keys, setup token [default: ./var].
    #[arg(long, env = "OPENNVR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL for the server's runtime role. Unset: run the embedded PostgreSQL in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL URL for the schema owner role that runs migrations [default: DATABASE_URL].
    #[arg(long, env = "OPENNVR_DATABASE_OWNER_URL", hide_env_values = true)]
    pub database_owner_url: Option<String>,
    /// Maximum connections in the runtime pool [default: 16].
    #[arg(long, env = "OPENNVR_DB_POOL_SIZE")]
    pub db_pool_size: Option<usize>,
    /// Statement timeout set on every connection, in seconds [default: 10].
    #[arg(long, env = "OPENNVR_DB_STATEMENT_TIMEOUT_SECS")]
    pub db_statement_timeout_secs: Option<u64>,
    /// Directory with the PostgreSQL server binaries for the embedded database [default: search PATH
    /// and /usr/lib/postgresql/*/bin].
    #[arg(long, env = "OPENNVR_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// File holding the 32-byte master key (key-encryption key) that seals every stored secret: raw
    /// 32 bytes, 64 hex digits or base64. Required with DATABASE_URL; the embedded default generates
    /// one in the data directory if missing.
    #[arg(long, env = "OPENNVR_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Comma-separated files of previous master keys, kept only to open what they sealed until
    /// RotateMasterKey rewraps it [default: none].
    #[arg(long, env = "OPENNVR_MASTER_KEY_PREVIOUS_FILES", value_delimiter = ',')]
    pub master_key_previous_files: Option<Vec<PathBuf>>,
    /// TLS certificate chain (PEM). With a key, the port serves TLS (HTTP/2 and HTTP/1.1 by ALPN).
    #[arg(long, env = "OPENNVR_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "OPENNVR_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Comma-separated origins allowed to call grpc-web from a browser (CORS) [default: none].
    #[arg(long, env = "OPENNVR_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// A built web dashboard (the `dist` directory of `dashboard/`), served under `/ui/` [default: the
    /// one this checkout builds, `dashboard/dist`].
    #[arg(long, env = "OPENNVR_DASHBOARD_DIR")]
    pub dashboard_dir: Option<PathBuf>,
    /// The most client connections served at once; past it new connections are closed [default: 4096].
    #[arg(long, env = "OPENNVR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Calls without a credential (sign-in, refusals) allowed per client address and second; ten
    /// seconds' worth may come at once [default: 20].
    #[arg(long, env = "OPENNVR_ANONYMOUS_CALLS_PER_SEC")]
    pub anonymous_calls_per_sec: Option<u32>,
    /// Comma-separated addresses of reverse proxies whose X-Forwarded-For is believed [default: none].
    #[arg(long, env = "OPENNVR_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<IpAddr>>,
    /// Log format: `text` or `json` [default: text]. Levels come from RUST_LOG.
    #[arg(long, env = "OPENNVR_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Lifetime of access tokens, in seconds [default: 600].
    #[arg(long, env = "OPENNVR_ACCESS_TOKEN_TTL_SECS")]
    pub access_token_ttl_secs: Option<u64>,
    /// Lifetime of a session (its refresh tokens), in seconds [default: 2592000 = 30 days].
    #[arg(long, env = "OPENNVR_SESSION_TTL_SECS")]
    pub session_ttl_secs: Option<u64>,
    /// How long a new signing key is published in the JWKS before it signs, in seconds [default: 7200,
    /// longer than MediaMTX's one-hour JWKS refresh].
    #[arg(long, env = "OPENNVR_SIGNING_KEY_PUBLISH_SECS")]
    pub signing_key_publish_secs: Option<u64>,
    /// Age after which the signing key is replaced, in seconds [default: 2592000 = 30 days].
    #[arg(long, env = "OPENNVR_SIGNING_KEY_ROTATE_SECS")]
    pub signing_key_rotate_secs: Option<u64>,
    /// Issuer (`iss`) of the tokens the server signs [default: opennvr].
    #[arg(long, env = "OPENNVR_TOKEN_ISSUER")]
    pub token_issuer: Option<String>,
    /// How often the audit chain head is signed (a checkpoint), in seconds [default: 300].
    #[arg(long, env = "OPENNVR_AUDIT_CHECKPOINT_SECS")]
    pub audit_checkpoint_secs: Option<u64>,
    /// Age at which the audit signing key is replaced (at the next checkpoint), in days [default: 365].
    #[arg(long, env = "OPENNVR_AUDIT_KEY_ROTATE_DAYS")]
    pub audit_key_rotate_days: Option<u64>,
    /// Archive audit entries older than this many days (exported to a verified file first, cut at a
    /// signed checkpoint) [default: never; the trail is kept whole].
    #[arg(long, env = "OPENNVR_AUDIT_ARCHIVE_DAYS")]
    pub audit_archive_days: Option<u64>,
    /// Where archived audit entries are written [default: <data dir>/audit-archive].
    #[arg(long, env = "OPENNVR_AUDIT_ARCHIVE_DIR")]
    pub audit_archive_dir: Option<PathBuf>,
    /// Comma-separated networks (CIDR) cameras may be in: camera sources and connection tests are
    /// limited to them [default: the private ranges 10/8, 172.16/12, 192.168/16, fc00::/7].
    #[arg(long, env = "OPENNVR_CAMERA_NETWORKS")]
    pub camera_networks: Option<String>,
    /// MediaMTX's Control API, e.g. `http://mediamtx:9997` [default: none; cameras are stored but not
    /// streamed or recorded until it is set].
    #[arg(long, env = "OPENNVR_MEDIAMTX_API_URL")]
    pub mediamtx_api_url: Option<String>,
    /// The `mediamtx` binary the server runs itself when OPENNVR_MEDIAMTX_API_URL is not set: its
    /// config is written to `<data dir>/mediamtx/mediamtx.yml`; empty: never [default: `mediamtx` on
    /// PATH, if any].
    #[arg(long, env = "OPENNVR_MEDIAMTX_BIN")]
    pub mediamtx_bin: Option<PathBuf>,
    /// `recordPath` of every camera, as MediaMTX sees its recordings volume; must contain `%path`,
    /// `%Y %m %d %H %M %S`, `%f` and `%z` [default: /recordings/%path/%Y-%m-%d_%H-%M-%S-%f%z].
    #[arg(long, env = "OPENNVR_MEDIAMTX_RECORD_PATH")]
    pub mediamtx_record_path: Option<String>,
    /// The hook client MediaMTX runs for segment and availability events [default: /opennvr-hook].
    #[arg(long, env = "OPENNVR_MEDIAMTX_HOOK_COMMAND")]
    pub mediamtx_hook_command: Option<String>,
    /// Public WebRTC (WHEP) base URL of MediaMTX that viewers reach, e.g. `https://nvr.example:8889`
    /// [default: none; live-view answers carry no WHEP URL].
    #[arg(long, env = "OPENNVR_MEDIAMTX_WHEP_URL")]
    pub mediamtx_whep_url: Option<String>,
    /// Public HLS base URL, e.g. `https://nvr.example:8888` [default: none].
    #[arg(long, env = "OPENNVR_MEDIAMTX_HLS_URL")]
    pub mediamtx_hls_url: Option<String>,
    /// Public RTSP(S) base URL, e.g. `rtsps://nvr.example:8322` [default: none].
    #[arg(long, env = "OPENNVR_MEDIAMTX_RTSP_URL")]
    pub mediamtx_rtsp_url: Option<String>,
    /// File holding the secret MediaMTX's hook client presents (`OPENNVR_HOOK_SECRET` in MediaMTX's
    /// environment), at least 32 characters [default: none; the hook endpoint is off].
    #[arg(long, env = "OPENNVR_HOOK_SECRET_FILE")]
    pub hook_secret_file: Option<PathBuf>,
    /// How often the reconciler converges MediaMTX even without changes, in seconds [default: 30].
    #[arg(long, env = "OPENNVR_MEDIAMTX_SYNC_SECS")]
    pub mediamtx_sync_secs: Option<u64>,
    /// Where the server sees MediaMTX's recordings volume (read-only is enough): the directory that
    /// the record path's part before `%path` names inside MediaMTX, e.g. `/recordings`. Segment sizes,
    /// durations of segments whose hooks were lost, and size and free-space retention need it
    /// [default: none].
    #[arg(long, env = "OPENNVR_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,
    /// How often the recording index is reconciled with what MediaMTX has recorded (segments whose
    /// hooks were lost), in seconds [default: 300].
    #[arg(long, env = "OPENNVR_RECORDING_RECONCILE_SECS")]
    pub recording_reconcile_secs: Option<u64>,
    /// Where the server reaches MediaMTX's playback server, e.g. `http://mediamtx:9996`: clip exports
    /// are fetched from it [default: none; exports are refused].
    #[arg(long, env = "OPENNVR_MEDIAMTX_PLAYBACK_URL")]
    pub mediamtx_playback_url: Option<String>,
    /// The playback server's public base URL that players reach, e.g. `https://nvr.example:9996`
    /// [default: none; playback tokens are refused].
    #[arg(long, env = "OPENNVR_MEDIAMTX_PUBLIC_PLAYBACK_URL")]
    pub mediamtx_public_playback_url: Option<String>,
    /// Longest clip one export may cover, in seconds [default: 14400 (4 h); at most 86400].
    #[arg(long, env = "OPENNVR_EXPORT_MAX_SECS")]
    pub export_max_secs: Option<u64>,
    /// How long an exported file is kept for download, in hours [default: 168].
    #[arg(long, env = "OPENNVR_EXPORT_KEEP_HOURS")]
    pub export_keep_hours: Option<u64>,
    /// Largest file one export may write, in bytes [default: 17179869184 (16 GiB)].
    #[arg(long, env = "OPENNVR_EXPORT_MAX_BYTES")]
    pub export_max_bytes: Option<u64>,
    /// How often retention runs (besides on demand), in seconds [default: 600].
    #[arg(long, env = "OPENNVR_RETENTION_SECS")]
    pub retention_secs: Option<u64>,
    /// Comma-separated roles whose users must have a second factor (TOTP or a passkey), or `none`
    /// [default: admin]. A user of such a role without one can only enrol one.
    #[arg(long, env = "OPENNVR_MFA_REQUIRED_ROLES")]
    pub mfa_required_roles: Option<String>,
    /// How long a step-up (a second factor presented at login or with StepUp) lets destructive RPCs
    /// through, in seconds [default: 300].
    #[arg(long, env = "OPENNVR_STEP_UP_WINDOW_SECS")]
    pub step_up_window_secs: Option<u64>,
    /// WebAuthn relying-party id: the domain name users reach the dashboard by (or `localhost`)
    /// [default: none; passkeys are off and TOTP is the second factor]. An IP address cannot be one.
    #[arg(long, env = "OPENNVR_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,
    /// Comma-separated origins browsers call WebAuthn from, each on the relying party's domain
    /// [default: https://<rp id>].
    #[arg(long, env = "OPENNVR_WEBAUTHN_ORIGINS", value_delimiter = ',')]
    pub webauthn_origins: Option<Vec<String>>,
    /// Name of the site shown by authenticators [default: OpenNVR].
    #[arg(long, env = "OPENNVR_WEBAUTHN_RP_NAME")]
    pub webauthn_rp_name: Option<String>,
    /// Suricata's EVE JSON log to follow for network intrusion alerts, e.g.
    /// `/var/log/suricata/eve.json` (it may rotate) [default: none; no IDS alerts].
    #[arg(long, env = "OPENNVR_SURICATA_EVE_FILE")]
    pub suricata_eve_file: Option<PathBuf>,
    /// Allow inference adapters outside loopback and private networks [default: false].
    #[arg(long, env = "OPENNVR_INFERENCE_ALLOW_REMOTE")]
    pub inference_allow_remote: Option<bool>,
    /// How long IDS alerts are kept, in days [default: 90].
    #[arg(long, env = "OPENNVR_IDS_ALERT_RETENTION_DAYS")]
    pub ids_alert_retention_days: Option<u64>,
    /// How long stored detections are kept, in days [default: 30].
    #[arg(long, env = "OPENNVR_DETECTION_RETENTION_DAYS")]
    pub detection_retention_days: Option<u64>,
    /// How long the event history is kept, in days [default: 90].
    #[arg(long, env = "OPENNVR_EVENT_RETENTION_DAYS")]
    pub event_retention_days: Option<u64>,
    /// RTSP base URL at which the server itself reads camera restreams (frames for AI adapters),
    /// e.g. `rtsp://127.0.0.1:8554` [default: OPENNVR_MEDIAMTX_RTSP_URL].
    #[arg(long, env = "OPENNVR_MEDIAMTX_INTERNAL_RTSP_URL")]
    pub mediamtx_internal_rtsp_url: Option<String>,
    /// The `ffmpeg` program that decodes frames for AI adapters [default: ffmpeg, from PATH].
    #[arg(long, env = "OPENNVR_FFMPEG")]
    pub ffmpeg: Option<PathBuf>,
    /// argon2id memory cost in KiB [default: 19456]. Lower values are for tests only.
    #[arg(long, env = "OPENNVR_ARGON2_MEMORY_KIB")]
    pub argon2_memory_kib: Option<u32>,
    /// argon2id iterations [default: 2].
    #[arg(long, env = "OPENNVR_ARGON2_ITERATIONS")]
    pub argon2_iterations: Option<u32>,
}

impl Options {
    /// Fills every unset key from `file`.
    fn or(self, file: Options) -> Options {
        Options {
            config: self.config,
            listen: self.listen.or(file.listen),
            data_dir: self.data_dir.or(file.data_dir),
            database_url: self.database_url.or(file.database_url),
            database_owner_url: self.database_owner_url.or(file.database_owner_url),
            db_pool_size: self.db_pool_size.or(file.db_pool_size),
            db_statement_timeout_secs: self.db_statement_timeout_secs.or(file.db_statement_timeout_secs),
            pg_bin_dir: self.pg_bin_dir.or(file.pg_bin_dir),
            master_key_file: self.master_key_file.or(file.master_key_file),
            master_key_previous_files: self.master_key_previous_files.or(file.master_key_previous_files),
            tls_cert_file: self.tls_cert_file.or(file.tls_cert_file),
            tls_key_file: self.tls_key_file.or(file.tls_key_file),
            cors_origins: self.cors_origins.or(file.cors_origins),
            dashboard_dir: self.dashboard_dir.or(file.dashboard_dir),
            max_connections: self.max_connections.or(file.max_connections),
            anonymous_calls_per_sec: self.anonymous_calls_per_sec.or(file.anonymous_calls_per_sec),
            trusted_proxies: self.trusted_proxies.or(file.trusted_proxies),
            log_format: self.log_format.or(file.log_format),
            access_token_ttl_secs: self.access_token_ttl_secs.or(file.access_token_ttl_secs),
            session_ttl_secs: self.session_ttl_secs.or(file.session_ttl_secs),
            signing_key_publish_secs: self.signing_key_publish_secs.or(file.signing_key_publish_secs),
            signing_key_rotate_secs: self.signing_key_rotate_secs.or(file.signing_key_rotate_secs),
            token_issuer: self.token_issuer.or(file.token_issuer),
            audit_checkpoint_secs: self.audit_checkpoint_secs.or(file.audit_checkpoint_secs),
            audit_key_rotate_days: self.audit_key_rotate_days.or(file.audit_key_rotate_days),
            audit_archive_days: self.audit_archive_days.or(file.audit_archive_days),
            audit_archive_dir: self.audit_archive_dir.or(file.audit_archive_dir),
            mediamtx_api_url: self.mediamtx_api_url.or(file.mediamtx_api_url),
            mediamtx_bin: self.mediamtx_bin.or(file.mediamtx_bin),
            camera_networks: self.camera_networks.or(file.camera_networks),
            mediamtx_record_path: self.mediamtx_record_path.or(file.mediamtx_record_path),
            mediamtx_hook_command: self.mediamtx_hook_command.or(file.mediamtx_hook_command),
            mediamtx_sync_secs: self.mediamtx_sync_secs.or(file.mediamtx_sync_secs),
            hook_secret_file: self.hook_secret_file.or(file.hook_secret_file),
            mediamtx_whep_url: self.mediamtx_whep_url.or(file.mediamtx_whep_url),
            mediamtx_hls_url: self.mediamtx_hls_url.or(file.mediamtx_hls_url),
            mediamtx_rtsp_url: self.mediamtx_rtsp_url.or(file.mediamtx_rtsp_url),
            recordings_dir: self.recordings_dir.or(file.recordings_dir),
            recording_reconcile_secs: self.recording_reconcile_secs.or(file.recording_reconcile_secs),
            retention_secs: self.retention_secs.or(file.retention_secs),
            mediamtx_playback_url: self.mediamtx_playback_url.or(file.mediamtx_playback_url),
            mediamtx_public_playback_url: self.mediamtx_public_playback_url.or(file.mediamtx_public_playback_url),
            export_max_secs: self.export_max_secs.or(file.export_max_secs),
            export_keep_hours: self.export_keep_hours.or(file.export_keep_hours),
            export_max_bytes: self.export_max_bytes.or(file.export_max_bytes),
            mfa_required_roles: self.mfa_required_roles.or(file.mfa_required_roles),
            suricata_eve_file: self.suricata_eve_file.or(file.suricata_eve_file),
            inference_allow_remote: self.inference_allow_remote.or(file.inference_allow_remote),
            ids_alert_retention_days: self.ids_alert_retention_days.or(file.ids_alert_retention_days),
            detection_retention_days: self.detection_retention_days.or(file.detection_retention_days),
            event_retention_days: self.event_retention_days.or(file.event_retention_days),
            mediamtx_internal_rtsp_url: self.mediamtx_internal_rtsp_url.or(file.mediamtx_internal_rtsp_url),
            ffmpeg: self.ffmpeg.or(file.ffmpeg),
            step_up_window_secs: self.step_up_window_secs.or(file.step_up_window_secs),
            webauthn_rp_id: self.webauthn_rp_id.or(file.webauthn_rp_id),
            webauthn_origins: self.webauthn_origins.or(file.webauthn_origins),
            webauthn_rp_name: self.webauthn_rp_name.or(file.webauthn_rp_name),
            argon2_memory_kib: self.argon2_memory_kib.or(file.argon2_memory_kib),
            argon2_iterations: self.argon2_iterations.or(file.argon2_iterations),
        }
    }
}

/// Where the database comes from.
#[derive(Debug, Clone)]
pub enum Database {
    /// A private PostgreSQL cluster supervised by the server under the data directory.
    Embedded { pg_bin_dir: Option<PathBuf> },
    /// An operator-provided database.
    External { runtime_url: String, owner_url: String },
}

/// TLS material.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub db_pool_size: usize,
    pub db_statement_timeout: Duration,
    pub master_key_file: Option<PathBuf>,
    pub master_key_previous_files: Vec<PathBuf>,
    pub tls: Option<Tls>,
    pub cors_origins: Vec<String>,
    /// Where the built dashboard is, when set explicitly.
    pub dashboard_dir: Option<PathBuf>,
    /// The most client connections served at once.
    pub max_connections: usize,
    /// Calls without a credential allowed per client address and second.
    pub anonymous_calls_per_sec: u32,
    pub trusted_proxies: Vec<IpAddr>,
    pub log_json: bool,
    pub access_token_ttl: Duration,
    pub session_ttl: Duration,
    pub signing_key_publish: Duration,
    pub signing_key_rotate: Duration,
    pub token_issuer: String,
    pub audit_checkpoint: Duration,
    pub audit_key_rotate: Duration,
    /// Entries older than this are archived; `None` keeps the trail whole.
    pub audit_archive_after: Option<Duration>,
    pub audit_archive_dir: PathBuf,
    pub media: crate::media::MediaConfig,
    /// The MediaMTX the server runs itself (no API URL configured, a binary found).
    pub mediamtx: Option<crate::media::supervisor::Supervision>,
    pub camera_networks: crate::domain::camera::CameraNetworks,
    /// The hook client's secret, if hooks are on.
    pub hook_secret: Option<String>,
    pub mfa_policy: crate::domain::mfa::MfaPolicy,
    /// Suricata's EVE log, if alerts are read.
    pub suricata_eve_file: Option<PathBuf>,
    pub ids_alert_retention: Duration,
    pub detection_retention: Duration,
    /// How long the event history is kept.
    pub event_retention: Duration,
    /// Where frames for AI adapters come from.
    pub frames: crate::inference::frames::FrameSourceConfig,
    /// Adapters may live outside loopback and private networks.
    pub inference_allow_remote: bool,
    pub step_up_window: Duration,
    /// `None`: passkeys are off.
    pub webauthn: Option<crate::security::webauthn::RelyingParty>,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
}

impl Config {
    /// Builds the configuration from parsed flags/environment and the TOML file they name.
    pub fn load(options: Options) -> Result<Config> {
        let file = match &options.config {
            Some(path) => read_toml(path)?,
            None => Options::default(),
        };
        Config::from_options(options.or(file))
    }

    /// Validates merged options.
    pub fn from_options(o: Options) -> Result<Config> {
        let database = match (o.database_url, o.database_owner_url) {
            (Some(runtime), owner) => {
                check_url("DATABASE_URL", &runtime)?;
                let owner = owner.unwrap_or_else(|| runtime.clone());
                check_url("OPENNVR_DATABASE_OWNER_URL", &owner)?;
                Database::External { runtime_url: runtime, owner_url: owner }
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "OPENNVR_DATABASE_OWNER_URL is set without DATABASE_URL: set both for an external database, or neither for the embedded one",
                ));
            }
            (None, None) => Database::Embedded { pg_bin_dir: o.pg_bin_dir },
        };
        if matches!(database, Database::External { .. }) && o.master_key_file.is_none() {
            return Err(Error::config(
                "OPENNVR_MASTER_KEY_FILE is required with DATABASE_URL: generate one with `head -c 32 /dev/urandom > master.key && chmod 600 master.key`",
            ));
        }
        let tls = match (o.tls_cert_file, o.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(Tls { cert_file, key_file }),
            (None, None) => None,
            _ => {
                return Err(Error::config("OPENNVR_TLS_CERT_FILE and OPENNVR_TLS_KEY_FILE must be set together"));
            }
        };
        let log_json = match o.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(Error::config(format!("OPENNVR_LOG_FORMAT must be text or json, not {other:?}")));
            }
        };
        let secs = |v: Option<u64>, default: u64, name: &str| -> Result<Duration> {
            match v.unwrap_or(default) {
                0 => Err(Error::config(format!("{name} must be greater than zero"))),
                s => Ok(Duration::from_secs(s)),
            }
        };
        let pool = o.db_pool_size.unwrap_or(16);
        if pool == 0 {
            return Err(Error::config("OPENNVR_DB_POOL_SIZE must be greater than zero"));
        }
        let data_dir = o.data_dir.unwrap_or_else(|| PathBuf::from("./var"));
        // OPENNVR_MEDIAMTX_BIN set empty: never run MediaMTX (not even one found on PATH).
        let off = o.mediamtx_bin.as_ref().is_some_and(|b| b.as_os_str().is_empty());
        let bin = o.mediamtx_bin.as_deref().filter(|b| !b.as_os_str().is_empty());
        let mediamtx = match (o.mediamtx_api_url.as_deref().filter(|u| !u.is_empty()), bin) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "OPENNVR_MEDIAMTX_BIN and OPENNVR_MEDIAMTX_API_URL are both set: set the binary for a MediaMTX the server runs, or the API URL of one you run",
                ));
            }
            (Some(_), None) => None,
            (None, _) if off => None,
            (None, bin) => {
                crate::media::supervisor::find_binary(bin)?.map(|binary| crate::media::supervisor::Supervision {
                    binary,
                    named: bin.is_some(),
                    hook_command_set: o.mediamtx_hook_command.is_some(),
                })
            }
        };
        let mut config = Config {
            mediamtx,
            listen: match o.listen {
                Some(l) => l,
                None => DEFAULT_LISTEN.parse().map_err(Error::internal)?,
            },
            audit_archive_dir: o.audit_archive_dir.unwrap_or_else(|| data_dir.join("audit-archive")),
            media: crate::media::MediaConfig::new(
                o.mediamtx_api_url,
                o.mediamtx_record_path,
                o.mediamtx_hook_command,
                secs(o.mediamtx_sync_secs, 30, "OPENNVR_MEDIAMTX_SYNC_SECS")?,
            )?
            .with_public_urls(o.mediamtx_whep_url, o.mediamtx_hls_url, o.mediamtx_rtsp_url.clone())?
            .with_recordings(
                o.recordings_dir,
                secs(o.recording_reconcile_secs, 300, "OPENNVR_RECORDING_RECONCILE_SECS")?,
                secs(o.retention_secs, 600, "OPENNVR_RETENTION_SECS")?,
            )?
            .with_playback(
                o.mediamtx_playback_url,
                o.mediamtx_public_playback_url,
                secs(o.export_max_secs, 14_400, "OPENNVR_EXPORT_MAX_SECS")?,
                secs(o.export_keep_hours.map(|h| h.saturating_mul(3600)), 168 * 3600, "OPENNVR_EXPORT_KEEP_HOURS")?,
            )?
            .with_export_cap(o.export_max_bytes)?,
            hook_secret: match &o.hook_secret_file {
                None => None,
                Some(p) => {
                    let s = std::fs::read_to_string(p)
                        .map_err(|e| {
                            Error::config(format!("OPENNVR_HOOK_SECRET_FILE: cannot read {}: {e}", p.display()))
                        })?
                        .trim()
                        .to_owned();
                    if s.len() < 32 {
                        return Err(Error::config("OPENNVR_HOOK_SECRET_FILE must hold at least 32 characters"));
                    }
                    Some(s)
                }
            },
            camera_networks: crate::domain::camera::CameraNetworks::parse(
                o.camera_networks.as_deref().unwrap_or(crate::domain::camera::DEFAULT_CAMERA_NETWORKS),
            )
            .map_err(|e| Error::config(format!("OPENNVR_CAMERA_NETWORKS: {e}")))?,
            data_dir,
            database,
            db_pool_size: pool,
            db_statement_timeout: secs(o.db_statement_timeout_secs, 10, "OPENNVR_DB_STATEMENT_TIMEOUT_SECS")?,
            master_key_file: o.master_key_file,
            master_key_previous_files: o.master_key_previous_files.unwrap_or_default(),
            tls,
            cors_origins: o.cors_origins.unwrap_or_default().into_iter().filter(|s| !s.is_empty()).collect(),
            dashboard_dir: o.dashboard_dir,
            max_connections: match o.max_connections {
                None => 4096,
                Some(n) if (1..=1_000_000).contains(&n) => n,
                Some(n) => {
                    return Err(Error::config(format!("OPENNVR_MAX_CONNECTIONS: {n} is not within 1..=1000000")));
                }
            },
            anonymous_calls_per_sec: match o.anonymous_calls_per_sec {
                None => 20,
                Some(n) if (1..=1_000_000).contains(&n) => n,
                Some(n) => {
                    return Err(Error::config(format!(
                        "OPENNVR_ANONYMOUS_CALLS_PER_SEC: {n} is not within 1..=1000000"
                    )));
                }
            },
            trusted_proxies: o.trusted_proxies.unwrap_or_default(),
            log_json,
            access_token_ttl: secs(o.access_token_ttl_secs, 600, "OPENNVR_ACCESS_TOKEN_TTL_SECS")?,
            session_ttl: secs(o.session_ttl_secs, 30 * 86_400, "OPENNVR_SESSION_TTL_SECS")?,
            signing_key_publish: secs(o.signing_key_publish_secs, 7_200, "OPENNVR_SIGNING_KEY_PUBLISH_SECS")?,
            signing_key_rotate: secs(o.signing_key_rotate_secs, 30 * 86_400, "OPENNVR_SIGNING_KEY_ROTATE_SECS")?,
            token_issuer: o.token_issuer.unwrap_or_else(|| "opennvr".to_owned()),
            audit_checkpoint: secs(o.audit_checkpoint_secs, 300, "OPENNVR_AUDIT_CHECKPOINT_SECS")?,
            audit_key_rotate: secs(
                o.audit_key_rotate_days.map(|d| d.saturating_mul(86_400)),
                365 * 86_400,
                "OPENNVR_AUDIT_KEY_ROTATE_DAYS",
            )?,
            audit_archive_after: match o.audit_archive_days {
                None => None,
                Some(0) => return Err(Error::config("OPENNVR_AUDIT_ARCHIVE_DAYS must be greater than zero")),
                Some(d) => Some(Duration::from_secs(d.saturating_mul(86_400))),
            },
            mfa_policy: match &o.mfa_required_roles {
                None => crate::domain::mfa::MfaPolicy::default(),
                Some(text) => crate::domain::mfa::MfaPolicy::parse(text)
                    .map_err(|e| Error::config(format!("OPENNVR_MFA_REQUIRED_ROLES: {e}")))?,
            },
            step_up_window: secs(o.step_up_window_secs, 300, "OPENNVR_STEP_UP_WINDOW_SECS")?,
            suricata_eve_file: o.suricata_eve_file,
            inference_allow_remote: o.inference_allow_remote.unwrap_or(false),
            ids_alert_retention: secs(
                o.ids_alert_retention_days.map(|d| d.saturating_mul(86_400)),
                90 * 86_400,
                "OPENNVR_IDS_ALERT_RETENTION_DAYS",
            )?,
            detection_retention: secs(
                o.detection_retention_days.map(|d| d.saturating_mul(86_400)),
                30 * 86_400,
                "OPENNVR_DETECTION_RETENTION_DAYS",
            )?,
            event_retention: secs(
                o.event_retention_days.map(|d| d.saturating_mul(86_400)),
                90 * 86_400,
                "OPENNVR_EVENT_RETENTION_DAYS",
            )?,
            frames: crate::inference::frames::FrameSourceConfig {
                rtsp_url: {
                    let internal = o.mediamtx_internal_rtsp_url.clone().filter(|u| !u.is_empty());
                    let chosen = internal.clone().or(o.mediamtx_rtsp_url.clone());
                    let name = if internal.is_some() {
                        "OPENNVR_MEDIAMTX_INTERNAL_RTSP_URL"
                    } else {
                        "OPENNVR_MEDIAMTX_RTSP_URL"
                    };
                    crate::media::base_url(chosen, &["rtsp", "rtsps"], name)?
                },
                ffmpeg: o.ffmpeg.clone().unwrap_or_else(|| PathBuf::from("ffmpeg")),
            },
            webauthn: match &o.webauthn_rp_id {
                None => {
                    if o.webauthn_origins.is_some() {
                        return Err(Error::config("OPENNVR_WEBAUTHN_ORIGINS is set without OPENNVR_WEBAUTHN_RP_ID"));
                    }
                    None
                }
                Some(id) => Some(
                    crate::security::webauthn::RelyingParty::new(
                        id,
                        o.webauthn_rp_name.as_deref().unwrap_or(""),
                        &o.webauthn_origins.clone().unwrap_or_default(),
                    )
                    .map_err(|e| Error::config(format!("OPENNVR_WEBAUTHN_RP_ID / OPENNVR_WEBAUTHN_ORIGINS: {e}")))?,
                ),
            },
            argon2_memory_kib: o.argon2_memory_kib.unwrap_or(19_456),
            argon2_iterations: o.argon2_iterations.unwrap_or(2),
        };
        // Without a secret the hook endpoint is off: MediaMTX is given no hook commands.
        config.media.hooks = config.hook_secret.is_some();
        Ok(config)
    }

    /// True when the server runs its own PostgreSQL (and may generate missing keys).
    pub fn is_embedded(&self) -> bool {
        matches!(self.database, Database::Embedded { .. })
    }
}

fn read_toml(path: &Path) -> Result<Options> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("OPENNVR_CONFIG: cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::config(format!("OPENNVR_CONFIG: {}: {e}", path.display())))
}

/// Refuses URLs that carry a placeholder or trivially weak password.
fn check_url(name: &str, url: &str) -> Result<()> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Error::config(format!("{name} must be a postgres:// URL")));
    }
    if let Some(password) = url_password(url)
        && crate::security::secret::is_placeholder(password.as_bytes())
    {
        return Err(Error::config(format!(
            "{name} carries a placeholder or weak password: give the database role a strong random password"
        )));
    }
    Ok(())
}

fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(bin: Option<&str>, api: Option<&str>) -> Result<Config> {
        Config::from_options(Options {
            mediamtx_bin: bin.map(PathBuf::from),
            mediamtx_api_url: api.map(str::to_owned),
            ..Options::default()
        })
    }

    #[test]
    fn an_empty_mediamtx_binary_means_never_even_beside_an_api_url() {
        assert!(with(Some(""), None).unwrap().mediamtx.is_none());
        let c = with(Some(""), Some("http://mediamtx:9997")).unwrap();
        assert!(c.mediamtx.is_none() && c.media.api_url.is_some());
    }

    #[test]
    fn a_named_mediamtx_binary_must_exist_and_excludes_an_api_url() {
        let e = with(Some("/nonexistent/mediamtx"), None).unwrap_err();
        assert!(e.message().contains("OPENNVR_MEDIAMTX_BIN"), "{}", e.message());
        let e = with(Some("/bin/sh"), Some("http://mediamtx:9997")).unwrap_err();
        assert!(e.message().contains("both set"), "{}", e.message());
        let named = with(Some("/bin/sh"), None).unwrap().mediamtx.unwrap();
        assert!(named.named && named.binary == std::path::Path::new("/bin/sh"));
    }
}
