//! Paging: every List RPC answers one page and the token of the next; these read to the end (or
//! to a number of items), so that no listing silently stops at its first page.
use crate::{Client, Result, pb};
use std::future::Future;
use tonic::{Response, Status};

/// A List RPC's response: one page of items and the token of the next page (empty at the end).
pub trait Page {
    /// What the listing lists.
    type Item;
    /// The page's items and the next page's token.
    fn into_page(self) -> (Vec<Self::Item>, String);
}

macro_rules! pages {
    ($($response:ident . $items:ident : $item:ident),* $(,)?) => {
        $(impl Page for pb::$response {
            type Item = pb::$item;
            fn into_page(self) -> (Vec<pb::$item>, String) {
                (self.$items, self.next_page_token)
            }
        })*
    };
}

pages! {
    ListUsersResponse.users: User,
    ListRolesResponse.roles: RoleDefinition,
    ListSessionsResponse.sessions: Session,
    ListCredentialsResponse.credentials: Credential,
    ListApiKeysResponse.api_keys: ApiKey,
    ListCamerasResponse.cameras: Camera,
    ListCameraStatusesResponse.statuses: CameraStatus,
    ListCameraGrantsResponse.grants: CameraGrant,
    ListSegmentsResponse.segments: Segment,
    ListExportsResponse.exports: Export,
    ListHoldsResponse.holds: Hold,
    ListRetentionPoliciesResponse.policies: RetentionPolicy,
    ListAuditEventsResponse.events: AuditEvent,
    ListAuditSigningKeysResponse.keys: AuditSigningKey,
    ListAdaptersResponse.adapters: Adapter,
    ListAdapterStatusesResponse.statuses: AdapterStatus,
    ListAdapterBindingsResponse.bindings: AdapterBinding,
    ListDetectionsResponse.detections: Detection,
    ListIdsAlertsResponse.alerts: IdsAlert,
    ListEventsResponse.events: Event,
}

/// Every item of a listing: calls `page` with the empty token, then with each
/// `next_page_token`, until a page has none.
///
/// ```no_run
/// # async fn f(client: &opennvr_sdk::Client) -> opennvr_sdk::Result<()> {
/// use opennvr_sdk::{paging::list_all, pb};
/// let users = list_all(|page_token| {
///     let mut users = client.users();
///     async move { users.list_users(pb::ListUsersRequest { page_token, ..Default::default() }).await }
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn list_all<P, F, Fut>(page: F) -> Result<Vec<P::Item>>
where
    P: Page,
    F: FnMut(String) -> Fut,
    Fut: Future<Output = std::result::Result<Response<P>, Status>>,
{
    list_up_to(usize::MAX, page).await
}

/// The first `limit` items of a listing (fewer when it has fewer), reading pages until it has
/// them.
pub async fn list_up_to<P, F, Fut>(limit: usize, mut page: F) -> Result<Vec<P::Item>>
where
    P: Page,
    F: FnMut(String) -> Fut,
    Fut: Future<Output = std::result::Result<Response<P>, Status>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    while items.len() < limit {
        let (got, next) = page(token).await?.into_inner().into_page();
        items.extend(got.into_iter().take(limit - items.len()));
        if next.is_empty() {
            break;
        }
        token = next;
    }
    Ok(items)
}

/// `Client::$all(filter)`: every item of `$rpc` on `$service()` that matches `filter` (its
/// `page_size`, else the client's [`Client::page_size`]; its `page_token` is replaced page by
/// page); and, for a listing given a `$first` name, `Client::$first(filter, limit)`: the first
/// `limit` of them.
macro_rules! listings {
    ($($(#[$doc:meta])* $all:ident $(/ $first:ident)?: $service:ident.$rpc:ident($request:ident) -> $item:ident;)*) => {
        impl Client {
            $($(#[$doc])*
            pub async fn $all(&self, filter: pb::$request) -> Result<Vec<pb::$item>> {
                let page_size = if filter.page_size > 0 { filter.page_size } else { self.page_size() };
                list_all(|page_token| {
                    let mut service = self.$service();
                    // Some requests have no field but the page's: the update is for the others.
                    #[allow(clippy::needless_update)]
                    let request = pb::$request { page_token, page_size, ..filter.clone() };
                    async move { service.$rpc(request).await }
                })
                .await
            }

            $(/// The first `limit` items (fewer when there are fewer) of
            #[doc = concat!("[`Client::", stringify!($all), "`], however many pages that takes.")]
            pub async fn $first(&self, filter: pb::$request, limit: usize) -> Result<Vec<pb::$item>> {
                let page_size = match (filter.page_size, self.page_size()) {
                    (asked, _) if asked > 0 => asked,
                    (_, default) => default.min(i32::try_from(limit).unwrap_or(i32::MAX)),
                };
                list_up_to(limit, |page_token| {
                    let mut service = self.$service();
                    // Some requests have no field but the page's: the update is for the others.
                    #[allow(clippy::needless_update)]
                    let request = pb::$request { page_token, page_size, ..filter.clone() };
                    async move { service.$rpc(request).await }
                })
                .await
            })?)*
        }
    };
}

listings! {
    /// Every user (of the filter's role, if set).
    all_users: users.list_users(ListUsersRequest) -> User;
    /// Every role definition.
    all_roles: users.list_roles(ListRolesRequest) -> RoleDefinition;
    /// Every session of the caller (or of the filter's user).
    all_sessions: auth.list_sessions(ListSessionsRequest) -> Session;
    /// Every second-factor credential of the caller (or of the filter's user).
    all_credentials: auth.list_credentials(ListCredentialsRequest) -> Credential;
    /// Every API key.
    all_api_keys: api_keys.list_api_keys(ListApiKeysRequest) -> ApiKey;
    /// Every camera the caller may see that matches the filter.
    all_cameras: cameras.list_cameras(ListCamerasRequest) -> Camera;
    /// The live status of every camera asked for (every visible one when none is).
    all_camera_statuses: cameras.list_camera_statuses(ListCameraStatusesRequest) -> CameraStatus;
    /// Every camera grant matching the filter.
    all_camera_grants: cameras.list_camera_grants(ListCameraGrantsRequest) -> CameraGrant;
    /// Every recorded segment of a camera in the filter's window.
    all_segments: recordings.list_segments(ListSegmentsRequest) -> Segment;
    /// Every clip export matching the filter.
    all_exports: recordings.list_exports(ListExportsRequest) -> Export;
    /// Every evidence hold matching the filter.
    all_holds: recordings.list_holds(ListHoldsRequest) -> Hold;
    /// Every retention policy.
    all_retention_policies: recordings.list_retention_policies(ListRetentionPoliciesRequest) -> RetentionPolicy;
    /// Every audit event matching the filter, newest first unless it asks for oldest first.
    all_audit_events / first_audit_events: audit.list_audit_events(ListAuditEventsRequest) -> AuditEvent;
    /// Every audit signing key, current and retired.
    all_audit_signing_keys: audit.list_audit_signing_keys(ListAuditSigningKeysRequest) -> AuditSigningKey;
    /// Every inference adapter.
    all_adapters: inference.list_adapters(ListAdaptersRequest) -> Adapter;
    /// The health of every adapter.
    all_adapter_statuses: inference.list_adapter_statuses(ListAdapterStatusesRequest) -> AdapterStatus;
    /// Every adapter binding matching the filter.
    all_adapter_bindings: inference.list_adapter_bindings(ListAdapterBindingsRequest) -> AdapterBinding;
    /// Every stored detection matching the filter, newest first.
    all_detections / first_detections: inference.list_detections(ListDetectionsRequest) -> Detection;
    /// Every IDS alert matching the filter, newest first.
    all_ids_alerts / first_ids_alerts: ids.list_ids_alerts(ListIdsAlertsRequest) -> IdsAlert;
    /// Every stored event matching the filter.
    all_events / first_events: events.list_events(ListEventsRequest) -> Event;
}
