//! Answering a session's `tools/call` in place.
//!
//! rmcp serves a request of a session through several tasks and channels: the HTTP bridge, the
//! session manager's routing, the service loop, a task for the handler, and back through an
//! event stream opened for the one answer. For the request that dominates a portal's traffic,
//! a call of an upstream tool, none of that machinery is needed: the answer is one JSON-RPC
//! response, with at most the upstream's progress before it and no server request. The HTTP
//! front end hands such a request to [`PortalSession::answer_directly`], which runs the same
//! handler rmcp would (`ServerHandler::call_tool` through rmcp's own request dispatch, so
//! results are shaped for the client's protocol revision exactly as before) on the request's
//! own task, and the front end answers with `application/json`, or with an event stream of the
//! progress and then the answer when the call carries a progress token ([`ProgressStream`]).
//!
//! What makes a request eligible is decided by [`PortalSession::answers_directly`]; everything
//! else (built-in tools, code mode, a call with `_meta` other than a progress token, a call
//! that may prompt the person to authorize a server) goes through rmcp as before. Policy and
//! audit are the same on both paths: the handler is the same.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use portico_policies::Principal;
use rmcp::RoleServer;
use rmcp::model::{ClientRequest, GetExtensions, GetMeta, RequestId, ServerJsonRpcMessage};
use rmcp::service::{ElicitationMode, RequestContext as McpContext};
use tokio_util::sync::CancellationToken;

use super::{BUILTINS, PortalCaller, PortalSession, SessionState};
use crate::exposed::Exposed;

/// The sessions of this process that can answer in place, by MCP session id. A session is
/// listed once its client sent `notifications/initialized`, and leaves the list when it ends.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<Arc<str>, Weak<SessionState>>>,
    /// Requests answered in place so far.
    answered: AtomicU64,
}

impl SessionRegistry {
    fn insert(&self, id: Arc<str>, state: Weak<SessionState>) {
        self.lock().insert(id, state);
    }

    fn remove(&self, id: &str, state: &Weak<SessionState>) {
        let mut sessions = self.lock();
        // A closed session's id is never reused, but compare anyway: only its own entry goes.
        if sessions.get(id).is_some_and(|listed| listed.ptr_eq(state)) {
            sessions.remove(id);
        }
    }

    fn get(&self, id: &str) -> Option<Arc<SessionState>> {
        self.lock().get(id).and_then(Weak::upgrade)
    }

    /// Sessions listed now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Requests answered in place so far (by this process's sessions).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Whether no session is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Weak<SessionState>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A session's place in the registry; leaving it when the session's state is dropped.
#[derive(Debug)]
pub(super) struct Listing {
    registry: Arc<SessionRegistry>,
    id: Arc<str>,
    state: Weak<SessionState>,
}

impl Drop for Listing {
    fn drop(&mut self) {
        self.registry.remove(&self.id, &self.state);
    }
}

/// Requests answered in place and not yet answered, by JSON-RPC id: a client's
/// `notifications/cancelled` reaches them through [`PortalSession::cancel_direct`].
#[derive(Debug, Default)]
pub(super) struct InFlight {
    requests: Mutex<HashMap<RequestId, CancellationToken>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, CancellationToken>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the upstream's progress on a call answered in place goes: the event stream that
/// answers it.
#[derive(Debug, Clone)]
pub struct ProgressStream(pub tokio::sync::mpsc::Sender<rmcp::model::ProgressNotificationParam>);

/// Removes a request from [`InFlight`] when it is answered or its client goes away.
struct Running<'a> {
    in_flight: &'a InFlight,
    id: RequestId,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.id);
    }
}

impl PortalSession {
    /// The session `id` of this process, if it can answer in place.
    pub fn direct(gateway: &Arc<crate::Gateway>, id: &str) -> Option<PortalSession> {
        let state = gateway.sessions.get(id)?;
        state.peer.get()?;
        Some(PortalSession { gateway: Arc::clone(gateway), state })
    }

    /// Lists this session under `id` (once), keeping `peer` for answers given in place.
    pub(super) fn list(&self, id: &str, peer: &rmcp::service::Peer<RoleServer>) {
        self.state.peer.get_or_init(|| peer.clone());
        let registry = Arc::clone(&self.gateway.sessions);
        let id: Arc<str> = Arc::from(id);
        let state = Arc::downgrade(&self.state);
        let mut listed = false;
        self.state.listing.get_or_init(|| {
            listed = true;
            Listing { registry, id: Arc::clone(&id), state: state.clone() }
        });
        if listed {
            self.gateway.sessions.insert(id, state);
        }
    }

    /// The protocol revision the session's client negotiated.
    pub fn protocol_version(&self) -> Option<String> {
        let peer = self.state.peer.get()?;
        Some(peer.peer_info()?.protocol_version.to_string())
    }

    /// Whether `request` from `caller` can be answered in place: a call of an upstream tool
    /// (not a built-in, which may prompt, toggle or run code), with no `_meta` but a progress
    /// token (a per-request protocol revision and the rest are rmcp's to read), while no
    /// authorization prompt is pending for this session (an elicitation rides the request's
    /// event stream).
    pub fn answers_directly(
        &self,
        caller: &PortalCaller,
        exposed: &Exposed,
        request: &ClientRequest,
    ) -> bool {
        let ClientRequest::CallToolRequest(call) = request else { return false };
        let meta = request.get_meta();
        let only_progress = meta.len() == usize::from(meta.get_progress_token().is_some());
        only_progress
            && call.params.meta.as_ref().is_none_or(|meta| meta.is_empty())
            && !BUILTINS.contains(&call.params.name.as_ref())
            && !self.may_prompt(caller, exposed)
    }

    /// Whether a call now may send the person a URL elicitation for servers new to the session
    /// (see `prompt_for_new_servers`).
    fn may_prompt(&self, caller: &PortalCaller, exposed: &Exposed) -> bool {
        let Some(peer) = self.state.peer.get() else { return true };
        matches!(caller.principal, Principal::User { .. })
            && peer.supported_elicitation_modes().contains(&ElicitationMode::Url)
            && !self.unprompted(exposed).is_empty()
    }

    /// Answers `request` (id `id`) through the session's handler on the caller's task. `parts`
    /// are the HTTP request's, with the caller and its view in their extensions as rmcp's
    /// bridge would put them; the upstream's progress goes to `progress` (when the request has
    /// a progress token).
    pub async fn answer_directly(
        &self,
        id: RequestId,
        request: ClientRequest,
        parts: http::request::Parts,
        progress: Option<ProgressStream>,
    ) -> ServerJsonRpcMessage {
        let Some(peer) = self.state.peer.get().cloned() else {
            let error = rmcp::model::ErrorData::internal_error("the session is not ready", None);
            return ServerJsonRpcMessage::error(error, Some(id));
        };
        let in_flight = &self.state.in_flight;
        let mut request = request;
        let mut context = McpContext::new(id.clone(), peer);
        // As rmcp's service loop does: the request's `_meta` and extensions become the
        // context's.
        std::mem::swap(&mut context.meta, request.get_meta_mut());
        std::mem::swap(&mut context.extensions, request.extensions_mut());
        context.extensions.insert(parts);
        crate::metrics::answered_in_place(progress.is_some());
        self.gateway.sessions.answered.fetch_add(1, Ordering::Relaxed);
        if let Some(progress) = progress {
            context.extensions.insert(progress);
        }
        in_flight.lock().insert(id.clone(), context.ct.clone());
        let _running = Running { in_flight, id: id.clone() };
        match Box::pin(rmcp::service::Service::<RoleServer>::handle_request(self, request, context))
            .await
        {
            Ok(result) => ServerJsonRpcMessage::response(result, id),
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        }
    }

    /// Cancels a request answered in place (the client's `notifications/cancelled`).
    pub(super) fn cancel_direct(&self, id: &RequestId) {
        if let Some(ct) = self.state.in_flight.lock().get(id) {
            ct.cancel();
        }
    }

    /// Requests of this session being answered in place now.
    pub fn answering_directly(&self) -> usize {
        self.state.in_flight.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `make` returns, without making one.
    fn future_size<A, F: std::future::Future>(_make: impl Fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each level of the request path moves its callee's future into its own, copying its
    /// whole size (the largest state it can be in): room for a rare, large state deep in the
    /// path is copied several times per call. The rare states are boxed, and so is the
    /// handler's future, once, here; these bounds catch a large future coming back onto the
    /// path (before, the handler's future was 18.6 kB and this one about 20 kB).
    #[test]
    fn a_calls_futures_stay_small() {
        type Args = (&'static PortalSession, RequestId, ClientRequest, http::request::Parts);
        let answer = future_size(|(session, id, request, parts): Args| {
            session.answer_directly(id, request, parts, None)
        });
        let handler = future_size(
            |(session, request, context): (
                &'static PortalSession,
                ClientRequest,
                McpContext<RoleServer>,
            )| {
                rmcp::service::Service::<RoleServer>::handle_request(session, request, context)
            },
        );
        eprintln!("answer_directly: {answer} bytes, the handler: {handler} bytes");
        assert!(answer <= 4 * 1024, "answer_directly's future is {answer} bytes");
        assert!(handler <= 12 * 1024, "the handler's future is {handler} bytes");
    }
}
