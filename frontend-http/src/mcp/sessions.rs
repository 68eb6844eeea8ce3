//! The MCP sessions of this process: rmcp's [`SessionManager`] without a task per session.
//!
//! rmcp's `LocalSessionManager` gives every session a worker task, reached through three
//! channels, that routes the session's messages between the HTTP requests and the session's
//! service loop. Here a session is a routing table behind a lock, which both sides use
//! directly: a client's message goes to the service loop through one channel (of boxed
//! messages, so its first block is small), and the service loop's messages are routed, given
//! their event ids and cached in the caller's own `send`. A session then costs a few hundred
//! bytes beside rmcp's service loop instead of about 55 kB, and a message crosses no extra
//! task.
//!
//! The behaviour is `LocalSessionManager`'s, as MCP's streamable HTTP transport asks:
//! - A request gets its own event stream, which ends with the request's answer. Progress for
//!   the request's progress token, cancellations of it, and server requests made while
//!   handling it (SEP-2260) ride that stream; other server messages go to the session's
//!   standalone stream (the client's `GET`).
//! - Every event has an id (`<index>/<stream>` on a request's stream, `<index>` on the
//!   standalone one), and each stream keeps its last [`STREAM_CAPACITY`] events, so a client
//!   that lost a stream resumes it with `Last-Event-ID`. A request's stream starts with a
//!   priming event (an id and the `retry` hint) when the server advertises one.
//! - One `GET` at a time carries the standalone stream; while it is open, further `GET`s are
//!   kept alive but get nothing (rmcp's "shadow" streams), so competing reconnections do not
//!   take the stream from each other. The first `GET` after a time without one gets the
//!   messages that were cached meanwhile and never handed to a stream.
//! - A session with no message either way for the idle timeout ends; so does a closed one
//!   (`DELETE`), and every session when the server stops. Its streams end with it.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, GetExtensions, GetMeta, ProgressToken, RequestId,
    ServerJsonRpcMessage, ServerNotification,
};
use rmcp::service::OriginatingRequestId;
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How many events a stream holds for a client that is slow to read them, and how many it
/// keeps for a client that resumes it.
pub const STREAM_CAPACITY: usize = 16;

/// How many client messages may wait for the session's service loop before the next waits.
const INBOX_CAPACITY: usize = 16;

/// How long a new session may take to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest time between two sweeps for idle sessions.
const MAX_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How many `GET` streams beside the standalone one a session keeps alive; the oldest goes
/// first.
const MAX_IDLE_STREAMS: usize = 32;

/// Why a session could not take a message.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no such session")]
    Unknown,
    #[error("the session has ended")]
    Ended,
    #[error("the session did not answer `initialize` within {} s", INITIALIZE_TIMEOUT.as_secs())]
    InitializeTimeout,
    #[error("`{0}` is not an event id of this session")]
    UnknownEvent(String),
}

/// The sessions of the MCP endpoint.
#[derive(Debug)]
pub struct Sessions {
    inner: Arc<Inner>,
    /// Starts the sweep of idle sessions, from within the runtime, with the first session.
    sweeper: Once,
}

#[derive(Debug)]
struct Inner {
    sessions: RwLock<HashMap<SessionId, Arc<Session>>>,
    /// A session with no message for this long ends.
    idle: Duration,
    /// The `retry` hint of a request stream's priming event.
    sse_retry: Option<Duration>,
    /// What a session's last-seen time counts from.
    epoch: Instant,
}

impl Sessions {
    /// Sessions that end after `idle` without a message; request streams are primed with
    /// `sse_retry` (rmcp's server default is 3 s).
    pub fn new(idle: Duration, sse_retry: Option<Duration>) -> Self {
        Sessions {
            inner: Arc::new(Inner {
                sessions: RwLock::default(),
                idle,
                sse_retry,
                epoch: Instant::now(),
            }),
            sweeper: Once::new(),
        }
    }

    /// Whether session `id` is open; if it is, it counts as in use now. The front end calls
    /// this for the requests it answers without rmcp.
    pub fn touch(&self, id: &str) -> bool {
        self.inner.live(id).is_some()
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SessionId, Arc<Session>>> {
        self.sessions.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SessionId, Arc<Session>>> {
        self.sessions.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        millis_since(self.epoch)
    }

    /// Session `id` if it is open and not idle too long, marked as in use now. One found idle
    /// too long ends here, even before the sweep comes by.
    fn live(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.read().get(id).cloned()?;
        let now = self.now();
        if session.idle_since(now) > self.idle {
            self.end(id);
            return None;
        }
        session.seen.store(now, Ordering::Relaxed);
        Some(session)
    }

    fn session(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        self.live(id).ok_or(SessionError::Unknown)
    }

    fn end(&self, id: &str) {
        if let Some(session) = self.write().remove(id) {
            session.end();
        }
    }

    /// Ends the sessions idle for longer than the timeout.
    fn sweep(&self) {
        let now = self.now();
        let idle: Vec<SessionId> = self
            .read()
            .iter()
            .filter(|(_, session)| session.idle_since(now) > self.idle)
            .map(|(id, _)| Arc::clone(id))
            .collect();
        for id in idle {
            tracing::debug!(session = %id, "MCP session ended after its idle timeout");
            self.end(&id);
        }
    }
}

/// Milliseconds since `epoch`: a session's last-seen time.
fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Sweeps `sessions` for idle ones a few times per idle timeout, until they are dropped.
async fn sweep(sessions: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(sessions) = sessions.upgrade() else { return };
        sessions.sweep();
    }
}

/// One session: the way to its service loop, and the routes of its messages back.
#[derive(Debug)]
struct Session {
    inbox: mpsc::Sender<Box<ClientJsonRpcMessage>>,
    /// Cancelled when the session ends: its service loop then receives nothing more.
    ended: CancellationToken,
    /// When a message last went either way (ms since [`Inner::epoch`]).
    seen: AtomicU64,
    /// Shared with the session's transport, which marks it seen too.
    epoch: Instant,
    routes: Mutex<Routes>,
}

impl Session {
    fn idle_since(&self, now: u64) -> Duration {
        Duration::from_millis(now.saturating_sub(self.seen.load(Ordering::Relaxed)))
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark_seen(&self) {
        self.seen.store(millis_since(self.epoch), Ordering::Relaxed);
    }

    /// Hands `message` to the service loop.
    async fn deliver(&self, message: ClientJsonRpcMessage) -> Result<(), SessionError> {
        if self.ended.is_cancelled() {
            return Err(SessionError::Ended);
        }
        self.inbox.send(Box::new(message)).await.map_err(|_| SessionError::Ended)
    }

    /// Ends the session: its service loop stops receiving, and every open stream ends.
    fn end(&self) {
        self.ended.cancel();
        let mut routes = self.routes();
        routes.ended = true;
        routes.streams.clear();
        routes.by_request.clear();
        routes.by_progress.clear();
        routes.standalone.tx = None;
        routes.idle_streams.clear();
        routes.initialize = None;
    }
}

/// Where a session's messages go.
#[derive(Debug, Default)]
struct Routes {
    /// The next request stream's number.
    next_stream: u64,
    /// The request streams, by number.
    streams: HashMap<u64, Outbound>,
    /// Which stream a client request's messages ride, by its JSON-RPC id.
    by_request: HashMap<RequestId, u64>,
    /// Which stream carries progress for a client's token.
    by_progress: HashMap<ProgressToken, u64>,
    /// The standalone stream (the client's `GET`).
    standalone: Outbound,
    /// Further `GET` streams, kept open but given nothing.
    idle_streams: Vec<mpsc::Sender<ServerSseMessage>>,
    /// Takes the answer to `initialize`.
    initialize: Option<oneshot::Sender<ServerJsonRpcMessage>>,
    ended: bool,
}

/// One event stream of a session: its live sender, if a client reads it, and its last
/// events for resumption.
#[derive(Debug, Default)]
struct Outbound {
    /// `None` for the standalone stream.
    number: Option<u64>,
    tx: Option<mpsc::Sender<ServerSseMessage>>,
    cache: VecDeque<ServerSseMessage>,
    /// The next event's index.
    next: usize,
    /// Events before this index were handed to a stream.
    handed: usize,
    /// The keys in [`Routes::by_request`] and [`Routes::by_progress`] naming this stream.
    keys: Vec<Key>,
}

#[derive(Debug)]
enum Key {
    Request(RequestId),
    Progress(ProgressToken),
}

/// An event that did not fit in its stream at once: it goes when the client has read.
struct Pending(mpsc::Sender<ServerSseMessage>, ServerSseMessage);

impl Outbound {
    fn new(number: u64, tx: mpsc::Sender<ServerSseMessage>) -> Self {
        Outbound { number: Some(number), tx: Some(tx), ..Outbound::default() }
    }

    fn event_id(&self, index: usize) -> String {
        match self.number {
            Some(number) => format!("{index}/{number}"),
            None => index.to_string(),
        }
    }

    /// Gives `event` its id, keeps it for resumption and sends it to the stream's reader, if
    /// one reads it.
    fn push(&mut self, mut event: ServerSseMessage) -> Option<Pending> {
        let index = self.next;
        self.next += 1;
        event.event_id = Some(self.event_id(index));
        if self.cache.len() == STREAM_CAPACITY {
            self.cache.pop_front();
        }
        self.cache.push_back(event.clone());
        let tx = self.tx.as_ref().filter(|tx| !tx.is_closed())?;
        self.handed = self.next;
        match tx.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            Err(mpsc::error::TrySendError::Full(event)) => Some(Pending(tx.clone(), event)),
        }
    }

    /// A new reader for the stream, which first gets the kept events after `index` (all kept
    /// events if `None`).
    fn attach(&mut self, after: Option<usize>) -> mpsc::Receiver<ServerSseMessage> {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let first = after.map_or(0, |index| index + 1);
        // The cache holds at most the channel's capacity, so every kept event fits.
        for event in self.cache.iter().filter(|event| index_of(event) >= first) {
            let _ = tx.try_send(event.clone());
        }
        self.handed = self.next;
        self.tx = Some(tx);
        rx
    }

    /// Whether a client reads the stream now.
    fn is_read(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

/// The index of an event this module numbered.
fn index_of(event: &ServerSseMessage) -> usize {
    event
        .event_id
        .as_deref()
        .and_then(|id| id.split('/').next())
        .and_then(|index| index.parse().ok())
        .unwrap_or(0)
}

impl Routes {
    /// The request stream of `message`, and whether the message ends it; `None` is the
    /// standalone stream.
    fn destination(&self, message: &ServerJsonRpcMessage) -> Option<(u64, bool)> {
        let request = |id: &RequestId| self.by_request.get(id).copied();
        match message {
            ServerJsonRpcMessage::Request(request_message) => {
                let originating =
                    request_message.request.extensions().get::<OriginatingRequestId>()?;
                let stream = request(&originating.0);
                if stream.is_none() {
                    tracing::debug!(
                        originating = %originating.0,
                        "a server request's originating request has ended; it goes to the \
                         standalone stream"
                    );
                }
                stream.map(|stream| (stream, false))
            }
            ServerJsonRpcMessage::Notification(notification) => match &notification.notification {
                ServerNotification::ProgressNotification(progress) => {
                    self.by_progress.get(&progress.params.progress_token).map(|s| (*s, false))
                }
                ServerNotification::CancelledNotification(cancelled) => {
                    cancelled.params.request_id.as_ref().and_then(request).map(|s| (s, false))
                }
                _ => None,
            },
            ServerJsonRpcMessage::Response(response) => {
                request(&response.id).map(|stream| (stream, true))
            }
            ServerJsonRpcMessage::Error(error) => {
                error.id.as_ref().and_then(request).map(|stream| (stream, true))
            }
        }
    }

    /// Removes request stream `number` and its keys; its reader gets what was sent and then
    /// the end.
    fn close(&mut self, number: u64) {
        if let Some(stream) = self.streams.remove(&number) {
            for key in stream.keys {
                match key {
                    Key::Request(id) => self.by_request.remove(&id),
                    Key::Progress(token) => self.by_progress.remove(&token),
                };
            }
        }
    }

    /// Routes `message`; the event that did not fit in its stream at once comes back.
    fn route(&mut self, message: ServerJsonRpcMessage) -> Option<Pending> {
        if self.ended {
            return None;
        }
        if matches!(message, ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_)) {
            if let Some(initialize) = self.initialize.take() {
                let _ = initialize.send(message);
                return None;
            }
        }
        let destination = self.destination(&message);
        let event = ServerSseMessage::from_message(message);
        match destination {
            Some((number, ends)) => {
                let pending = self.streams.get_mut(&number).and_then(|s| s.push(event));
                if ends {
                    self.close(number);
                }
                pending
            }
            None => self.standalone.push(event),
        }
    }

    /// A `GET` stream: the standalone stream if no client reads it now (first getting the kept
    /// events after `after`, or those never handed to a stream), else one kept alive but idle.
    fn attach_standalone(
        &mut self,
        after: Option<usize>,
    ) -> Result<mpsc::Receiver<ServerSseMessage>, SessionError> {
        if self.ended {
            return Err(SessionError::Ended);
        }
        if self.standalone.is_read() {
            let (tx, rx) = mpsc::channel(1);
            self.idle_streams.retain(|tx| !tx.is_closed());
            if self.idle_streams.len() == MAX_IDLE_STREAMS {
                self.idle_streams.remove(0);
            }
            self.idle_streams.push(tx);
            return Ok(rx);
        }
        if let Some(after) = after {
            if after >= self.standalone.next {
                return Err(SessionError::UnknownEvent(after.to_string()));
            }
        }
        let after = after.or_else(|| self.standalone.handed.checked_sub(1));
        Ok(self.standalone.attach(after))
    }
}

/// A session's side of rmcp's service loop.
#[derive(Debug)]
pub struct SessionTransport {
    session: Arc<Session>,
    inbox: mpsc::Receiver<Box<ClientJsonRpcMessage>>,
}

impl Transport<RoleServer> for SessionTransport {
    type Error = SessionError;

    fn send(
        &mut self,
        message: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), SessionError>> + Send + 'static {
        // Routed now, in the order the service loop sends; only an event for a full stream
        // waits (rmcp's service loop sends concurrently, so such an event may then pass a
        // later one, as with rmcp's own session manager).
        self.session.mark_seen();
        let pending = self.session.routes().route(message);
        async move {
            if let Some(Pending(tx, event)) = pending {
                // A reader that went away can resume from the kept events.
                let _ = tx.send(event).await;
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        tokio::select! {
            biased;
            () = self.session.ended.cancelled() => None,
            message = self.inbox.recv() => message.map(|message| *message),
        }
    }

    async fn close(&mut self) -> Result<(), SessionError> {
        self.session.end();
        Ok(())
    }
}

/// The events of one stream, for rmcp's HTTP bridge.
#[derive(Debug)]
pub struct Events(mpsc::Receiver<ServerSseMessage>);

impl Stream for Events {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

// The streams are named ([`Events`]) where the trait only promises a `Stream`.
#[allow(refining_impl_trait)]
impl SessionManager for Sessions {
    type Error = SessionError;
    type Transport = SessionTransport;

    async fn create_session(&self) -> Result<(SessionId, SessionTransport), SessionError> {
        self.sweeper.call_once(|| {
            let every = (self.inner.idle / 4).clamp(Duration::from_millis(100), MAX_SWEEP_EVERY);
            tokio::spawn(sweep(Arc::downgrade(&self.inner), every));
        });
        let id = rmcp::transport::common::server_side_http::session_id();
        let (inbox, received) = mpsc::channel(INBOX_CAPACITY);
        let session = Arc::new(Session {
            inbox,
            ended: CancellationToken::new(),
            seen: AtomicU64::new(self.inner.now()),
            epoch: self.inner.epoch,
            routes: Mutex::default(),
        });
        self.inner.write().insert(Arc::clone(&id), Arc::clone(&session));
        Ok((id, SessionTransport { session, inbox: received }))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, SessionError> {
        let session = self.inner.session(id)?;
        let (tx, answer) = oneshot::channel();
        session.routes().initialize = Some(tx);
        session.deliver(message).await?;
        match tokio::time::timeout(INITIALIZE_TIMEOUT, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(SessionError::Ended),
            Err(_) => {
                self.inner.end(id);
                Err(SessionError::InitializeTimeout)
            }
        }
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self.inner.live(id).is_some())
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), SessionError> {
        self.inner.end(id);
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<Events, SessionError> {
        let session = self.inner.session(id)?;
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        {
            let mut routes = session.routes();
            if routes.ended {
                return Err(SessionError::Ended);
            }
            let number = routes.next_stream;
            routes.next_stream += 1;
            let mut stream = Outbound::new(number, tx);
            if let Some(retry) = self.inner.sse_retry {
                let _ = stream.push(ServerSseMessage::retry(retry));
            }
            if let ClientJsonRpcMessage::Request(request) = &message {
                routes.by_request.insert(request.id.clone(), number);
                stream.keys.push(Key::Request(request.id.clone()));
                if let Some(token) = request.request.get_meta().get_progress_token() {
                    routes.by_progress.insert(token.clone(), number);
                    stream.keys.push(Key::Progress(token));
                }
            }
            routes.streams.insert(number, stream);
        }
        session.deliver(message).await?;
        Ok(Events(rx))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), SessionError> {
        let session = self.inner.session(id)?;
        if let ClientJsonRpcMessage::Notification(notification) = &message {
            if let ClientNotification::CancelledNotification(cancelled) = &notification.notification
            {
                // A cancelled request is answered no more: its stream ends.
                let mut routes = session.routes();
                let number = cancelled
                    .params
                    .request_id
                    .as_ref()
                    .and_then(|request| routes.by_request.get(request).copied());
                if let Some(number) = number {
                    routes.close(number);
                }
            }
        }
        session.deliver(message).await
    }

    async fn create_standalone_stream(&self, id: &SessionId) -> Result<Events, SessionError> {
        let session = self.inner.session(id)?;
        Ok(Events(session.routes().attach_standalone(None)?))
    }

    async fn resume(&self, id: &SessionId, last_event_id: String) -> Result<Events, SessionError> {
        let session = self.inner.session(id)?;
        let unknown = || SessionError::UnknownEvent(last_event_id.clone());
        let (index, number) = match last_event_id.split_once('/') {
            Some((index, number)) => (index, Some(number.parse::<u64>().map_err(|_| unknown())?)),
            None => (last_event_id.as_str(), None),
        };
        let index: usize = index.parse().map_err(|_| unknown())?;
        let mut routes = session.routes();
        match number {
            None => Ok(Events(routes.attach_standalone(Some(index))?)),
            Some(number) => {
                // A request's stream is kept until its answer is sent; after that it cannot
                // be resumed (rmcp's bridge then answers with an empty stream).
                let stream = routes.streams.get_mut(&number).ok_or_else(unknown)?;
                if index >= stream.next {
                    return Err(unknown());
                }
                Ok(Events(stream.attach(Some(index))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rmcp::model::{ClientRequest, NumberOrString, ProgressNotificationParam, ServerResult};
    use serde_json::json;

    use super::*;

    fn call(id: i64, progress: Option<&str>) -> ClientJsonRpcMessage {
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                                 "params": {"name": "echo"}});
        if let Some(token) = progress {
            message["params"]["_meta"] = json!({"progressToken": token});
        }
        serde_json::from_value(message).unwrap()
    }

    fn answer(id: i64) -> ServerJsonRpcMessage {
        ServerJsonRpcMessage::response(ServerResult::empty(()), NumberOrString::Number(id))
    }

    fn progress(token: &str, progress: f64) -> ServerJsonRpcMessage {
        let params = ProgressNotificationParam::new(
            ProgressToken(NumberOrString::String(token.into())),
            progress,
        );
        ServerJsonRpcMessage::notification(ServerNotification::ProgressNotification(
            rmcp::model::ProgressNotification::new(params),
        ))
    }

    fn logged() -> ServerJsonRpcMessage {
        serde_json::from_value(json!({"jsonrpc": "2.0", "method": "notifications/message",
                                      "params": {"level": "info", "data": "hello"}}))
        .unwrap()
    }

    /// What `events` holds now: each event's id, and its message's JSON-RPC id or method.
    fn drain(events: &mut Events) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        while let Ok(event) = events.0.try_recv() {
            let what = match event.message.as_deref() {
                None => "priming".to_owned(),
                Some(ServerJsonRpcMessage::Response(r)) => format!("answer {}", r.id),
                Some(ServerJsonRpcMessage::Notification(n)) => {
                    serde_json::to_value(n).unwrap()["method"].as_str().unwrap().to_owned()
                }
                Some(other) => format!("{other:?}"),
            };
            seen.push((event.event_id.unwrap(), what));
        }
        seen
    }

    fn ended(events: &mut Events) -> bool {
        matches!(events.0.try_recv(), Err(mpsc::error::TryRecvError::Disconnected))
    }

    async fn open(sessions: &Sessions) -> (SessionId, SessionTransport) {
        sessions.create_session().await.unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[tokio::test]
    async fn a_requests_stream_carries_its_progress_and_ends_with_its_answer() {
        let sessions = Sessions::new(Duration::from_secs(60), Some(Duration::from_secs(3)));
        let (id, mut transport) = open(&sessions).await;
        let mut first = sessions.create_stream(&id, call(1, Some("p"))).await.unwrap();
        let mut second = sessions.create_stream(&id, call(2, None)).await.unwrap();
        assert!(matches!(transport.receive().await, Some(ClientJsonRpcMessage::Request(_))));
        assert!(matches!(transport.receive().await, Some(ClientJsonRpcMessage::Request(_))));

        transport.send(progress("p", 1.0)).await.unwrap();
        transport.send(logged()).await.unwrap();
        transport.send(answer(2)).await.unwrap();
        transport.send(answer(1)).await.unwrap();

        assert_eq!(
            drain(&mut first),
            pairs(&[("0/0", "priming"), ("1/0", "notifications/progress"), ("2/0", "answer 1")])
        );
        assert!(ended(&mut first));
        assert_eq!(drain(&mut second), pairs(&[("0/1", "priming"), ("1/1", "answer 2")]));
        assert!(ended(&mut second));

        // What belongs to no request waited for a `GET`, which gets it once.
        let mut standalone = sessions.create_standalone_stream(&id).await.unwrap();
        assert_eq!(drain(&mut standalone), pairs(&[("0", "notifications/message")]));
        // Progress for a token no open request has goes there too.
        transport.send(progress("p", 2.0)).await.unwrap();
        assert_eq!(drain(&mut standalone), pairs(&[("1", "notifications/progress")]));
    }

    #[tokio::test]
    async fn a_client_resumes_a_stream_after_the_last_event_it_saw() {
        let sessions = Sessions::new(Duration::from_secs(60), Some(Duration::from_secs(3)));
        let (id, mut transport) = open(&sessions).await;
        let mut stream = sessions.create_stream(&id, call(1, Some("p"))).await.unwrap();
        transport.send(progress("p", 1.0)).await.unwrap();
        assert_eq!(drain(&mut stream).len(), 2);
        drop(stream);
        // Sent while nobody reads the stream: kept.
        transport.send(progress("p", 2.0)).await.unwrap();
        let mut resumed = sessions.resume(&id, "1/0".to_owned()).await.unwrap();
        assert_eq!(drain(&mut resumed), pairs(&[("2/0", "notifications/progress")]));
        transport.send(answer(1)).await.unwrap();
        assert_eq!(drain(&mut resumed), pairs(&[("3/0", "answer 1")]));
        assert!(ended(&mut resumed));

        // An id this session never gave, or a stream that ended, cannot be resumed.
        for bad in ["9/0", "0/7", "x", "1/y", "5"] {
            let error = sessions.resume(&id, bad.to_owned()).await.err().unwrap();
            assert!(matches!(error, SessionError::UnknownEvent(_)), "{bad}: {error}");
        }

        // The standalone stream resumes the same way; a second `GET` while one reads it gets
        // nothing.
        let mut standalone = sessions.create_standalone_stream(&id).await.unwrap();
        transport.send(logged()).await.unwrap();
        transport.send(logged()).await.unwrap();
        assert_eq!(drain(&mut standalone).len(), 2);
        let mut idle = sessions.create_standalone_stream(&id).await.unwrap();
        transport.send(logged()).await.unwrap();
        assert!(drain(&mut idle).is_empty());
        drop(standalone);
        let mut resumed = sessions.resume(&id, "0".to_owned()).await.unwrap();
        assert_eq!(
            drain(&mut resumed),
            pairs(&[("1", "notifications/message"), ("2", "notifications/message")])
        );
    }

    #[tokio::test]
    async fn a_cancelled_request_ends_its_stream_and_the_message_reaches_the_service() {
        let sessions = Sessions::new(Duration::from_secs(60), None);
        let (id, mut transport) = open(&sessions).await;
        let mut stream = sessions.create_stream(&id, call(4, None)).await.unwrap();
        let cancelled: ClientJsonRpcMessage = serde_json::from_value(json!({
            "jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}
        }))
        .unwrap();
        sessions.accept_message(&id, cancelled).await.unwrap();
        assert!(ended(&mut stream));
        assert!(matches!(transport.receive().await, Some(ClientJsonRpcMessage::Request(_))));
        assert!(matches!(transport.receive().await, Some(ClientJsonRpcMessage::Notification(_))));
        // Its late answer goes nowhere a client reads; the session lives on.
        transport.send(answer(4)).await.unwrap();
        assert!(sessions.has_session(&id).await.unwrap());
    }

    #[tokio::test]
    async fn initialize_is_answered_by_the_first_answer_of_the_service() {
        let sessions = Sessions::new(Duration::from_secs(60), None);
        let (id, mut transport) = open(&sessions).await;
        let initialize: ClientJsonRpcMessage = serde_json::from_value(json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}
        }))
        .unwrap();
        let service = async {
            let Some(ClientJsonRpcMessage::Request(request)) = transport.receive().await else {
                panic!("no initialize")
            };
            assert!(matches!(request.request, ClientRequest::InitializeRequest(_)));
            transport.send(answer(0)).await.unwrap();
        };
        let (answer, ()) = tokio::join!(sessions.initialize_session(&id, initialize), service);
        assert!(matches!(answer.unwrap(), ServerJsonRpcMessage::Response(_)));
    }

    #[tokio::test]
    async fn a_closed_or_idle_session_is_gone_and_its_streams_end() {
        let sessions = Sessions::new(Duration::from_millis(300), None);
        let (id, mut transport) = open(&sessions).await;
        let mut standalone = sessions.create_standalone_stream(&id).await.unwrap();
        let mut pending = sessions.create_stream(&id, call(1, None)).await.unwrap();
        sessions.close_session(&id).await.unwrap();
        assert!(!sessions.has_session(&id).await.unwrap());
        assert!(ended(&mut standalone));
        assert!(ended(&mut pending), "a request's stream ends with its session");
        assert!(transport.receive().await.is_none(), "the service loop is told");
        let error = sessions.create_stream(&id, call(2, None)).await.err().unwrap();
        assert!(matches!(error, SessionError::Unknown));

        // An idle session ends by itself, touched or not; a touched one lives on.
        let (idle, mut idle_transport) = open(&sessions).await;
        let (used, _used_transport) = open(&sessions).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(sessions.touch(&used));
        }
        assert!(idle_transport.receive().await.is_none(), "the sweep ended it");
        assert!(!sessions.touch(&idle));
        assert_eq!(sessions.len(), 1);
    }
}
