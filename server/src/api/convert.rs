//! Conversions between app types and `opennvr.v1` wire messages.
use crate::app::auth::IssuedTokens;
use crate::app::mfa::{Factor, FactorKind, MfaChallenge};
use crate::domain::Role;
use crate::domain::inference::Health;
use crate::error::{Error, Result};
use crate::store::api_keys::ApiKeyRow;
use crate::store::credentials::{CredentialRow, FactorSummary};
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;
use chrono::{DateTime, Utc};
use opennvr_proto::v1 as pb;

/// A protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// Wire role of a domain role.
pub fn role_to_pb(r: Role) -> pb::Role {
    match r {
        Role::Admin => pb::Role::Admin,
        Role::Operator => pb::Role::Operator,
        Role::Viewer => pb::Role::Viewer,
        Role::Auditor => pb::Role::Auditor,
    }
}

/// Domain role of a wire role value; `None` for unspecified.
pub fn role_from_pb(field: &'static str, value: i32) -> Result<Option<Role>> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Unspecified) => Ok(None),
        Ok(pb::Role::Admin) => Ok(Some(Role::Admin)),
        Ok(pb::Role::Operator) => Ok(Some(Role::Operator)),
        Ok(pb::Role::Viewer) => Ok(Some(Role::Viewer)),
        Ok(pb::Role::Auditor) => Ok(Some(Role::Auditor)),
        Err(_) => Err(Error::invalid(field, format!("{field} {value} is not a known role"))),
    }
}

/// Parses an etag sent back by a client.
pub fn etag(field: &'static str, value: &str) -> Result<Option<i64>> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, format!("{field} is not an etag this server issued")))
}

/// Wire user with what second factors it has.
pub fn user_with(u: &UserRow, factors: Option<&FactorSummary>) -> pb::User {
    let factors = factors.copied().unwrap_or_default();
    pb::User { has_totp: factors.has_totp, passkey_count: factors.passkeys, ..user(u) }
}

/// Wire user (without its second factors).
pub fn user(u: &UserRow) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: role_to_pb(u.role) as i32,
        disabled: u.disabled,
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
        etag: format!("\"{}\"", u.version),
        has_totp: false,
        passkey_count: 0,
    }
}

/// Wire session; `current` marks the caller's own.
pub fn session(s: &SessionRow, current: uuid::Uuid) -> pb::Session {
    pb::Session {
        id: s.id.to_string(),
        user_id: s.user_id.map(|u| u.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(s.created_at)),
        last_refresh_time: Some(timestamp(s.last_refresh_at)),
        expire_time: Some(timestamp(s.expires_at)),
        client_address: s.client_address.clone(),
        user_agent: s.user_agent.clone(),
        current: s.id == current,
        step_up_time: s.step_up_at.map(timestamp),
        auth_methods: s.auth_methods.clone(),
        mfa_enrolment_required: false,
    }
}

/// Wire tokens.
pub fn tokens(t: &IssuedTokens) -> pb::Tokens {
    pb::Tokens {
        access_token: t.access_token.clone(),
        access_token_expire_time: Some(timestamp(t.access_expires_at)),
        refresh_token: t.refresh_token.clone(),
        refresh_token_expire_time: Some(timestamp(t.refresh_expires_at)),
        session_id: t.session_id.to_string(),
        user: Some(user(&t.user)),
        mfa_enrolment_required: t.mfa_enrolment_required,
    }
}

/// Wire second-factor method.
pub fn factor_kind(k: FactorKind) -> pb::SecondFactorMethod {
    match k {
        FactorKind::Totp => pb::SecondFactorMethod::Totp,
        FactorKind::Passkey => pb::SecondFactorMethod::Passkey,
        FactorKind::RecoveryCode => pb::SecondFactorMethod::RecoveryCode,
    }
}

/// Wire MFA challenge.
pub fn challenge(c: &MfaChallenge) -> pb::MfaChallenge {
    pb::MfaChallenge {
        ticket: c.ticket.clone(),
        methods: c.methods.iter().map(|m| factor_kind(*m) as i32).collect(),
        passkey_request_options_json: c.passkey_options.clone(),
        expire_time: Some(timestamp(c.expires_at)),
    }
}

/// A presented second factor; `None` when the request carries none.
pub fn factor(f: Option<pb::SecondFactor>) -> Option<Factor> {
    match f?.method? {
        pb::second_factor::Method::TotpCode(c) => Some(Factor::Totp(c)),
        pb::second_factor::Method::PasskeyAssertionJson(j) => Some(Factor::Passkey(j)),
        pb::second_factor::Method::RecoveryCode(c) => Some(Factor::RecoveryCode(c)),
    }
}

/// Wire credential (never its secret or public key).
pub fn credential(r: &CredentialRow) -> pb::Credential {
    pb::Credential {
        id: r.id.to_string(),
        user_id: r.user_id.to_string(),
        r#type: match r.kind {
            crate::domain::mfa::CredentialKind::Totp => pb::CredentialType::Totp,
            crate::domain::mfa::CredentialKind::Passkey => pb::CredentialType::Passkey,
        } as i32,
        name: r.name.clone(),
        create_time: Some(timestamp(r.created_at)),
        last_use_time: r.last_used_at.map(timestamp),
    }
}

/// Wire API key (never its secret or hash).
pub fn api_key(r: &ApiKeyRow) -> pb::ApiKey {
    pb::ApiKey {
        id: r.id.to_string(),
        name: r.name.clone(),
        user_id: r.created_by.map(|u| u.to_string()).unwrap_or_default(),
        role: role_to_pb(r.role) as i32,
        permissions: r.permissions.clone(),
        create_time: Some(timestamp(r.created_at)),
        expire_time: r.expires_at.map(timestamp),
        last_use_time: r.last_used_at.map(timestamp),
        revoke_time: r.revoked_at.map(timestamp),
        secret_prefix: r.secret_prefix.clone(),
        camera_ids: r.camera_ids.iter().map(|c| c.to_string()).collect(),
        step_up_methods: r.step_up_methods.clone(),
        created_by: r.created_by_username.clone(),
    }
}

/// A request timestamp as a time; errors name `field`.
pub fn from_timestamp(field: &'static str, t: &prost_types::Timestamp) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
        .ok_or_else(|| Error::invalid(field, format!("{field} is not a valid time")))
}

/// A wire duration of `us` microseconds.
fn duration_of_us(us: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: us.div_euclid(1_000_000),
        nanos: i32::try_from(us.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

/// Wire segment.
pub fn segment(camera: uuid::Uuid, s: &crate::store::recordings::SegmentEntry) -> pb::Segment {
    pb::Segment {
        camera_id: camera.to_string(),
        start_time: Some(timestamp(s.start_time)),
        duration: Some(duration_of_us(s.duration_us)),
        size_bytes: s.size_bytes,
        in_progress: s.state == crate::domain::recording::SegmentState::Recording,
    }
}

fn duration_of_secs(secs: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: secs, nanos: 0 }
}

use crate::domain::recording::{ExportFormat, ExportState};

/// Wire export state.
pub fn export_state(state: ExportState) -> pb::ExportState {
    match state {
        ExportState::Running => pb::ExportState::Running,
        ExportState::Succeeded => pb::ExportState::Succeeded,
        ExportState::Failed => pb::ExportState::Failed,
        ExportState::Expired => pb::ExportState::Expired,
    }
}

/// Wire export.
pub fn export(r: &crate::store::exports::ExportRow) -> pb::Export {
    pb::Export {
        id: r.id.to_string(),
        camera_id: r.camera_id.to_string(),
        start_time: Some(timestamp(r.start_time)),
        end_time: Some(timestamp(r.end_time)),
        format: match r.format {
            ExportFormat::Fmp4 => pb::MediaFormat::Fmp4,
            ExportFormat::Mp4 => pb::MediaFormat::Mp4,
        } as i32,
        state: export_state(r.state) as i32,
        reason: r.reason.clone(),
        case_id: r.case_id.clone(),
        creator_user_id: r.creator_user_id.map(|u| u.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(r.created_at)),
        finish_time: r.finished_at.map(timestamp),
        expire_time: r.expire_at.map(timestamp),
        size_bytes: r.size_bytes,
        sha256: r.sha256.clone().unwrap_or_default(),
        progress: if r.state == ExportState::Running { 0.0 } else { 1.0 },
        error: r.error.clone(),
        media_duration: Some(duration_of_us(r.media_duration_us)),
        file_name: r.file_name.clone(),
    }
}

/// Wire hold.
pub fn hold(v: &crate::app::recordings::HoldView) -> pb::Hold {
    let (h, cameras) = v;
    pb::Hold {
        id: h.id.to_string(),
        case_id: h.case_id.clone(),
        reason: h.reason.clone(),
        camera_ids: cameras.iter().map(uuid::Uuid::to_string).collect(),
        start_time: Some(timestamp(h.start_time)),
        end_time: h.end_time.map(timestamp),
        creator_user_id: h.creator_user_id.map(|u| u.to_string()).unwrap_or_default(),
        creator_username: h.creator_username.clone(),
        create_time: Some(timestamp(h.created_at)),
        release_time: h.released_at.map(timestamp),
        release_user_id: h.release_user_id.map(|u| u.to_string()).unwrap_or_default(),
        release_reason: h.release_reason.clone().unwrap_or_default(),
    }
}

/// Wire retention policy.
pub fn retention_policy(p: &crate::app::retention::Policy) -> pb::RetentionPolicy {
    pb::RetentionPolicy {
        camera_id: p.camera_id.map(|c| c.to_string()).unwrap_or_default(),
        max_age: p.max_age_secs.map(duration_of_secs),
        max_bytes: p.max_bytes,
        min_free_bytes: p.min_free_bytes,
        update_time: Some(timestamp(p.updated_at)),
        etag: p.version.to_string(),
    }
}

/// A policy change from the wire: the masked fields, unset ones meaning "no limit / inherit".
pub fn policy_change(
    p: pb::RetentionPolicy,
    mask: Option<prost_types::FieldMask>,
) -> Result<crate::app::retention::PolicyChange> {
    let mask = mask.map(|m| m.paths).unwrap_or_default();
    if mask.is_empty() {
        return Err(Error::invalid("update_mask", "update_mask is required"));
    }
    let mut change = crate::app::retention::PolicyChange {
        camera_id: p.camera_id.clone(),
        expected_version: etag("policy.etag", &p.etag)?,
        ..Default::default()
    };
    for path in &mask {
        match path.as_str() {
            "max_age" => {
                let secs = match &p.max_age {
                    None => None,
                    Some(d) if d.nanos == 0 => Some(d.seconds),
                    Some(_) => return Err(Error::invalid("policy.max_age", "policy.max_age must be whole seconds")),
                };
                change.max_age_secs = Some(secs);
            }
            "max_bytes" => change.max_bytes = Some(p.max_bytes),
            "min_free_bytes" => change.min_free_bytes = Some(p.min_free_bytes),
            other => {
                return Err(Error::invalid(
                    "update_mask",
                    format!("update_mask: {other:?} is not max_age, max_bytes or min_free_bytes"),
                ));
            }
        }
    }
    Ok(change)
}

/// Wire storage figures.
pub fn storage_stats(st: &crate::app::retention::StorageStats) -> pb::GetStorageStatsResponse {
    let cameras: Vec<pb::CameraStorage> = st
        .cameras
        .iter()
        .map(|c| pb::CameraStorage {
            camera_id: c.summary.camera_id.to_string(),
            recorded_bytes: c.summary.bytes,
            segment_count: c.summary.segments,
            oldest_segment_time: c.summary.oldest_start.map(timestamp),
            newest_segment_end_time: c.summary.newest_end.map(timestamp),
            held_bytes: c.held_bytes,
            write_bytes_per_second: c.write_bytes_per_second,
        })
        .collect();
    pb::GetStorageStatsResponse {
        volumes: st
            .volume
            .iter()
            .map(|(path, total, free, low)| pb::StorageVolume {
                path: path.clone(),
                total_bytes: *total,
                free_bytes: *free,
                low: *low,
            })
            .collect(),
        recorded_bytes: cameras.iter().map(|c| c.recorded_bytes).sum(),
        held_bytes: cameras.iter().map(|c| c.held_bytes).sum(),
        oldest_segment_time: st.cameras.iter().filter_map(|c| c.summary.oldest_start).min().map(timestamp),
        write_bytes_per_second: cameras.iter().map(|c| c.write_bytes_per_second).sum(),
        compute_time: Some(timestamp(st.computed)),
        cameras,
    }
}

/// Wire audit event.
pub fn audit_event(r: &crate::store::audit::AuditEventRow) -> pb::AuditEvent {
    let actor_type = match r.actor_type.as_str() {
        "user" => pb::ActorType::User,
        "api_key" => pb::ActorType::ApiKey,
        "system" => pb::ActorType::System,
        "anonymous" => pb::ActorType::Anonymous,
        _ => pb::ActorType::Unspecified,
    };
    let result = match r.result.as_str() {
        "success" => pb::AuditResult::Success,
        "denied" => pb::AuditResult::Denied,
        "failed" => pb::AuditResult::Failed,
        _ => pb::AuditResult::Unspecified,
    };
    pb::AuditEvent {
        sequence: r.sequence,
        id: r.id.to_string(),
        time: Some(timestamp(r.time)),
        actor: Some(pb::AuditActor {
            r#type: actor_type as i32,
            user_id: r.actor_user_id.clone(),
            username: r.actor_username.clone(),
            api_key_id: r.actor_api_key_id.clone(),
            session_id: r.actor_session_id.clone(),
            client_address: r.client_address.clone(),
            user_agent: r.user_agent.clone(),
        }),
        action: r.action.clone(),
        method: r.method.clone(),
        target_type: r.target_type.clone(),
        target_id: r.target_id.clone(),
        camera_id: r.camera_id.clone(),
        result: result as i32,
        code: r.code.clone(),
        reason: r.reason.clone(),
        details: serde_json::from_str(&r.details).unwrap_or_default(),
        request_id: r.request_id.clone(),
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
    }
}

/// Wire checkpoint.
pub fn checkpoint(c: &crate::store::audit::CheckpointRow) -> pb::AuditCheckpoint {
    pb::AuditCheckpoint {
        sequence: c.sequence,
        hash: c.hash.clone(),
        time: Some(timestamp(c.time)),
        key_id: c.key_id.clone(),
        signature: c.signature.clone(),
    }
}

/// Wire audit signing key (public half as a JWK).
pub fn audit_key(k: &crate::store::audit::AuditKeyRow) -> pb::AuditSigningKey {
    use base64::Engine;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&k.public_key);
    pb::AuditSigningKey {
        key_id: k.kid.clone(),
        algorithm: "EdDSA".to_owned(),
        public_key_jwk: serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": k.kid, "x": x})
            .to_string(),
        create_time: Some(timestamp(k.created_at)),
        retire_time: k.retired_at.map(timestamp),
    }
}

fn duration_of_ms(ms: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

/// Wire camera: never the password, only whether one is set.
pub fn camera(c: &crate::store::cameras::CameraRow) -> pb::Camera {
    use crate::domain::camera::{RecordingMode, Transport};
    pb::Camera {
        id: c.id.to_string(),
        name: c.name.clone(),
        description: c.description.clone(),
        location: c.location.clone(),
        source_url: c.source_url.clone(),
        username: c.username.clone(),
        has_password: c.password_sealed.is_some(),
        transport: match c.transport {
            Transport::Tcp => pb::RtspTransport::Tcp,
            Transport::Udp => pb::RtspTransport::Udp,
            Transport::Automatic => pb::RtspTransport::Auto,
        } as i32,
        enabled: c.enabled,
        recording_enabled: c.recording_enabled,
        recording_mode: match c.recording_mode {
            RecordingMode::Events => pb::RecordingMode::Events,
            RecordingMode::Continuous => pb::RecordingMode::Continuous,
        } as i32,
        segment_duration: Some(duration_of_ms(i64::from(c.segment_seconds) * 1000)),
        // Filled in by listings, from the recording totals.
        latest_footage_start_time: None,
        latest_footage_end_time: None,
        event_pre_roll: c.event_pre_roll_ms.map(duration_of_ms),
        event_post_roll: c.event_post_roll_ms.map(duration_of_ms),
        labels: crate::app::cameras::labels_of(c).into_iter().collect(),
        ip_addresses: c.ip_addresses.clone(),
        path_name: crate::domain::camera::path_name(c.id),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
        etag: format!("\"{}\"", c.version),
    }
}

/// Wire camera grant.
pub fn camera_grant(g: &crate::store::cameras::CameraGrantRow) -> pb::CameraGrant {
    pb::CameraGrant {
        camera_id: g.camera_id.to_string(),
        user_id: g.user_id.to_string(),
        permissions: g.permissions.clone(),
        expire_time: g.expire_at.map(timestamp),
        grantor_user_id: g.grantor_user_id.map(|u| u.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(g.created_at)),
        update_time: Some(timestamp(g.updated_at)),
    }
}

/// Wire camera status.
pub fn camera_status(st: &crate::app::cameras::CameraStatusView) -> pb::CameraStatus {
    use crate::app::cameras::SyncKind;
    use crate::domain::camera::CameraState;
    let rt = st.runtime.clone().unwrap_or_default();
    let available_time = rt
        .available_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| timestamp(t.with_timezone(&chrono::Utc)));
    pb::CameraStatus {
        camera_id: st.camera_id.to_string(),
        state: match st.state {
            CameraState::Disabled => pb::CameraState::Disabled,
            CameraState::Connecting => pb::CameraState::Connecting,
            CameraState::Online => pb::CameraState::Online,
            CameraState::Offline => pb::CameraState::Offline,
            CameraState::Error => pb::CameraState::Error,
        } as i32,
        available: rt.available,
        available_time: if rt.available { available_time } else { None },
        reader_count: rt.readers as i32,
        inbound_bytes: rt.inbound_bytes,
        outbound_bytes: rt.outbound_bytes,
        inbound_frames_in_error: rt.inbound_frames_in_error,
        tracks: rt
            .tracks
            .iter()
            .map(|(codec, w, h)| pb::MediaTrack {
                codec: codec.clone(),
                width: *w as i32,
                height: *h as i32,
                ..Default::default()
            })
            .collect(),
        last_error: st.last_error.clone().unwrap_or_default(),
        last_error_time: st.last_error.as_ref().map(|_| timestamp(st.observed)),
        recording: st.recording,
        last_segment_time: None,
        sync_state: match st.sync {
            SyncKind::InSync => pb::MediaSyncState::InSync,
            SyncKind::Pending => pb::MediaSyncState::Pending,
            SyncKind::Failed => pb::MediaSyncState::Failed,
        } as i32,
        observe_time: Some(timestamp(st.observed)),
        inbound_bitrate_bps: st.bitrate_bps,
    }
}

/// Wire connection-test result.
pub fn probe(p: &crate::media::probe::ProbeReport) -> pb::TestCameraConnectionResponse {
    use crate::media::probe::ProbeOutcome;
    let duration =
        |d: std::time::Duration| prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 };
    pb::TestCameraConnectionResponse {
        result: match p.outcome {
            ProbeOutcome::Ok => pb::ConnectionTestResult::Ok,
            ProbeOutcome::Unreachable => pb::ConnectionTestResult::Unreachable,
            ProbeOutcome::Timeout => pb::ConnectionTestResult::Timeout,
            ProbeOutcome::AuthFailed => pb::ConnectionTestResult::AuthFailed,
            ProbeOutcome::NotFound => pb::ConnectionTestResult::NotFound,
            ProbeOutcome::TlsError => pb::ConnectionTestResult::TlsError,
            ProbeOutcome::Unsupported => pb::ConnectionTestResult::Unsupported,
            ProbeOutcome::NotRtsp => pb::ConnectionTestResult::NotRtsp,
            ProbeOutcome::NoVideo => pb::ConnectionTestResult::NoVideo,
        } as i32,
        reachable: p.reachable,
        error_message: p.message.clone(),
        tracks: p
            .tracks
            .iter()
            .map(|t| pb::MediaTrack {
                codec: t.codec.clone(),
                width: t.width as i32,
                height: t.height as i32,
                ..Default::default()
            })
            .collect(),
        latency: p.describe_latency.map(duration),
        first_frame_latency: p.first_frame_latency.map(duration),
    }
}

fn camera_state_pb(s: crate::domain::camera::CameraState) -> pb::CameraState {
    use crate::domain::camera::CameraState;
    match s {
        CameraState::Disabled => pb::CameraState::Disabled,
        CameraState::Connecting => pb::CameraState::Connecting,
        CameraState::Online => pb::CameraState::Online,
        CameraState::Offline => pb::CameraState::Offline,
        CameraState::Error => pb::CameraState::Error,
    }
}

/// Wire IDS alert.
pub fn ids_alert(r: &crate::store::ids::IdsAlertRow) -> pb::IdsAlert {
    let metadata: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_value(r.metadata.clone()).unwrap_or_default();
    pb::IdsAlert {
        id: r.id.to_string(),
        time: Some(timestamp(r.time)),
        ingest_time: Some(timestamp(r.ingest_time)),
        flow_id: r.flow_id,
        in_iface: r.in_iface.clone(),
        community_id: r.community_id.clone(),
        src_ip: r.src_ip.clone(),
        src_port: r.src_port,
        dest_ip: r.dest_ip.clone(),
        dest_port: r.dest_port,
        proto: r.proto.clone(),
        app_proto: r.app_proto.clone(),
        action: match r.action.as_str() {
            "allowed" => pb::IdsAlertAction::Allowed,
            "blocked" => pb::IdsAlertAction::Blocked,
            _ => pb::IdsAlertAction::Unspecified,
        } as i32,
        gid: r.gid,
        signature_id: r.signature_id,
        rev: r.rev,
        signature: r.signature.clone(),
        category: r.category.clone(),
        severity: r.severity,
        metadata: metadata.into_iter().map(|(k, values)| (k, pb::IdsMetadataValues { values })).collect(),
        source_ip: r.source_ip.clone(),
        target_ip: r.target_ip.clone(),
        rule: r.rule.clone(),
        camera_ids: r.camera_ids.iter().map(|c| c.to_string()).collect(),
        eve_json: r.eve_json.clone(),
    }
}

/// Wire adapter health.
pub fn adapter_health(h: Health) -> pb::AdapterHealth {
    match h {
        Health::Unknown => pb::AdapterHealth::Unknown,
        Health::Healthy => pb::AdapterHealth::Healthy,
        Health::Degraded => pb::AdapterHealth::Degraded,
        Health::Unhealthy => pb::AdapterHealth::Unhealthy,
        Health::Disabled => pb::AdapterHealth::Disabled,
    }
}

/// Wire detection.
pub fn detection(d: &crate::domain::inference::Detection) -> pb::Detection {
    pb::Detection {
        id: d.id.map(|i| i.to_string()).unwrap_or_default(),
        camera_id: d.camera_id.map(|i| i.to_string()).unwrap_or_default(),
        adapter_id: d.adapter_id.to_string(),
        binding_id: d.binding_id.map(|i| i.to_string()).unwrap_or_default(),
        frame_time: d.frame_time.map(timestamp),
        label: d.found.label.clone(),
        confidence: d.found.confidence,
        bounding_box: Some(pb::BoundingBox {
            x: d.found.x,
            y: d.found.y,
            width: d.found.width,
            height: d.found.height,
        }),
        attributes: d.found.attributes.clone().into_iter().collect(),
        track_id: d.found.track_id.clone(),
        task: d.task.clone(),
    }
}

/// Wire site event.
pub fn site_event(e: &crate::domain::event::SiteEvent) -> pb::Event {
    use crate::domain::camera::CameraState;
    use crate::domain::event::{ConfigChange, EventKind};
    let (ty, severity, payload) = match &e.kind {
        EventKind::CameraState { state, previous, error } => (
            if *state == CameraState::Online { pb::EventType::CameraOnline } else { pb::EventType::CameraOffline },
            if *state == CameraState::Online { pb::EventSeverity::Info } else { pb::EventSeverity::Warning },
            pb::event::Payload::CameraState(pb::CameraStateChange {
                state: camera_state_pb(*state) as i32,
                previous_state: camera_state_pb(*previous) as i32,
                error: error.clone(),
            }),
        ),
        EventKind::CameraConfig { change, name, changed_fields, actor_user_id } => (
            match change {
                ConfigChange::Created => pb::EventType::CameraCreated,
                ConfigChange::Updated => pb::EventType::CameraUpdated,
                ConfigChange::Deleted => pb::EventType::CameraDeleted,
            },
            pb::EventSeverity::Info,
            pb::event::Payload::CameraConfig(pb::CameraConfigChange {
                camera_name: name.clone(),
                changed_fields: changed_fields.clone(),
                actor_user_id: actor_user_id.clone(),
            }),
        ),
        EventKind::MediaServer { restarted, version, started, error } => (
            if *restarted { pb::EventType::MediaServerRestarted } else { pb::EventType::MediaServerUnavailable },
            if *restarted { pb::EventSeverity::Warning } else { pb::EventSeverity::Critical },
            pb::event::Payload::MediaServer(pb::MediaServerChange {
                version: version.clone(),
                start_time: chrono::DateTime::parse_from_rfc3339(started)
                    .ok()
                    .map(|t| timestamp(t.with_timezone(&chrono::Utc))),
                error: error.clone(),
                reconcile_duration: None,
            }),
        ),
        EventKind::Recording { recording, reason } => (
            if *recording { pb::EventType::RecordingStarted } else { pb::EventType::RecordingStopped },
            if *recording { pb::EventSeverity::Info } else { pb::EventSeverity::Critical },
            pb::event::Payload::RecordingState(pb::RecordingStateChange { reason: reason.clone() }),
        ),
        EventKind::AdapterHealth { adapter_id, name, health, previous, circuit, error } => (
            if matches!(health, Health::Healthy) {
                pb::EventType::AdapterHealthy
            } else {
                pb::EventType::AdapterUnhealthy
            },
            if matches!(health, Health::Unhealthy) { pb::EventSeverity::Warning } else { pb::EventSeverity::Info },
            pb::event::Payload::AdapterHealth(pb::AdapterHealthChange {
                adapter_id: adapter_id.to_string(),
                adapter_name: name.clone(),
                health: adapter_health(*health) as i32,
                previous_health: adapter_health(*previous) as i32,
                circuit_state: circuit_state(*circuit).0 as i32,
                last_error: error.clone(),
            }),
        ),
        EventKind::Detections { adapter_id, binding_id, frame_time, detections } => (
            pb::EventType::Detection,
            pb::EventSeverity::Info,
            pb::event::Payload::Detections(pb::DetectionBatch {
                adapter_id: adapter_id.to_string(),
                binding_id: binding_id.to_string(),
                frame_time: Some(timestamp(*frame_time)),
                detections: detections.iter().map(detection).collect(),
            }),
        ),
        EventKind::IdsAlert { id, alert, cameras, ingest_time } => (
            pb::EventType::IdsAlert,
            // Suricata's severity 1 is the highest.
            match alert.severity {
                1 => pb::EventSeverity::Critical,
                2 => pb::EventSeverity::Warning,
                _ => pb::EventSeverity::Info,
            },
            pb::event::Payload::IdsAlert(ids_alert(&crate::store::ids::IdsAlertRow::of(
                *id,
                alert,
                cameras,
                *ingest_time,
            ))),
        ),
    };
    pb::Event {
        id: e.id.to_string(),
        time: Some(timestamp(e.time)),
        r#type: ty as i32,
        severity: severity as i32,
        camera_id: e.camera_id.map(|c| c.to_string()).unwrap_or_default(),
        payload: Some(payload),
    }
}

/// An adapter's circuit, and until when it is open.
pub fn circuit_state(c: crate::domain::inference::Circuit) -> (pb::CircuitState, Option<prost_types::Timestamp>) {
    use crate::domain::inference::Circuit;
    match c {
        Circuit::Closed => (pb::CircuitState::Closed, None),
        Circuit::HalfOpen => (pb::CircuitState::HalfOpen, None),
        Circuit::Open { until } => (pb::CircuitState::Open, Some(timestamp(until))),
    }
}
