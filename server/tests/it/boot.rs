//! Start-up: configuration refusals, migrations, schema versions, database roles, sealed keys.
use crate::harness::{TestDb, TestServer, cluster_url, master_key_file, temp_dir, test_options, url_for};
use diesel::{Connection, PgConnection, RunQueryDsl};
use opennvr_server::config::{Config, Options};
use opennvr_server::security::seal::{MasterKey, Sealed};
use opennvr_server::server::Server;
use opennvr_server::store;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

async fn boot_error(options: Options) -> String {
    let config = match Config::from_options(options) {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    match Server::boot(config, Arc::new(opennvr_server::clock::SystemClock)).await {
        Ok(_) => panic!("the server booted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn weak_or_missing_secrets_stop_the_server() {
    let db = TestDb::new();
    // No master key with an external database.
    let mut o = test_options(&db);
    o.master_key_file = None;
    assert!(boot_error(o).await.contains("OPENNVR_MASTER_KEY_FILE is required"));
    // A key file of repeated bytes, a placeholder text, a short key.
    for contents in [
        vec![0u8; 32],
        b"changeme".to_vec(),
        vec![7u8; 16],
        b"0000000000000000000000000000000000000000000000000000000000000000".to_vec(),
    ] {
        let dir = temp_dir("weak");
        let p = dir.join("master.key");
        std::fs::write(&p, &contents).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut o = test_options(&db);
        o.master_key_file = Some(p);
        let e = boot_error(o).await;
        assert!(e.contains("OPENNVR_MASTER_KEY_FILE") && (e.contains("32 random bytes") || e.contains("weak")), "{e}");
    }
    // A good key that other users can read (or write) stops the boot, saying what to run.
    for mode in [0o640, 0o604, 0o620] {
        let mut o = test_options(&db);
        let p = master_key_file(&temp_dir("exposed"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        o.master_key_file = Some(p.clone());
        let e = boot_error(o).await;
        assert!(
            e.contains("OPENNVR_MASTER_KEY_FILE") && e.contains(&format!("chmod 600 {}", p.display())),
            "{mode:o}: {e}"
        );
    }
    // A database URL with a placeholder password.
    let mut o = test_options(&db);
    o.database_url = Some("postgres://opennvr:changeme@127.0.0.1/opennvr".into());
    let e = boot_error(o).await;
    assert!(e.contains("DATABASE_URL") && e.contains("placeholder"), "{e}");
    // An owner URL without a runtime URL.
    let mut o = test_options(&db);
    o.database_url = None;
    assert!(boot_error(o).await.contains("OPENNVR_DATABASE_OWNER_URL"));
}

#[tokio::test]
async fn a_wrong_master_key_fails_loudly() {
    let s = TestServer::start().await;
    let mut options = s.options.clone();
    s.shutdown().await;
    let db = TestDb { name: options.database_url.as_ref().unwrap().rsplit('/').next().unwrap().to_owned() };
    options.master_key_file = Some(master_key_file(&temp_dir("other-key")));
    options.data_dir = Some(temp_dir("data2"));
    let _ = db;
    let e = boot_error(options).await;
    assert!(e.contains("master key"), "{e}");
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let db = TestDb::empty();
    let owner = db.owner_url();
    assert!(store::migrate(&owner).unwrap() >= 1);
    assert_eq!(store::migrate(&owner).unwrap(), 0, "nothing pending the second time");
    let mut c = PgConnection::establish(&owner).unwrap();
    assert!(store::revert_all(&mut c).unwrap() >= 1);
    let tables = crate::harness::count(
        &mut c,
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    );
    assert_eq!(tables, 0, "down removes everything up made");
    assert!(store::migrate(&owner).unwrap() >= 1);
}

#[tokio::test]
async fn a_schema_newer_than_the_server_is_refused() {
    let db = TestDb::new();
    let mut su = db.superuser();
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ('20991231000000')")
        .execute(&mut su)
        .unwrap();
    let e = store::migrate(&db.owner_url()).unwrap_err().to_string();
    assert!(e.contains("newer than this server") && e.contains("20991231000000"), "{e}");
}

#[tokio::test]
async fn the_runtime_role_has_only_what_it_needs() {
    let db = TestDb::new();
    let mut rt = PgConnection::establish(&db.runtime_url()).unwrap();
    for forbidden in [
        "CREATE TABLE intruder (x int)",
        "DROP TABLE users",
        "ALTER TABLE users ADD COLUMN x int",
        "UPDATE signing_keys SET kid = kid",
        "TRUNCATE sessions",
    ] {
        let e = diesel::sql_query(forbidden).execute(&mut rt);
        assert!(e.is_err(), "runtime role may not: {forbidden}");
    }
    diesel::sql_query("SELECT count(*) FROM users").execute(&mut rt).unwrap();
}

#[tokio::test]
async fn signing_keys_are_stored_sealed_never_in_clear() {
    let s = TestServer::start().await;
    let _admin = s.admin().await;
    let key =
        opennvr_server::security::secret::load_master_key("test", s.options.master_key_file.as_ref().unwrap()).unwrap();
    let master = MasterKey::new(&key);
    let mut su = s.db.superuser();
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        kid: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        kek_id: String,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        private_key_sealed: Vec<u8>,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT kid, kek_id, private_key_sealed FROM signing_keys").load(&mut su).unwrap();
    assert!(!rows.is_empty());
    #[derive(diesel::QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    // Every row of every table, as text.
    let tables: Vec<Dump> =
        diesel::sql_query("SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'")
            .load(&mut su)
            .unwrap();
    let mut dump = String::new();
    for t in tables {
        let rows: Vec<Dump> = diesel::sql_query(format!("SELECT x::text AS t FROM {} x", t.t)).load(&mut su).unwrap();
        rows.into_iter().for_each(|r| dump.push_str(&r.t));
    }
    for row in &rows {
        let sealed = Sealed { kek_id: row.kek_id.clone(), blob: row.private_key_sealed.clone() };
        let secret = master.open(&format!("signing_keys/{}", row.kid), &sealed).unwrap();
        assert_eq!(secret.len(), 32);
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!dump.contains(&hex), "the private key of {} appears in clear", row.kid);
        // Moved to another row's identity, the sealed key does not open.
        assert!(master.open("signing_keys/other", &sealed).is_err());
    }
    let _ = (cluster_url(), url_for);
}

/// The deployment files cannot be run here (no Docker engine): they are checked instead. Every key
/// of docker/mediamtx.yml must exist in MediaMTX's reference configuration, and the values must be
/// what the reconciler and the token signer rely on.
#[test]
fn the_deployment_files_agree_with_mediamtx_and_the_server() {
    use yaml_serde::Value;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| -> Value { yaml_serde::from_str(&std::fs::read_to_string(root.join(p)).unwrap()).unwrap() };
    let ours = read("docker/mediamtx.yml");
    let reference = read("emulator/mediamtx/mediamtx.yml");
    let (ours, reference) = (ours.as_mapping().unwrap(), reference.as_mapping().unwrap());
    for (k, v) in ours {
        let key = k.as_str().unwrap();
        assert!(reference.contains_key(k), "docker/mediamtx.yml: {key} is not a MediaMTX setting");
        if key == "pathDefaults" {
            let defaults = reference.get("pathDefaults").unwrap().as_mapping().unwrap();
            for (pk, _) in v.as_mapping().unwrap() {
                assert!(
                    defaults.contains_key(pk),
                    "docker/mediamtx.yml: pathDefaults.{} is unknown",
                    pk.as_str().unwrap()
                );
            }
        }
    }
    let get = |k: &str| ours.get(k).cloned().unwrap_or(Value::Null);
    assert_eq!(get("api"), Value::Bool(true));
    assert_eq!(get("authMethod").as_str(), Some("jwt"));
    assert!(get("authJWTJWKS").as_str().unwrap().ends_with("/.well-known/jwks.json"));
    assert_eq!(get("authJWTClaimKey").as_str(), Some("mediamtx_permissions"));
    assert_eq!(get("authJWTIssuer").as_str(), Some("opennvr"), "the server's default OPENNVR_TOKEN_ISSUER");
    assert_eq!(get("authJWTAudience").as_str(), Some(opennvr_server::media::mediamtx::AUDIENCE));
    let defaults = get("pathDefaults");
    assert_eq!(defaults.get("recordPath").and_then(Value::as_str), Some(opennvr_server::media::DEFAULT_RECORD_PATH));
    assert_eq!(defaults.get("recordFormat").and_then(Value::as_str), Some("fmp4"));
    assert_eq!(defaults.get("recordDeleteAfter").and_then(Value::as_str), Some("0s"));
    // The compose file wires the server to MediaMTX's API, and the recordings read-only into it.
    let compose = read("docker/docker-compose.yml");
    let server = &compose["services"]["opennvr"];
    assert_eq!(server["environment"]["OPENNVR_MEDIAMTX_API_URL"].as_str(), Some("http://mediamtx:9997"));
    let mounts: Vec<&str> = server["volumes"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(mounts.contains(&"recordings:/recordings:ro"), "{mounts:?}");
    // MediaMTX runs the hook client built into its image, with the secret in its environment only.
    let media = &compose["services"]["mediamtx"];
    assert_eq!(media["build"]["dockerfile"].as_str(), Some("docker/Dockerfile.mediamtx"));
    assert!(media["environment"]["OPENNVR_HOOK_SECRET"].as_str().is_some());
    assert_eq!(server["environment"]["OPENNVR_HOOK_SECRET_FILE"].as_str(), Some("/run/secrets/hook_secret"));
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile.mediamtx")).unwrap();
    assert!(dockerfile.contains("FROM bluenviron/mediamtx:1.20.1"));
    assert!(dockerfile.contains("/opennvr-hook /opennvr-hook"), "the hook client lands where the reconciler points");
    let media_mounts: Vec<&str> =
        compose["services"]["mediamtx"]["volumes"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(media_mounts.contains(&"recordings:/recordings"), "{media_mounts:?}");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = crate::harness::temp_dir("no-colour");
    let key = crate::harness::master_key_file(&dir);
    // An unreachable database: the server logs a warning and an error, then stops.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opennvr-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENNVR_LISTEN", "127.0.0.1:0")
        .env("OPENNVR_DATA_DIR", &dir)
        .env("OPENNVR_MASTER_KEY_FILE", key)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("WARN") && text.contains("ERROR"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in piped logs: {text:?}");
}
