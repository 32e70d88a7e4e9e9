//! Network intrusion alerts from Suricata's EVE log: read once through rotation, truncation, partial
//! and malformed lines and restarts; linked to cameras; listed and streamed only to who may see them.
use crate::harness::{TestServer, temp_dir};
use opennvr_sdk::pb;
use opennvr_server::intrusion::EveFollower;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tonic::Code;

/// One EVE alert line (without its newline).
pub fn alert_line(time: &str, src_ip: &str, signature_id: i64) -> String {
    format!(
        r#"{{"timestamp":"{time}","flow_id":1402357817263281,"in_iface":"eth1","event_type":"alert","src_ip":"{src_ip}","src_port":49152,"dest_ip":"198.51.100.7","dest_port":443,"proto":"TCP","app_proto":"tls","alert":{{"action":"allowed","gid":1,"signature_id":{signature_id},"rev":3,"signature":"ET POLICY Possible IoT device phoning home","category":"Potential Corporate Privacy Violation","severity":2}}}}"#
    )
}

fn alert(sid: i64) -> String {
    alert_line("2026-11-25T03:12:19.097374+0000", "10.0.0.23", sid) + "\n"
}

const FLOW: &str = r#"{"timestamp":"2026-11-25T03:12:20.000000+0000","event_type":"flow","src_ip":"10.0.0.23","dest_ip":"198.51.100.7"}
"#;

pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The signature ids of every stored alert, sorted (each test alert has its own).
async fn stored(s: &TestServer) -> Vec<i64> {
    let mut su = s.db.superuser();
    #[derive(diesel::QueryableByName)]
    struct Sid {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        signature_id: i64,
    }
    let rows: Vec<Sid> = diesel::RunQueryDsl::load(
        diesel::sql_query("SELECT signature_id FROM ids_alerts ORDER BY signature_id"),
        &mut su,
    )
    .unwrap();
    rows.into_iter().map(|r| r.signature_id).collect()
}

pub fn follower(s: &TestServer, path: &Path) -> EveFollower {
    EveFollower::new(path.to_path_buf(), s.store.clone(), Arc::new(s.clock.clone()), s.events.clone())
}

#[tokio::test]
async fn every_alert_is_read_once_through_partial_lines_malformed_lines_restarts_rotations_and_truncation() {
    let s = TestServer::start().await;
    let dir = temp_dir("eve");
    let eve = dir.join("eve.json");
    let mut reader = follower(&s, &eve);
    // No log yet: nothing to do, no trouble.
    assert_eq!(reader.pass().await.unwrap().alerts, 0);
    // Two alerts, a flow record (skipped) and a third alert still being written.
    let third = alert(3);
    append(&eve, &(alert(1) + FLOW + &alert(2) + &third[..40]));
    assert_eq!(reader.pass().await.unwrap().alerts, 2);
    assert_eq!(stored(&s).await, vec![1, 2]);
    // The rest of the third line, a malformed line and a fourth alert: the bad line is skipped.
    append(&eve, &(third[40..].to_owned() + "{\"event_type\":\"alert\",\"timestamp\":\n" + &alert(4)));
    let pass = reader.pass().await.unwrap();
    assert_eq!((pass.alerts, pass.malformed), (2, 1));
    assert_eq!(stored(&s).await, vec![1, 2, 3, 4]);
    // A restart mid-file: a new reader takes up where the last one stopped.
    drop(reader);
    append(&eve, &alert(5));
    let mut reader = follower(&s, &eve);
    assert_eq!(reader.pass().await.unwrap().alerts, 1);
    assert_eq!(stored(&s).await, vec![1, 2, 3, 4, 5]);
    // Rotation (rename + new file) while reading. Suricata writes on to the renamed file until it
    // is told to reopen its log: a line half-written at the rename is finished there, and the old
    // file is followed until it stays unchanged for a few seconds; only then comes the new one.
    let sixth = alert(6);
    let rotated = dir.join("eve.json.1");
    append(&eve, &sixth[..50]);
    std::fs::rename(&eve, &rotated).unwrap();
    append(&eve, &alert(7));
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, vec![1, 2, 3, 4, 5], "half a line is no alert");
    append(&rotated, &sixth[50..]);
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, vec![1, 2, 3, 4, 5, 6], "written to the renamed file after the rename");
    s.clock.advance(chrono::Duration::seconds(2));
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, vec![1, 2, 3, 4, 5, 6], "the old file may still grow");
    s.clock.advance(opennvr_server::intrusion::ROTATION_GRACE);
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, vec![1, 2, 3, 4, 5, 6, 7], "quiet long enough: the new file is read");
    // A writer cut short leaves its last line without a newline: once the old file is finished,
    // that line counts.
    append(&eve, alert(8).trim_end());
    std::fs::rename(&eve, dir.join("eve.json.3")).unwrap();
    append(&eve, &alert(9));
    reader.pass().await.unwrap();
    s.clock.advance(opennvr_server::intrusion::ROTATION_GRACE);
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, (1..=9).collect::<Vec<_>>());
    // Rotation while the server is down: the rotated file is found by its identity and followed
    // (Suricata may still be writing to it) until it is quiet, then the new one is read.
    drop(reader);
    append(&eve, &alert(10));
    let rotated = dir.join("eve.json.2");
    std::fs::rename(&eve, &rotated).unwrap();
    append(&eve, &alert(11));
    let mut reader = follower(&s, &eve);
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, (1..=10).collect::<Vec<_>>());
    append(&rotated, &alert(15));
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, [(1..=10).collect::<Vec<_>>(), vec![15]].concat());
    s.clock.advance(opennvr_server::intrusion::ROTATION_GRACE);
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, [(1..=11).collect::<Vec<_>>(), vec![15]].concat());
    // Truncation in place (copytruncate): read again from the start of what is there now.
    std::fs::OpenOptions::new().write(true).truncate(true).open(&eve).unwrap();
    append(&eve, &alert(12));
    reader.pass().await.unwrap();
    assert_eq!(stored(&s).await, [(1..=12).collect::<Vec<_>>(), vec![15]].concat());
    // Nothing new: nothing stored twice, however often it looks.
    for _ in 0..3 {
        assert_eq!(reader.pass().await.unwrap().alerts, 0);
    }
    // Two readers of one log (two servers, or a stale one) never store an alert twice: the one
    // behind is refused and takes up the other's position, and a reader that finds the log
    // truncated never moves a position another reader has moved on.
    let mut other = follower(&s, &eve);
    assert_eq!(other.pass().await.unwrap().alerts, 0);
    append(&eve, &alert(13));
    assert_eq!(reader.pass().await.unwrap().alerts, 1);
    assert!(other.pass().await.is_err(), "the reader behind is refused");
    append(&eve, &alert(14));
    assert_eq!(other.pass().await.unwrap().alerts, 1, "then it goes on from the stored position");
    assert!(reader.pass().await.is_err());
    assert_eq!(reader.pass().await.unwrap().alerts, 0);
    assert_eq!(stored(&s).await, (1..=15).collect::<Vec<_>>());
    // A position stored by an older version kept only the 64 bytes before the offset: that still
    // says "not rewritten", and nothing is read twice.
    let mut su = s.db.superuser();
    diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE ids_eve_positions SET tail = substring(tail FROM length(tail) - 63)"),
        &mut su,
    )
    .unwrap();
    let mut upgraded = follower(&s, &eve);
    assert_eq!(upgraded.pass().await.unwrap().alerts, 0);
    append(&eve, &alert(16));
    assert_eq!(upgraded.pass().await.unwrap().alerts, 1);
    assert_eq!(stored(&s).await, (1..=16).collect::<Vec<_>>());
}

/// Two cameras by address (Lobby A at 10.0.0.23, Vault B at 10.0.0.24) and Olga, an operator
/// granted A only.
struct TwoCameras {
    s: TestServer,
    admin: opennvr_sdk::Client,
    a: pb::Camera,
    b: pb::Camera,
    olga: opennvr_sdk::Client,
}

impl TwoCameras {
    async fn start() -> TwoCameras {
        let s = TestServer::start().await;
        let admin = s.admin().await;
        let mut cams = Vec::new();
        for (name, ip) in [("Lobby", "10.0.0.23"), ("Vault", "10.0.0.24")] {
            let camera = pb::Camera { source_url: format!("rtsp://{ip}:554/stream1"), ..crate::cameras::camera(name) };
            let req = pb::CreateCameraRequest { camera: Some(camera), password: String::new() };
            cams.push(admin.cameras().create_camera(req).await.unwrap().into_inner().camera.unwrap());
        }
        let b = cams.pop().unwrap();
        let a = cams.pop().unwrap();
        let olga = s.user(&admin, "olga", pb::Role::Operator).await;
        let user = olga.auth().who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner().user.unwrap();
        crate::cameras::grant(&admin, &a, &user, &["camera.read"], None).await.unwrap();
        TwoCameras { s, admin, a, b, olga }
    }

    /// Suricata reports five alerts, read in one pass: signature 1 about A, 2 about B, 3 about no
    /// camera, 4 from A to B, 5 from B to A.
    async fn five_alerts(&self) -> Vec<pb::IdsAlert> {
        let eve = temp_dir("eve").join("eve.json");
        let t = "2026-11-25T03:12:19.097374+0000";
        let lines = [
            alert_line(t, "10.0.0.23", 1),
            alert_line(t, "10.0.0.24", 2),
            alert_line(t, "192.168.9.9", 3),
            alert_line(t, "10.0.0.23", 4).replace("198.51.100.7", "10.0.0.24"),
            alert_line(t, "10.0.0.24", 5).replace("198.51.100.7", "10.0.0.23"),
        ];
        append(&eve, &(lines.join("\n") + "\n"));
        follower(&self.s, &eve).pass().await.unwrap();
        self.listed(&self.admin, pb::ListIdsAlertsRequest::default()).await
    }

    async fn listed(&self, c: &opennvr_sdk::Client, r: pb::ListIdsAlertsRequest) -> Vec<pb::IdsAlert> {
        c.ids().list_ids_alerts(r).await.unwrap().into_inner().alerts
    }
}

fn by_sid(alerts: &[pb::IdsAlert], sid: i64) -> pb::IdsAlert {
    alerts.iter().find(|x| x.signature_id == sid).unwrap().clone()
}

fn sids(alerts: &[pb::IdsAlert]) -> Vec<i64> {
    let mut sids: Vec<i64> = alerts.iter().map(|x| x.signature_id).collect();
    sids.sort();
    sids
}

#[tokio::test]
async fn alerts_are_linked_to_the_cameras_whose_address_they_carry() {
    let f = TwoCameras::start().await;
    let all = f.five_alerts().await;
    assert_eq!(all.len(), 5);
    assert_eq!(by_sid(&all, 1).camera_ids, vec![f.a.id.clone()]);
    assert_eq!(by_sid(&all, 2).camera_ids, vec![f.b.id.clone()]);
    assert!(by_sid(&all, 3).camera_ids.is_empty());
    assert_eq!(by_sid(&all, 4).camera_ids, vec![f.a.id.clone(), f.b.id.clone()]);
    assert_eq!(by_sid(&all, 5).camera_ids, vec![f.b.id.clone(), f.a.id.clone()]);
    let one = by_sid(&all, 1);
    assert_eq!((one.src_ip.as_str(), one.dest_port, one.severity), ("10.0.0.23", 443, 2));
    assert_eq!(one.action, pb::IdsAlertAction::Allowed as i32);
    assert!(one.eve_json.contains("\"signature_id\":1,"));
}

#[tokio::test]
async fn a_user_granted_one_camera_reads_every_alert_naming_only_that_camera() {
    let f = TwoCameras::start().await;
    let all = f.five_alerts().await;
    // Linking an alert to a camera she may not see never hides it from her: it names no camera.
    let hers = f.listed(&f.olga, pb::ListIdsAlertsRequest::default()).await;
    assert_eq!(sids(&hers), vec![1, 2, 3, 4, 5]);
    assert!(by_sid(&hers, 2).camera_ids.is_empty(), "camera B is not named to her");
    assert_eq!(by_sid(&hers, 4).camera_ids, vec![f.a.id.clone()], "camera B is not named to her");
    assert_eq!(by_sid(&hers, 5).camera_ids, vec![f.a.id.clone()]);
    let get = |id: String| async {
        let mut ids = f.olga.ids();
        ids.get_ids_alert(pb::GetIdsAlertRequest { ids_alert_id: id }).await.map(|r| r.into_inner().alert.unwrap())
    };
    assert_eq!(get(by_sid(&hers, 4).id).await.unwrap().camera_ids, vec![f.a.id.clone()]);
    assert!(get(by_sid(&all, 2).id).await.unwrap().camera_ids.is_empty());
    // Asking for camera B's alerts would tell which alerts it is linked to: it is not found.
    let of_b = pb::ListIdsAlertsRequest { camera_id: f.b.id.clone(), ..Default::default() };
    assert_eq!(f.olga.ids().list_ids_alerts(of_b).await.unwrap_err().code(), Code::NotFound);
    let of_a = f.listed(&f.olga, pb::ListIdsAlertsRequest { camera_id: f.a.id.clone(), ..Default::default() }).await;
    assert_eq!(sids(&of_a), vec![1, 4, 5]);
}

#[tokio::test]
async fn a_user_granted_one_camera_is_streamed_every_alert_naming_only_that_camera() {
    let f = TwoCameras::start().await;
    let mut watch = f
        .olga
        .events()
        .watch_events(pb::WatchEventsRequest { types: vec![pb::EventType::IdsAlert as i32], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    f.five_alerts().await;
    let mut streamed = Vec::new();
    while streamed.len() < 5 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message()).await.unwrap().unwrap();
        if let Some(pb::watch_events_response::Kind::Event(e)) = msg.and_then(|m| m.kind)
            && let Some(pb::event::Payload::IdsAlert(alert)) = e.payload
        {
            assert!(!alert.camera_ids.contains(&f.b.id), "{alert:?}");
            assert_ne!(e.camera_id, f.b.id, "{alert:?}");
            streamed.push(alert.signature_id);
        }
    }
    streamed.sort();
    assert_eq!(streamed, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn alert_listings_filter_by_camera_address_and_severity_and_name_a_bad_filter() {
    let f = TwoCameras::start().await;
    f.five_alerts().await;
    let of_a = f.listed(&f.admin, pb::ListIdsAlertsRequest { camera_id: f.a.id.clone(), ..Default::default() }).await;
    assert_eq!(sids(&of_a), vec![1, 4, 5]);
    let from_b =
        f.listed(&f.admin, pb::ListIdsAlertsRequest { src_ip: "10.0.0.24".into(), ..Default::default() }).await;
    assert_eq!(sids(&from_b), vec![2, 5]);
    let severe = f.listed(&f.admin, pb::ListIdsAlertsRequest { max_severity: 1, ..Default::default() }).await;
    assert!(severe.is_empty(), "all are severity 2");
    let bad = pb::ListIdsAlertsRequest { src_ip: "camera-7".into(), ..Default::default() };
    let bad = f.admin.ids().list_ids_alerts(bad).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("src_ip"), "{}", bad.message());
}

#[tokio::test]
async fn alerts_older_than_the_retention_are_removed() {
    let f = TwoCameras::start().await;
    f.five_alerts().await;
    let ids = opennvr_server::app::ids::IdsApp {
        store: f.s.store.clone(),
        clock: Arc::new(f.s.clock.clone()),
        retention: chrono::Duration::days(1),
    };
    assert_eq!(ids.enforce_retention().await.unwrap(), 5, "the fixtures are dated 2026-11-25");
    assert!(stored(&f.s).await.is_empty());
}

#[tokio::test]
async fn the_server_follows_the_configured_log() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    let dir = temp_dir("eve");
    let eve = dir.join("eve.json");
    options.suricata_eve_file = Some(eve.clone());
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    append(&eve, &alert(42));
    let mut found = Vec::new();
    for _ in 0..100 {
        found = admin.ids().list_ids_alerts(pb::ListIdsAlertsRequest::default()).await.unwrap().into_inner().alerts;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found.iter().map(|a| a.signature_id).collect::<Vec<_>>(), vec![42]);
}

#[tokio::test]
async fn a_camera_named_by_host_name_is_linked_by_what_the_name_resolves_to() {
    let db = crate::harness::TestDb::new();
    let mut options = crate::harness::test_options(&db);
    options.camera_networks = Some("127.0.0.0/8,::1/128,10.0.0.0/8".into());
    let s = TestServer::start_with(db, options).await;
    let admin = s.admin().await;
    let mut made = Vec::new();
    for (name, url) in [("Door", "rtsp://localhost:554/stream1"), ("Yard", "rtsp://10.0.0.31:554/stream1")] {
        let camera = pb::Camera { source_url: url.into(), ..crate::cameras::camera(name) };
        let created = admin
            .cameras()
            .create_camera(pb::CreateCameraRequest { camera: Some(camera), password: String::new() })
            .await
            .unwrap();
        made.push(created.into_inner().camera.unwrap());
    }
    let dir = temp_dir("eve");
    let eve = dir.join("eve.json");
    let t = "2026-11-25T03:12:19.097374+0000";
    // From the door camera's address: its URL names localhost, which is 127.0.0.1.
    append(&eve, &(alert_line(t, "127.0.0.1", 1) + "\n"));
    assert_eq!(follower(&s, &eve).pass().await.unwrap().alerts, 1);
    let all = admin.ids().list_ids_alerts(pb::ListIdsAlertsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.alerts.len(), 1);
    assert_eq!(all.alerts[0].camera_ids, vec![made[0].id.clone()]);
}
