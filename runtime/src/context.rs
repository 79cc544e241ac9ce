//! The request context: the certified caller of the request being handled,
//! and the actor and baggage headers that flow from it to every outbound call
//! made while handling it.
//!
//! The runtime runs each handler inside [`Frame::scope`] (a tokio task-local),
//! so calls made by the handler, directly or through `join!`/`select!`, carry
//! `Microbus-Actor` and `Microbus-Baggage-*` on. A `tokio::spawn`ed task does
//! not inherit task-locals: wrap its future in `context::current().scope(…)`.
//! An edge service (a gateway) starts a frame itself with [`with_actor`].
//!
//! As in Microbus, the frame also carries what bounds and traces the chain
//! of calls: the deadline of the request's time budget (outbound calls get
//! what is left), its call depth (each hop adds one; 64 is the limit),
//! `traceparent`'s trace id, and the `X-Forwarded-*` and `Accept-Language`
//! headers, which flow on unchanged.

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static FRAME: Scoped;
}

/// What the task-local holds: the frame, and the actor verified for it
/// by the endpoint's required claims (crate-private: code outside the
/// runtime can set a frame's token, never declare it verified).
#[derive(Default)]
pub(crate) struct Scoped {
    pub(crate) frame: Frame,
    pub(crate) verified: Option<Arc<crate::actor::Actor>>,
}

impl Scoped {
    /// Runs `fut` in this scope.
    pub(crate) fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        FRAME.scope(self, fut)
    }
}

/// The actor verified for the request being handled.
pub(crate) fn verified() -> Option<Arc<crate::actor::Actor>> {
    FRAME.try_with(|s| s.verified.clone()).ok().flatten()
}

/// What a request carries from its caller to the calls it causes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// The broker-verified hostname of the caller (from the subject).
    pub caller: Option<String>,
    /// The `Microbus-Actor` token (shared: every call the handler makes
    /// carries it on without a copy).
    pub actor: Option<Arc<str>>,
    /// `Microbus-Baggage-*` headers, full names.
    pub baggage: Vec<(String, String)>,
    /// `X-Forwarded-*` and `Accept-Language` headers, full names.
    pub forwarded: Vec<(String, String)>,
    /// The request's call depth (0 outside a handler).
    pub depth: u32,
    /// When the request's time budget runs out.
    pub deadline: Option<tokio::time::Instant>,
    /// The trace id (32 hex digits) and flags of the inbound `traceparent`.
    pub trace: Option<(String, String)>,
}

impl Frame {
    /// Runs `fut` with this frame as the current context.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        FRAME.scope(
            Scoped {
                frame: self,
                verified: None,
            },
            fut,
        )
    }

    /// Adds a baggage entry (`name` without the `Microbus-Baggage-` prefix).
    pub fn with_baggage(mut self, name: &str, value: impl Into<String>) -> Self {
        self.baggage.push((
            format!("{}{name}", crate::wire::BAGGAGE_PREFIX),
            value.into(),
        ));
        self
    }
}

/// The current frame (empty outside a handler).
pub fn current() -> Frame {
    FRAME.try_with(|s| s.frame.clone()).unwrap_or_default()
}

/// The broker-verified caller of the request being handled.
pub fn caller() -> Option<String> {
    FRAME.try_with(|s| s.frame.caller.clone()).ok().flatten()
}

/// Reads the current frame without cloning it (`None` outside a handler).
pub(crate) fn with_frame<R>(f: impl FnOnce(&Frame) -> R) -> Option<R> {
    FRAME.try_with(|s| f(&s.frame)).ok()
}

/// The actor token of the request being handled.
pub fn actor() -> Option<String> {
    FRAME
        .try_with(|s| s.frame.actor.as_deref().map(str::to_string))
        .ok()
        .flatten()
}

/// A baggage value of the request being handled (`name` without prefix,
/// case-insensitive).
pub fn baggage(name: &str) -> Option<String> {
    FRAME
        .try_with(|s| {
            s.frame.baggage.iter().find_map(|(n, v)| {
                let short = &n[crate::wire::BAGGAGE_PREFIX.len().min(n.len())..];
                short.eq_ignore_ascii_case(name).then(|| v.clone())
            })
        })
        .ok()
        .flatten()
}

/// Runs `fut` with `actor` as the actor token of every call it makes (the
/// rest of the current frame is kept). An `Arc<str>` is shared, not copied.
pub async fn with_actor<F: Future>(actor: impl ActorText, fut: F) -> F::Output {
    let mut frame = current();
    frame.actor = Some(actor.into_shared());
    frame.scope(fut).await
}

/// What [`with_actor`] takes: any string form of a token. An `Arc<str>`
/// (as an edge keeps a token it reuses) is shared; the others are copied
/// once.
pub trait ActorText {
    /// The token as the frame holds it.
    fn into_shared(self) -> Arc<str>;
}

impl ActorText for Arc<str> {
    fn into_shared(self) -> Arc<str> {
        self
    }
}

impl ActorText for &Arc<str> {
    fn into_shared(self) -> Arc<str> {
        self.clone()
    }
}

impl ActorText for &str {
    fn into_shared(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl ActorText for String {
    fn into_shared(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl ActorText for &String {
    fn into_shared(self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

/// Polls `fut` once with `frame` as the current context: its output, or
/// the frame back when it is not done (to run it on later, in its own
/// scope). The scope lives on the stack: nothing is boxed for a handler
/// that finishes at once.
pub(crate) fn poll_once<F: Future + Unpin>(
    frame: Scoped,
    fut: &mut F,
    cx: &mut std::task::Context<'_>,
) -> FirstPoll<F::Output> {
    let mut scoped = std::pin::pin!(FRAME.scope(frame, fut));
    match scoped.as_mut().poll(cx) {
        std::task::Poll::Ready(out) => FirstPoll::Done(out),
        std::task::Poll::Pending => {
            FirstPoll::Waiting(scoped.as_mut().take_value().unwrap_or_default())
        }
    }
}

/// What [`poll_once`] gives: the output, or the frame of a future that
/// waits (moved once; not worth a box).
#[allow(clippy::large_enum_variant)]
pub(crate) enum FirstPoll<T> {
    Done(T),
    Waiting(Scoped),
}
