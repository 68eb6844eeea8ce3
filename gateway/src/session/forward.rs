//! Sending a client's request to the upstream: the pooled connection, progress relay,
//! cancellation, the call timeout, and what a failure becomes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_core::domain::call::CallStatus;
use portico_core::domain::ids::ServerId;
use rmcp::model::{
    CancelledNotificationParam, ClientRequest, ErrorCode, ErrorData, ProtocolVersion, RequestId,
    ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RequestContext as McpContext};
use rmcp::{RoleClient, RoleServer};

use super::audit::Audit;
use super::{PortalSession, UPSTREAM_UNAVAILABLE};
use crate::transport::{DirectError, DirectRoute};
use crate::upstream::{AccessError, Connection, ProgressTo};

impl PortalSession {
    /// Sends an audited request (`tools/call`, `prompts/get`, `resources/read`) to `server_id`
    /// and records its outcome: `answer` takes the expected result out of the upstream's answer,
    /// with the status it means; anything else is an unexpected answer. If the outcome cannot
    /// be recorded, the client gets that error instead (fail closed).
    pub(super) async fn audited<T>(
        &self,
        audit: Audit<'_>,
        server_id: &ServerId,
        method: &str,
        request: ClientRequest,
        context: &McpContext<RoleServer>,
        answer: impl FnOnce(ServerResult) -> Option<(T, CallStatus)>,
    ) -> Result<T, ErrorData> {
        let connection = match self.connection(server_id).await {
            Ok(connection) => connection,
            Err(error) => {
                let cause = error.message.to_string();
                audit.record(&self.gateway, CallStatus::Unavailable, Some(cause), None).await?;
                return Err(error);
            }
        };
        match self.forward(server_id, &connection, request, context).await {
            Ok((result, waited)) => match answer(result) {
                Some((value, status)) => {
                    audit.record(&self.gateway, status, None, Some(waited)).await?;
                    Ok(value)
                }
                None => {
                    let message = format!(
                        "server `{server_id}` answered `{method}` with an unexpected result"
                    );
                    tracing::warn!(server = %server_id, method, "unexpected upstream answer");
                    let error = Some(message.clone());
                    audit
                        .record(&self.gateway, CallStatus::UpstreamError, error, Some(waited))
                        .await?;
                    Err(ErrorData::internal_error(message, None))
                }
            },
            Err((status, error, waited)) => {
                let cause = Some(error.message.to_string());
                audit.record(&self.gateway, status, cause, Some(waited)).await?;
                Err(error)
            }
        }
    }

    /// Sends `request` to the upstream, relaying progress and cancellation, within the call
    /// timeout. Returns the answer and the time spent waiting on the upstream.
    pub(super) async fn forward(
        &self,
        server_id: &ServerId,
        connection: &Arc<Connection>,
        request: ClientRequest,
        context: &McpContext<RoleServer>,
    ) -> Result<(ServerResult, Duration), (CallStatus, ErrorData, Duration)> {
        let started = Instant::now();
        if context.meta.get_progress_token().is_none() {
            if let Some((direct, version, _claim)) =
                connection.direct().and_then(|(d, v)| Some((d, v, d.claim()?)))
            {
                crate::metrics::upstream_request(true);
                return self
                    .forward_directly(server_id, connection, direct, &version, request, context)
                    .await;
            }
        }
        crate::metrics::upstream_request(false);
        // Boxed: rmcp's request path makes a future of several kB, which the direct path (most
        // calls) would otherwise carry too (see `Upstreams::connect_slot`).
        Box::pin(self.forward_through_peer(server_id, connection, request, context, started)).await
    }

    /// [`Self::forward`] through the upstream session's rmcp client: for a call with a progress
    /// token, or an upstream session that does not take requests directly.
    async fn forward_through_peer(
        &self,
        server_id: &ServerId,
        connection: &Arc<Connection>,
        request: ClientRequest,
        context: &McpContext<RoleServer>,
        started: Instant,
    ) -> Result<(ServerResult, Duration), (CallStatus, ErrorData, Duration)> {
        let timeout = self.gateway.upstreams.config().call_timeout;
        let client_token = context.meta.get_progress_token();
        let peer = connection.peer();
        let handle =
            match peer.send_cancellable_request(request, PeerRequestOptions::no_options()).await {
                Ok(handle) => handle,
                Err(error) => {
                    self.gateway.upstreams.discard(connection).await;
                    return Err((
                        CallStatus::Unavailable,
                        unavailable(server_id, &error.to_string()),
                        started.elapsed(),
                    ));
                }
            };
        let _route = match client_token {
            Some(token) => Some(
                self.gateway
                    .upstreams
                    .relay()
                    .route(
                        server_id,
                        connection.relay_id(),
                        handle.progress_token.clone(),
                        match context.extensions.get::<super::direct::ProgressStream>() {
                            Some(stream) => ProgressTo::Stream(stream.0.clone()),
                            None => ProgressTo::Session(context.peer.clone()),
                        },
                        token,
                    )
                    .await,
            ),
            None => None,
        };
        let request_id = handle.id.clone();
        let outcome = tokio::select! {
            answer = tokio::time::timeout(timeout, handle.await_response()) => answer,
            () = context.ct.cancelled() => return Err(cancelled(peer, request_id, started).await),
        };
        let waited = started.elapsed();
        match outcome {
            Ok(Ok(result)) => Ok((result, waited)),
            Ok(Err(rmcp::ServiceError::McpError(error))) => {
                Err((CallStatus::UpstreamError, error, waited))
            }
            Ok(Err(error)) => {
                if matches!(
                    error,
                    rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_)
                ) {
                    self.gateway.upstreams.discard(connection).await;
                    self.gateway.syncer.request(server_id.clone());
                }
                Err((CallStatus::Unavailable, unavailable(server_id, &error.to_string()), waited))
            }
            Err(_) => Err(timed_out(peer, request_id, server_id, timeout, waited).await),
        }
    }

    /// [`Self::forward`] for a request without a progress token on a session that takes
    /// requests directly: posted from this task, without rmcp's client (see
    /// [`crate::transport::DirectRoute`]). Cancellation, the timeout and failures are as there.
    async fn forward_directly(
        &self,
        server_id: &ServerId,
        connection: &Arc<Connection>,
        direct: &DirectRoute,
        version: &ProtocolVersion,
        request: ClientRequest,
        context: &McpContext<RoleServer>,
    ) -> Result<(ServerResult, Duration), (CallStatus, ErrorData, Duration)> {
        let started = Instant::now();
        let timeout = self.gateway.upstreams.config().call_timeout;
        let id = DirectRoute::next_id();
        let call = direct.request(id.clone(), request, version, || connection.list_changed());
        let peer = connection.peer();
        let outcome = tokio::select! {
            answer = tokio::time::timeout(timeout, call) => answer,
            () = context.ct.cancelled() => return Err(cancelled(peer, id, started).await),
        };
        let waited = started.elapsed();
        match outcome {
            Ok(Ok(Ok(result))) => Ok((result, waited)),
            Ok(Ok(Err(error))) => Err((CallStatus::UpstreamError, error, waited)),
            Ok(Err(DirectError::Transport(cause))) => {
                self.gateway.upstreams.discard(connection).await;
                self.gateway.syncer.request(server_id.clone());
                Err((CallStatus::Unavailable, unavailable(server_id, &cause), waited))
            }
            Ok(Err(DirectError::Closed)) => {
                let cause = DirectError::Closed.to_string();
                Err((CallStatus::Unavailable, unavailable(server_id, &cause), waited))
            }
            Ok(Err(DirectError::Unexpected(cause))) => {
                tracing::warn!(server = %server_id, %cause, "unexpected upstream answer");
                let message = format!("server `{server_id}` did not answer as MCP asks: {cause}");
                Err((CallStatus::UpstreamError, ErrorData::internal_error(message, None), waited))
            }
            Err(_) => Err(timed_out(peer, id, server_id, timeout, waited).await),
        }
    }

    pub(super) async fn connection(
        &self,
        server_id: &ServerId,
    ) -> Result<Arc<Connection>, ErrorData> {
        let server =
            self.gateway.models.read().catalog.get(server_id).cloned().ok_or_else(|| {
                ErrorData::invalid_params(format!("server `{server_id}` no longer exists"), None)
            })?;
        let owner = self.grant_owner(server_id);
        self.gateway.upstreams.connection(&server, owner.as_ref()).await.map_err(|e| match e {
            AccessError::Authorization { owner, reason } => {
                self.authorization_error(server_id, &owner, &reason)
            }
            AccessError::Connect(e) => {
                self.gateway.syncer.request(server_id.clone());
                unavailable(server_id, &e.cause)
            }
        })
    }
}

/// Tells the upstream that the client cancelled request `id`; what the client gets.
async fn cancelled(
    peer: &Peer<RoleClient>,
    id: RequestId,
    started: Instant,
) -> (CallStatus, ErrorData, Duration) {
    let reason = "the client cancelled the request".to_owned();
    notify_cancelled(peer, id, reason).await;
    (
        CallStatus::Cancelled,
        ErrorData::new(ErrorCode::INTERNAL_ERROR, "cancelled", None),
        started.elapsed(),
    )
}

/// Tells the upstream that request `id` ran out of time; what the client gets.
async fn timed_out(
    peer: &Peer<RoleClient>,
    id: RequestId,
    server_id: &ServerId,
    timeout: Duration,
    waited: Duration,
) -> (CallStatus, ErrorData, Duration) {
    let reason = "the portal's call timeout expired".to_owned();
    notify_cancelled(peer, id, reason).await;
    let message = format!("server `{server_id}` did not answer within {} s", timeout.as_secs_f64());
    (CallStatus::Timeout, ErrorData::new(UPSTREAM_UNAVAILABLE, message, None), waited)
}

/// Sends `notifications/cancelled` for request `id` (best effort). Boxed: rmcp's notification
/// future is about 1.5 kB, and every call's future would otherwise hold room for it (see
/// `Upstreams::connect_slot`).
async fn notify_cancelled(peer: &Peer<RoleClient>, id: RequestId, reason: String) {
    let notification = CancelledNotificationParam::new(Some(id), Some(reason));
    let _ = Box::pin(peer.notify_cancelled(notification)).await;
}

/// Marks an upstream's answer complete: 2026-07-28 clients need `resultType` on every result,
/// and an upstream on an older revision does not send it (rmcp strips it again for clients on
/// older revisions).
pub(super) fn complete(result_type: &mut Option<rmcp::model::ResultType>) {
    if result_type.is_none() {
        *result_type = Some(rmcp::model::ResultType::COMPLETE);
    }
}

pub(super) fn unavailable(server_id: &ServerId, cause: &str) -> ErrorData {
    ErrorData::new(
        UPSTREAM_UNAVAILABLE,
        format!("server `{server_id}` is unavailable: {cause}"),
        None,
    )
}
