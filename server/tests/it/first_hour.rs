//! The first hour with `nvrctl`, run as a person runs it (the binary, its standard input and
//! output): bootstrap forgiving a mistyped code and resuming after a crash.
use crate::harness::{ADMIN_PASSWORD, TestServer, temp_dir, workspace_binary};
use opennvr_server::security::totp::TotpSeed;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

/// `nvrctl args…` against `s`, with its session under `home`, the password in the environment,
/// and standard input and output piped.
fn nvrctl(s: &TestServer, home: &std::path::Path, args: &[&str]) -> Child {
    Command::new(workspace_binary("nvrctl"))
        .args(args)
        .env("NVRCTL_SERVER", s.url())
        .env("NVRCTL_PASSWORD", ADMIN_PASSWORD)
        .env("XDG_CONFIG_HOME", home)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `child`'s output up to the line giving the TOTP secret; returns the secret.
fn read_secret(child: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "nvrctl ended without showing a secret");
        if let Some(secret) = line.trim().strip_prefix("secret: ") {
            return (secret.to_owned(), out);
        }
    }
}

fn code_for(secret: &str, s: &TestServer) -> String {
    TotpSeed::from_base32(secret).unwrap().code_at(s.clock_now())
}

/// A six-digit code that is not `right`.
fn wrong(right: &str) -> String {
    if right == "123456" { "654321".into() } else { "123456".into() }
}

fn answer(stdin: &mut ChildStdin, line: &str) {
    stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_asks_again_after_a_wrong_code_with_the_same_secret() {
    let s = TestServer::start().await;
    let home = temp_dir("nvrctl-home");
    let token = s.data_dir.join("setup-token");
    let token = token.to_str().unwrap();
    let mut child = nvrctl(&s, &home, &["bootstrap", "--setup-token-file", token, "--username", "admin"]);
    let (secret, out) = read_secret(&mut child);
    let right = code_for(&secret, &s);
    let mut stdin = child.stdin.take().unwrap();
    answer(&mut stdin, &wrong(&right));
    answer(&mut stdin, &right);
    let done = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
        (child.wait_with_output().unwrap(), rest)
    })
    .await
    .unwrap();
    let (status, rest) = done;
    let err = String::from_utf8_lossy(&status.stderr).into_owned();
    assert!(status.status.success(), "{err}");
    assert!(err.contains("error: the code does not match the new secret"), "{err}");
    assert!(rest.iter().any(|l| l.starts_with("Recovery codes")), "{rest:?}");
    assert!(!rest.iter().any(|l| l.contains("secret: ")), "one secret shown, never a second: {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_after_a_bootstrap_that_died_resumes_the_enrolment_with_the_same_secret() {
    let s = TestServer::start().await;
    let home = temp_dir("nvrctl-home");
    let token = s.data_dir.join("setup-token");
    let mut child =
        nvrctl(&s, &home, &["bootstrap", "--setup-token-file", token.to_str().unwrap(), "--username", "admin"]);
    let (first, _) = read_secret(&mut child);
    // The process dies before the code is typed: the administrator exists, the factor is pending.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut login = nvrctl(&s, &home, &["login", "--username", "admin"]);
    let (again, _out) = read_secret(&mut login);
    assert_eq!(again, first, "the secret already in the authenticator app is the one asked for");
    let mut stdin = login.stdin.take().unwrap();
    answer(&mut stdin, &code_for(&again, &s));
    let status = tokio::task::spawn_blocking(move || login.wait_with_output().unwrap()).await.unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
}

/// Runs `nvrctl args…` to the end with `env` added: (success, stdout, stderr).
async fn run(s: &TestServer, home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(workspace_binary("nvrctl"));
    cmd.args(args)
        .env("NVRCTL_SERVER", s.url())
        .env("NVRCTL_PASSWORD", ADMIN_PASSWORD)
        .env("XDG_CONFIG_HOME", home)
        .env("HOME", home)
        .env_remove("NVRCTL_PROFILE")
        .env_remove("NVRCTL_API_KEY")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_said_once_with_the_next_step() {
    let s = TestServer::start().await;
    let home = temp_dir("nvrctl-home");
    let (ok, _, err) = run(&s, &home, &["cameras", "list"], &[]).await;
    assert!(!ok);
    assert_eq!(err, "error: not signed in (profile default): run `nvrctl login --username NAME`\n");
    let closed = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let (ok, _, err) = run(&s, &home, &["--server", &closed, "login", "--username", "admin"], &[]).await;
    assert!(!ok);
    assert_eq!(
        err,
        format!(
            "error: cannot reach the server at {closed}: nothing listens there (connection refused)\n\
             next: start it, or name the right one with --server URL (or NVRCTL_SERVER)\n"
        )
    );
    // A refusal in the server's words, not the gRPC status's debug form.
    let admin = s.admin().await;
    s.user(&admin, "vera", opennvr_sdk::pb::Role::Viewer).await;
    let (ok, _, _) = run(&s, &home, &["login", "--username", "vera"], &[("NVRCTL_PASSWORD", ADMIN_PASSWORD)]).await;
    assert!(!ok, "vera has a second factor: stdin gives no code");
    let (ok, _, err) =
        run(&s, &home, &["login", "--username", "vera"], &[("NVRCTL_PASSWORD", "wrong-password-1")]).await;
    assert!(!ok);
    assert_eq!(err, "error: wrong username or password\n");
    // Signed in without the right: the server's words, and where to turn.
    let file = home.join("nvrctl/session.json");
    let vera = s.client().await;
    s.login(&vera, "vera").await;
    nvrctl::session::save_to(&file, &s.url(), &vera.tokens().unwrap()).unwrap();
    let (ok, _, err) = run(&s, &home, &["users", "list"], &[]).await;
    assert!(!ok);
    let (first, next) = err.split_once('\n').unwrap();
    assert!(
        first.starts_with("error: ") && !first.contains("PermissionDenied") && !first.contains("message:"),
        "{err}"
    );
    assert_eq!(next, "next: ask an administrator (nvrctl whoami lists your permissions)\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_keep_two_users_sessions_apart() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for name in ["olga", "pete"] {
        let user = opennvr_sdk::pb::User {
            username: name.into(),
            role: opennvr_sdk::pb::Role::Operator as i32,
            ..Default::default()
        };
        let request = opennvr_sdk::pb::CreateUserRequest { user: Some(user), password: ADMIN_PASSWORD.into() };
        admin.users().create_user(request).await.unwrap();
    }
    let home = temp_dir("nvrctl-home");
    assert!(run(&s, &home, &["login", "--username", "olga"], &[]).await.0);
    // Signing pete in over olga's live session is refused, saying how to keep both.
    let (ok, _, err) = run(&s, &home, &["login", "--username", "pete"], &[]).await;
    assert!(!ok);
    assert!(err.contains("profile default holds the session of olga") && err.contains("--profile NAME"), "{err}");
    assert!(run(&s, &home, &["--profile", "night", "login", "--username", "pete"], &[]).await.0);
    let who = |profile: &'static str| {
        let (s, home) = (&s, home.clone());
        async move {
            let (ok, out, err) = run(s, &home, &["--profile", profile, "--output", "json", "whoami"], &[]).await;
            assert!(ok, "{err}");
            let me: serde_json::Value = serde_json::from_str(&out).unwrap();
            me["username"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(who("default").await, "olga");
    assert_eq!(who("night").await, "pete");
    // The default profile can be changed; the listing shows both sessions.
    assert!(run(&s, &home, &["profile", "use", "night"], &[]).await.0);
    let (_, out, _) = run(&s, &home, &["--output", "json", "whoami"], &[]).await;
    assert!(out.contains("\"pete\""), "{out}");
    let (_, out, _) = run(&s, &home, &["--output", "json", "profile", "list"], &[]).await;
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let pairs: Vec<(String, String)> = listed
        .iter()
        .map(|p| (p["profile"].as_str().unwrap().to_owned(), p["user"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(pairs, vec![("default".into(), "olga".into()), ("night".into(), "pete".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_in_the_environment_signs_a_script_in_without_a_session() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let key = opennvr_sdk::pb::ApiKey {
        name: "nightly-report".into(),
        role: opennvr_sdk::pb::Role::Viewer as i32,
        permissions: vec!["camera.read".into()],
        ..Default::default()
    };
    let made = admin
        .api_keys()
        .create_api_key(opennvr_sdk::pb::CreateApiKeyRequest { api_key: Some(key) })
        .await
        .unwrap()
        .into_inner();
    crate::cameras::create(&admin, "Gate").await;
    let home = temp_dir("nvrctl-home");
    let (ok, out, err) =
        run(&s, &home, &["--output", "json", "cameras", "list"], &[("NVRCTL_API_KEY", &made.secret)]).await;
    assert!(ok, "{err}");
    let cameras: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(cameras[0]["name"], "Gate");
    assert!(!home.join("nvrctl").exists(), "an API key run saves nothing");
    let (ok, _, err) = run(&s, &home, &["logout"], &[("NVRCTL_API_KEY", &made.secret)]).await;
    assert!(!ok);
    assert!(err.contains("an API key is no session"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_name_cameras_and_json_keeps_types() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let cam = crate::cameras::create(&admin, "Dock North").await;
    let home = temp_dir("nvrctl-home");
    let file = home.join("nvrctl/session.json");
    nvrctl::session::save_to(&file, &s.url(), &admin.tokens().unwrap()).unwrap();
    // The status table names the camera; its id is in its own column.
    let (ok, out, err) = run(&s, &home, &["cameras", "status"], &[]).await;
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.contains(&cam.id)).unwrap_or_default();
    assert!(line.contains("Dock North"), "{out}");
    // One camera is one JSON object with every field, typed.
    let (ok, out, err) = run(&s, &home, &["--output", "json", "cameras", "get", "dock north"], &[]).await;
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["name"], "Dock North");
    assert_eq!(got["password_set"], true);
    assert_eq!(got["segment_length"], 60);
    assert_eq!(got["labels"], serde_json::json!({"site": "dock"}));
    assert!(got["mediamtx_path"].as_str().unwrap().starts_with("opennvr-"), "{got}");
    assert!(got["addresses"].is_array(), "{got}");
    // Tables show the same in human units.
    let (_, out, _) = run(&s, &home, &["cameras", "get", "Dock North"], &[]).await;
    assert!(out.contains("1m") && out.contains("site=dock") && out.contains("yes"), "{out}");
    // Retention, grants and the audit trail name the camera and the user too.
    let age = prost_types::Duration { seconds: 30 * 86_400, nanos: 0 };
    let policy =
        opennvr_sdk::pb::RetentionPolicy { camera_id: cam.id.clone(), max_age: Some(age), ..Default::default() };
    let update = opennvr_sdk::pb::UpdateRetentionPolicyRequest {
        policy: Some(policy),
        update_mask: Some(prost_types::FieldMask { paths: vec!["max_age".into()] }),
    };
    admin.recordings().update_retention_policy(update).await.unwrap();
    let (_, out, _) = run(&s, &home, &["retention", "show"], &[]).await;
    let line = out.lines().find(|l| l.contains(&cam.id)).unwrap_or_default();
    assert!(line.contains("Dock North") && line.contains("30d"), "{out}");
    let wes = s.user(&admin, "wes", opennvr_sdk::pb::Role::Viewer).await;
    let wes_id = wes.auth().who_am_i(opennvr_sdk::pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap().id;
    let (ok, _, err) = run(&s, &home, &["grants", "set", "dock north", "WES", "camera.read"], &[]).await;
    assert!(ok, "{err}");
    let (_, out, _) = run(&s, &home, &["grants", "list", "--user", "wes"], &[]).await;
    let line = out.lines().find(|l| l.contains(&wes_id)).unwrap_or_default();
    assert!(line.contains("Dock North") && line.contains(" wes "), "{out}");
    let (_, out, _) = run(&s, &home, &["audit", "list", "--action", "camera.", "--limit", "5"], &[]).await;
    assert!(out.contains("camera/Dock North"), "{out}");
    // Storage for scripts is one document with numbers.
    let (ok, out, err) = run(&s, &home, &["--output", "json", "storage"], &[]).await;
    assert!(ok, "{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(st["cameras"].is_array() && st["volumes"].is_array(), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_generated_for_bash_zsh_and_fish() {
    let s = TestServer::start().await;
    let home = temp_dir("nvrctl-home");
    for (shell, marker) in [("bash", "complete -F _nvrctl"), ("zsh", "#compdef nvrctl"), ("fish", "complete -c nvrctl")]
    {
        let (ok, out, err) = run(&s, &home, &["completion", shell], &[]).await;
        assert!(ok, "{err}");
        assert!(out.contains(marker), "{shell}: {}", &out[..out.len().min(300)]);
        assert!(out.contains("retention"), "{shell} completes subcommands");
    }
}

#[tokio::test]
async fn only_the_holder_of_an_enrolment_token_gets_its_secret_again() {
    use opennvr_sdk::pb;
    let s = TestServer::start().await;
    let admin = s.client().await;
    admin.bootstrap(&s.setup_token(), "admin", ADMIN_PASSWORD).await.unwrap();
    let start = |c: &opennvr_sdk::Client, resume: &str| {
        let (c, resume) = (c.clone(), resume.to_owned());
        async move {
            let request = pb::StartTotpEnrollmentRequest { resume_enrollment_token: resume };
            c.auth().start_totp_enrollment(request).await.unwrap().into_inner()
        }
    };
    let first = start(&admin, "").await;
    let resumed = start(&admin, &first.enrollment_token).await;
    assert_eq!(resumed.secret, first.secret, "the token's holder gets the same secret");
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().unwrap().seconds;
    assert_eq!(seconds(&resumed.expire_time), seconds(&first.expire_time), "for the time it had left");
    assert_ne!(resumed.enrollment_token, first.enrollment_token);
    // The password alone (a start without the token) gives a new secret, and ends the old one.
    let fresh = start(&admin, "").await;
    assert_ne!(fresh.secret, first.secret);
    assert_ne!(start(&admin, &resumed.enrollment_token).await.secret, first.secret);
}
