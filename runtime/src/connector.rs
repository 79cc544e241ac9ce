//! The [`Connector`]: one service's identity (hostname, instance id), its own
//! NATS connection, the table of calls waiting for a response, and the
//! mapping of broker refusals (which async-nats reports as asynchronous
//! events) back onto the calls that caused them.
//!
//! Every public method that publishes or subscribes is a call form `gencreds`
//! resolves: the raw calls (`request`, `get`, `post`, `publish`), `serve`
//! (the endpoints an API declares) and `connect` (the implicit rules). Events
//! are fired and hooked only through the generated `…Trigger` and `…Hook`;
//! the raw NATS client is reachable only through `__private`, which
//! `gencreds` refuses in service code. The compiler keeps it so:
//!
//! ```compile_fail
//! async fn fire(svc: &buswarden::Connector) {
//!     let _ = svc.trigger("a.example", "POST", ":417/x", String::new(), vec![]).await;
//! }
//! ```
//!
//! ```compile_fail
//! async fn sink(svc: &buswarden::Connector, h: buswarden::__private::Handler) {
//!     let _ = svc.hook("a.example", "POST", ":417/x", h).await;
//! }
//! ```
//!
//! ```compile_fail
//! fn raw(svc: &buswarden::Connector) {
//!     let _ = svc.nats_client();
//! }
//! ```
//!
//! ```compile_fail
//! struct Hand;
//! impl buswarden::Serve for Hand {
//!     fn host(&self) -> &'static str { "a.example" }
//!     fn endpoints(&self) -> Vec<buswarden::Endpoint> { vec![] }
//! }
//! ```

use crate::config::{Config, Credentials};
use crate::creds::{UserCreds, auth_callback};
use crate::error::Error;
use crate::id;
use crate::pump::ReplyPump;
use crate::wire;
use async_nats::{Event, ServerError};
use buswarden_rules::subject;
use buswarden_rules::{Hostname, Plane, Position, hostname};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// A service's connection to the bus. Cheap to clone (clones share one
/// connection); `Connector::new` does no I/O, [`Connector::connect`] does.
#[derive(Clone)]
pub struct Connector {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    host: String,
    config: Mutex<Config>,
    live: OnceLock<Arc<Live>>,
    pub(crate) shared: Arc<Shared>,
}

/// The live side of a connected connector.
pub(crate) struct Live {
    pub(crate) client: async_nats::Client,
    pub(crate) plane: Plane,
    pub(crate) host: Hostname,
    pub(crate) id: Position,
    /// The instance's locality (`loc-…`), if it has one.
    pub(crate) locality: Option<Position>,
    /// `<plane>.reply._.<own host>.`: what every reply this instance
    /// sends starts with.
    pub(crate) reply_head: String,
    /// The transport lines of this instance's requests (from host and id)
    /// and of its acks and responses (and its locality), rendered once.
    pub(crate) request_sender: wire::Sender,
    pub(crate) reply_sender: wire::Sender,
    pub(crate) config: Config,
    pub(crate) shared: Arc<Shared>,
    /// The reply subscription, read by whoever wakes it (see
    /// [`crate::pump`]); held so the subscription lives as long as this.
    _pump: Arc<ReplyPump>,
    /// Requests arriving in fragments, being reassembled.
    pub(crate) inbound_frags: crate::frag::InboundFrags,
    /// The largest body slice one message carries (from the broker's
    /// `max_payload`).
    pub(crate) fragment_size: usize,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Records every subject published and subscribed (`BUSWARDEN_RECORD`).
    pub(crate) recorder: Option<crate::record::Recorder>,
}

/// Keys of the table of waiting calls are our own random message ids (8
/// alphanumerics packed in a `u64`): one multiply spreads them, so the
/// table skips SipHash.
#[derive(Default, Clone, Copy)]
pub(crate) struct MessageIdHasher(u64);

impl std::hash::Hasher for MessageIdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type PendingMap = HashMap<u64, Pending, std::hash::BuildHasherDefault<MessageIdHasher>>;

/// State reachable from the NATS event callback (which exists before the
/// connection does).
#[derive(Default)]
pub(crate) struct Shared {
    /// Actor-token keys and verified tokens ([`crate::actor`]).
    pub(crate) verifier: crate::actor::TokenVerifier,
    pending: Mutex<PendingMap>,
    denied_subscriptions: Mutex<HashSet<String>>,
    subscription_denied: Notify,
    counters: Counters,
    /// The per-caller rate limit of this connector's endpoints, if set.
    pub(crate) caller_limit: OnceLock<crate::ratelimit::CallerLimiter>,
}

#[derive(Default)]
struct Counters {
    spoofed_replies: AtomicU64,
    unmatched_replies: AtomicU64,
    foreign_events: AtomicU64,
    anonymous_requests: AtomicU64,
    malformed: AtomicU64,
    denied_publishes: AtomicU64,
    handled_requests: AtomicU64,
    dropped_replies: AtomicU64,
    rate_limited: AtomicU64,
}

/// Counters of what the connector dropped or refused, for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Replies dropped because their responder segment was not the host called.
    pub spoofed_replies: u64,
    /// Replies for no waiting call (late, duplicate or guessed ids).
    pub unmatched_replies: u64,
    /// `:417` events dropped because their source segment was not their destination.
    pub foreign_events: u64,
    /// Requests dropped because their subject had no source segment (`_`).
    pub anonymous_requests: u64,
    /// Messages dropped because their subject or envelope was malformed.
    pub malformed: u64,
    /// Publishes the broker refused (permissions violations).
    pub denied_publishes: u64,
    /// Requests handed to a handler.
    pub handled_requests: u64,
    /// Replies dropped because their call was over a limit (responders,
    /// reply bytes, body size, a full queue) or their fragments were out of
    /// order.
    pub dropped_replies: u64,
    /// Calls waiting for a response now.
    pub waiting_calls: u64,
    /// Requests answered 429: their caller was over its rate limit
    /// ([`Connector::with_caller_rate_limit`]).
    pub rate_limited: u64,
}

/// A call waiting for its response(s).
pub(crate) struct Pending {
    /// The request subject (shared with the publish: no copy).
    pub(crate) subject: async_nats::Subject,
    /// The responder the reply must come from; `None` accepts any (events).
    /// Hostnames up to 24 bytes are stored inline (no allocation per call).
    pub(crate) expect: Option<compact_str::CompactString>,
    pub(crate) sink: Sink,
    /// Reply bytes taken in so far, and the most this call takes.
    pub(crate) bytes: usize,
    pub(crate) max_bytes: usize,
}

pub(crate) enum Sink {
    /// A unicast call: the first acker's instance id, then the response
    /// (reassembled here when it comes in fragments).
    Once {
        /// Told the acker's instance id (requests in fragments only).
        ack: Option<oneshot::Sender<compact_str::CompactString>>,
        /// Whether an ack came.
        acked: bool,
        reply: Option<oneshot::Sender<Incoming>>,
        partial: Option<crate::frag::Partial>,
        max_body: usize,
    },
    /// A multicast: every ack and reply, through a bounded queue, from at
    /// most `max_responders` instances.
    Many {
        tx: mpsc::Sender<Incoming>,
        responders: HashSet<compact_str::CompactString>,
        max_responders: usize,
    },
}

/// The fixed parts of this instance's reply subjects: everything but the
/// responder token.
pub(crate) struct ReplyShape {
    prefix: String,
    suffix: String,
}

impl ReplyShape {
    pub(crate) fn new(plane: &Plane, host: &Hostname, id: &Position) -> Self {
        let (prefix, suffix) = subject::reply_affixes(plane, host.as_str(), id);
        ReplyShape { prefix, suffix }
    }

    /// The responder token of a reply subject of this shape.
    fn responder<'s>(&self, subject: &'s str) -> Option<&'s str> {
        let token = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.suffix.as_str())?;
        (!token.is_empty() && !token.contains(['.', '*', '>'])).then_some(token)
    }
}

/// A decoded response or acknowledgement: the part of its head a waiting
/// call reads (the rest is dropped where it arrives, so what moves through
/// the call's channel is small), and its body.
pub(crate) struct Reply {
    pub(crate) kind: wire::Kind,
    pub(crate) status: u16,
    /// The responder's instance id.
    pub(crate) from_id: compact_str::CompactString,
    pub(crate) fragment: Option<(u32, u32)>,
    /// The headers besides the transport ones.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: bytes::Bytes,
}

impl Reply {
    fn new(envelope: wire::Envelope, body: bytes::Bytes) -> Self {
        Reply {
            kind: envelope.kind,
            status: envelope.status,
            from_id: envelope.from_id,
            fragment: envelope.fragment,
            headers: envelope.headers,
            body,
        }
    }
}

/// What reaches a waiting call.
// `Message` is the variant of nearly every value; boxing it would add an
// allocation per reply to spare the rare `Denied`/`Refused` some bytes.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Incoming {
    /// A response, error or ack from `responder`.
    Message {
        responder: compact_str::CompactString,
        reply: Reply,
    },
    /// The broker refused the request's publish.
    Denied,
    /// The reply broke a limit or its fragments were out of order.
    Refused(&'static str),
}

impl Shared {
    pub(crate) fn pending(&self) -> MutexGuard<'_, PendingMap> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // map itself is always consistent (single inserts and removes).
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn count_spoofed_reply(&self) {
        self.counters
            .spoofed_replies
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_foreign_event(&self) {
        self.counters.foreign_events.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_anonymous(&self) {
        self.counters
            .anonymous_requests
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_malformed(&self) {
        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_dropped_reply(&self) {
        self.counters
            .dropped_replies
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_rate_limited(&self) {
        self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_handled(&self) {
        self.counters
            .handled_requests
            .fetch_add(1, Ordering::Relaxed);
    }

    fn on_event(&self, event: Event) {
        let Event::ServerError(ServerError::Other(text)) = event else {
            return;
        };
        if let Some(subject) = violation_subject(&text, "publish") {
            self.deny_publish(&subject);
        } else if let Some(subject) = violation_subject(&text, "subscription") {
            self.denied_subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(subject);
            self.subscription_denied.notify_waiters();
        }
    }

    /// Fails every call waiting on `subject`: the broker refused it.
    fn deny_publish(&self, subject: &str) {
        self.counters
            .denied_publishes
            .fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending();
        let ids: Vec<u64> = pending
            .iter()
            .filter(|(_, p)| p.subject.as_str() == subject)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let once = match pending.get_mut(&id) {
                Some(Pending {
                    sink: Sink::Many { tx, .. },
                    ..
                }) => {
                    let _ = tx.try_send(Incoming::Denied);
                    false
                }
                Some(_) => true,
                None => false,
            };
            if once
                && let Some(Pending {
                    sink:
                        Sink::Once {
                            reply: Some(tx), ..
                        },
                    ..
                }) = pending.remove(&id)
            {
                let _ = tx.send(Incoming::Denied);
            }
        }
    }

    /// Hands a message received on the reply subscription to its call.
    /// Hands a received reply to its waiting call. The broker delivers
    /// only subjects matching the reply subscription
    /// (`<plane>.reply._.*.<own host>.<own id>`), so the responder segment
    /// is the one token between `shape`'s prefix and suffix; anything else,
    /// or a token that is no flattened hostname, is counted as malformed.
    pub(crate) fn dispatch_reply(&self, msg: async_nats::Message, shape: &ReplyShape) {
        let Some(token) = shape.responder(msg.subject.as_str()) else {
            return self.count_malformed();
        };
        let (envelope, body) = match wire::Envelope::decode(&msg.payload) {
            Ok((e, body)) if e.kind != wire::Kind::Request => (e, body),
            _ => return self.count_malformed(),
        };
        let Some(key) = crate::id::message_key(&envelope.msg_id) else {
            self.counters
                .unmatched_replies
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let reply = Reply::new(envelope, body);
        let mut pending = self.pending();
        let Some(p) = pending.get_mut(&key) else {
            drop(pending);
            self.counters
                .unmatched_replies
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        // The responder is the host called when its token is that host's
        // flattening (compared in place; no unflattening per reply).
        let responder = match &p.expect {
            Some(e) if hostname::flattens_to(e, token) => e.clone(),
            expect => match hostname::unflatten(token) {
                None => {
                    drop(pending);
                    return self.count_malformed();
                }
                Some(_) if expect.is_some() => {
                    drop(pending);
                    return self.count_spoofed_reply();
                }
                Some(name) => compact_str::CompactString::from(name),
            },
        };
        // Every byte a call takes in counts against its limit, acks too:
        // a flood of replies to one call cannot grow memory past it.
        let size = msg.payload.len();
        if p.bytes + size > p.max_bytes {
            drop(pending);
            return self.count_dropped_reply();
        }
        p.bytes += size;
        let is_ack = reply.kind == wire::Kind::Ack;
        match &mut p.sink {
            Sink::Many {
                tx,
                responders,
                max_responders,
            } => {
                if !responders.contains(reply.from_id.as_str()) {
                    if responders.len() >= *max_responders {
                        drop(pending);
                        return self.count_dropped_reply();
                    }
                    responders.insert(reply.from_id.clone());
                }
                let sent = tx.try_send(Incoming::Message { responder, reply });
                drop(pending);
                if sent.is_err() {
                    self.count_dropped_reply();
                }
            }
            Sink::Once { ack, acked, .. } if is_ack => {
                *acked = true;
                if let Some(tx) = ack.take() {
                    let _ = tx.send(reply.from_id);
                }
            }
            Sink::Once {
                partial, max_body, ..
            } => {
                let mut reply = reply;
                if let Some((i, n)) = reply.fragment.filter(|(_, n)| *n > 1) {
                    let part = partial.get_or_insert_with(|| crate::frag::Partial::new(n));
                    match part.add(i, n, std::mem::take(&mut reply.body), *max_body) {
                        Ok(false) => return,
                        Ok(true) => {
                            // Reassembled after the lock is released.
                        }
                        Err(_) => {
                            let entry = pending.remove(&key);
                            drop(pending);
                            self.count_dropped_reply();
                            if let Some(Pending {
                                sink:
                                    Sink::Once {
                                        reply: Some(tx), ..
                                    },
                                ..
                            }) = entry
                            {
                                let _ = tx.send(Incoming::Refused(
                                    "a fragmented response out of order or over the body limit",
                                ));
                            }
                            return;
                        }
                    }
                }
                // The call is woken (and its entry freed) after the lock is
                // released: a wake-up can cost a system call, and other
                // calls wait for this lock to register.
                let entry = pending.remove(&key);
                drop(pending);
                if let Some(Pending {
                    sink:
                        Sink::Once {
                            reply: Some(tx),
                            partial,
                            ..
                        },
                    ..
                }) = entry
                {
                    if let Some(part) = partial {
                        reply.body = part.assemble();
                        reply.fragment = None;
                    }
                    let _ = tx.send(Incoming::Message { responder, reply });
                }
            }
        }
    }

    fn take_denied_subscription(&self, subjects: &[String]) -> Option<String> {
        let denied = self
            .denied_subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subjects.iter().find(|s| denied.contains(*s)).cloned()
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            spoofed_replies: c.spoofed_replies.load(Ordering::Relaxed),
            unmatched_replies: c.unmatched_replies.load(Ordering::Relaxed),
            foreign_events: c.foreign_events.load(Ordering::Relaxed),
            anonymous_requests: c.anonymous_requests.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            denied_publishes: c.denied_publishes.load(Ordering::Relaxed),
            handled_requests: c.handled_requests.load(Ordering::Relaxed),
            dropped_replies: c.dropped_replies.load(Ordering::Relaxed),
            waiting_calls: self.pending().len() as u64,
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
        }
    }
}

/// The subject of `Permissions Violation for <kind> to "<subject>"`.
fn violation_subject(text: &str, kind: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let marker = format!("permissions violation for {kind} to ");
    let at = lower.find(&marker)? + marker.len();
    let rest = text.get(at..)?.trim_start();
    // `"subject"`, possibly followed by ` using queue "q"`.
    let subject = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default(),
        None => rest.split_whitespace().next().unwrap_or_default(),
    };
    let subject = subject.trim_matches('\'');
    (!subject.is_empty()).then(|| subject.to_string())
}

impl Connector {
    /// A connector for `hostname`, configured from the environment
    /// (`BUSWARDEN_NATS_URL`, `BUSWARDEN_PLANE`, `BUSWARDEN_CREDS_DIR`). No I/O;
    /// the hostname is validated by [`Connector::connect`].
    pub fn new(hostname: &str) -> Self {
        Self::with_config(hostname, Config::from_env(hostname))
    }

    /// A connector with explicit settings (the environment is not read).
    pub fn with_config(hostname: &str, config: Config) -> Self {
        Connector {
            inner: Arc::new(Inner {
                host: hostname.to_ascii_lowercase(),
                config: Mutex::new(config),
                live: OnceLock::new(),
                shared: Arc::new(Shared::default()),
            }),
        }
    }

    fn configure(self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.inner.config.lock().unwrap_or_else(|e| e.into_inner()));
        self
    }

    /// Sets the NATS URL (before connecting).
    pub fn with_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.configure(|c| c.nats_url = url)
    }

    /// Records every subject this connector publishes and subscribes in
    /// `dir` (before connecting); see [`crate::record`].
    pub fn with_record_dir(self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.configure(|c| c.record_dir = Some(dir))
    }

    /// Sets the plane (before connecting).
    pub fn with_plane(self, plane: impl Into<String>) -> Self {
        let plane = plane.into();
        self.configure(|c| c.plane = plane)
    }

    /// Uses this `.creds` file (read at every connect).
    pub fn with_creds_file(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.configure(|c| c.credentials = Credentials::CredsFile(path))
    }

    /// Uses `<dir>/<hostname>_nats.creds`.
    pub fn with_creds_dir(self, dir: impl Into<PathBuf>) -> Self {
        let path = crate::config::creds_path(&dir.into(), &self.inner.host);
        self.configure(|c| c.credentials = Credentials::CredsFile(path))
    }

    /// Authenticates with a user and password (plain `authorization` blocks).
    pub fn with_user_password(self, user: impl Into<String>, password: impl Into<String>) -> Self {
        let (user, password) = (user.into(), password.into());
        self.configure(|c| c.credentials = Credentials::UserPassword { user, password })
    }

    /// Sets the instance's locality (before connecting), as Microbus's
    /// `SetLocality`: hierarchical, broadest level first (`us-west-b`), or
    /// dot notation most specific first (`b.west.us`); case-insensitive.
    /// Validated by [`Connector::connect`] ([`Error::InvalidLocality`]; see
    /// [`Position::locality`] for the rules). Every endpoint is then also
    /// subscribed on each level of it (`loc-us`, `loc-us-west`,
    /// `loc-us-west-b`), so a call to `https://loc-us-west.<host>/…`
    /// reaches only instances in that locality; acks and responses carry
    /// `Microbus-Locality`.
    pub fn with_locality(self, locality: impl Into<String>) -> Self {
        let locality = locality.into();
        self.configure(|c| c.locality = Some(locality))
    }

    /// Sets how long calls wait for a response.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.configure(|c| c.timeout = timeout)
    }

    /// Sets the ack timeout of unicast calls and the ack window of
    /// multicasts.
    pub fn with_ack_window(self, window: Duration) -> Self {
        self.configure(|c| c.ack_window = window)
    }

    /// Sets the most responders one multicast collects.
    pub fn with_max_responders(self, max: usize) -> Self {
        self.configure(|c| c.max_responders = max)
    }

    /// Sets the most reply bytes one call takes in.
    pub fn with_max_reply_bytes(self, max: usize) -> Self {
        self.configure(|c| c.max_reply_bytes = max)
    }

    /// Limits how many requests each caller may make to this connector's
    /// endpoints: `per_second` sustained, `burst` at once, per certified
    /// caller (the source segment of the request's subject, which the
    /// broker pins to the publisher's hostname; no header counts). A
    /// request over the limit is answered 429 before its handler runs; the
    /// other callers are unaffected. Set once (later calls are ignored);
    /// a rate that is not a positive number sets nothing.
    pub fn with_caller_rate_limit(self, per_second: f64, burst: u32) -> Self {
        if per_second.is_finite() && per_second > 0.0 {
            let _ = self
                .inner
                .shared
                .caller_limit
                .set(crate::ratelimit::CallerLimiter::new(per_second, burst));
        }
        self
    }

    /// Sets the largest body a call or request may carry.
    pub fn with_max_body(self, max: usize) -> Self {
        self.configure(|c| c.max_body = max)
    }

    /// The hostname as given (lower-cased).
    pub fn hostname(&self) -> &str {
        &self.inner.host
    }

    /// The settings in force.
    pub fn config(&self) -> Config {
        self.inner
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The instance id (`id-…`) once connected.
    pub fn instance_id(&self) -> Option<String> {
        self.inner.live.get().map(|l| l.id.token().to_string())
    }

    /// The locality position (`loc-…`) once connected, if one was set.
    pub fn locality(&self) -> Option<String> {
        self.inner
            .live
            .get()
            .and_then(|l| l.locality.as_ref().map(|p| p.token().to_string()))
    }

    /// Whether [`Connector::connect`] succeeded.
    pub fn is_connected(&self) -> bool {
        self.inner.live.get().is_some()
    }

    /// What the connector has dropped or refused so far.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    pub(crate) fn live(&self) -> Result<&Arc<Live>, Error> {
        self.inner.live.get().ok_or_else(|| Error::NotConnected {
            host: self.inner.host.clone(),
        })
    }

    /// Opens the NATS connection and subscribes to this instance's reply
    /// subject. Credentials are checked now and re-read at every reconnect.
    pub async fn connect(&self) -> Result<(), Error> {
        if self.inner.live.get().is_some() {
            return Err(Error::AlreadyConnected {
                host: self.inner.host.clone(),
            });
        }
        let config = self.config();
        let host = Hostname::parse(&self.inner.host).map_err(|e| Error::InvalidHostname {
            host: self.inner.host.clone(),
            reason: e.to_string(),
        })?;
        let plane = Plane::parse(&config.plane).map_err(|e| Error::InvalidPlane {
            plane: config.plane.clone(),
            reason: e.to_string(),
        })?;
        let locality = config
            .locality
            .as_deref()
            .map(|l| {
                Position::locality(l).map_err(|e| Error::InvalidLocality {
                    locality: l.chars().take(200).collect(),
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        let instance = id::instance_id();
        let id = Position::parse(&instance).map_err(|e| Error::InvalidHostname {
            host: instance.clone(),
            reason: e.to_string(),
        })?;
        let options = match &config.credentials {
            Credentials::None => async_nats::ConnectOptions::new(),
            Credentials::UserPassword { user, password } => {
                async_nats::ConnectOptions::new().user_and_password(user.clone(), password.clone())
            }
            Credentials::CredsFile(path) => {
                // Fail early with a clear error; the callback re-reads it.
                UserCreds::read(path).await?;
                async_nats::ConnectOptions::with_auth_callback(auth_callback(path.clone()))
            }
        };
        let shared = Arc::downgrade(&self.inner.shared);
        let options = options
            .name(format!("{host} {instance}"))
            // Messages buffered per subscription before the client drops
            // (slow consumer): bounds what a flood can queue.
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .event_callback(move |event| {
                if let Some(shared) = shared.upgrade() {
                    shared.on_event(event);
                }
                std::future::ready(())
            });
        let client = options
            .connect(config.nats_url.as_str())
            .await
            .map_err(|e| Error::Connect {
                host: host.to_string(),
                url: config.nats_url.clone(),
                reason: e.to_string(),
            })?;
        let reply = subject::reply_subscription(&plane, host.as_str(), &id);
        let replies = client
            .subscribe(reply.clone())
            .await
            .map_err(|e| Error::Subscribe {
                subject: reply.clone(),
                reason: e.to_string(),
            })?;
        let pump = ReplyPump::start(
            replies,
            ReplyShape::new(&plane, &host, &id),
            self.inner.shared.clone(),
        );
        let fragment_size = crate::frag::fragment_size(client.server_info().max_payload);
        let recorder = config
            .record_dir
            .as_deref()
            .and_then(|d| crate::record::Recorder::open(d, &host));
        if let Some(r) = &recorder {
            r.subscribe(&reply);
        }
        let sender = |locality: Option<&str>| {
            wire::Sender::new(host.as_str(), id.token(), locality).map_err(|e| Error::Encode {
                what: "transport headers".into(),
                reason: e.to_string(),
            })
        };
        let request_sender = sender(None)?;
        let reply_sender = sender(
            locality
                .as_ref()
                .map(|l| l.token().strip_prefix("loc-").unwrap_or(l.token())),
        )?;
        let reply_head = subject::reply_head(&plane, host.as_str());
        let live = Arc::new(Live {
            client,
            plane,
            host,
            id,
            locality,
            reply_head,
            request_sender,
            reply_sender,
            config,
            shared: self.inner.shared.clone(),
            _pump: pump,
            inbound_frags: crate::frag::InboundFrags::default(),
            fragment_size,
            tasks: Mutex::new(Vec::new()),
            recorder,
        });
        live.confirm_subscriptions(std::slice::from_ref(&reply))
            .await?;
        self.inner
            .live
            .set(live)
            .map_err(|_| Error::AlreadyConnected {
                host: self.inner.host.clone(),
            })
    }

    /// Stops every subscription of this connector and closes its connection
    /// (after flushing what was published).
    pub async fn close(&self) {
        if let Some(live) = self.inner.live.get() {
            for task in live
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
            {
                task.abort();
            }
            let _ = live.client.flush().await;
            let _ = live.client.drain().await;
        }
    }
}

impl AsRef<Connector> for Connector {
    fn as_ref(&self) -> &Connector {
        self
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.inner.host)
            .field("instance", &self.instance_id())
            .finish()
    }
}

/// Messages the client buffers per subscription (async-nats's default is
/// 65,536): a reader that falls behind drops beyond it.
const SUBSCRIPTION_CAPACITY: usize = 4096;

/// How long, after the round trip that follows new subscriptions, to wait
/// for the event callback to take a refusal of one: the client had it
/// before the round trip's message, but hands it to the callback's own task.
const SUBSCRIPTION_CHECK: Duration = Duration::from_millis(30);

impl Live {
    pub(crate) fn add_task(&self, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    pub(crate) async fn subscribe(
        &self,
        subject: &str,
        queue: Option<&str>,
    ) -> Result<async_nats::Subscriber, Error> {
        if let Some(r) = &self.recorder {
            r.subscribe(subject);
        }
        let result = match queue {
            Some(q) => {
                self.client
                    .queue_subscribe(subject.to_string(), q.to_string())
                    .await
            }
            None => self.client.subscribe(subject.to_string()).await,
        };
        result.map_err(|e| Error::Subscribe {
            subject: subject.to_string(),
            reason: e.to_string(),
        })
    }

    /// Makes sure the broker has taken `subjects` (subscribed just before
    /// on this connection): a round trip through the broker (see
    /// [`Live::round_trip`]), then a brief wait for a refusal of any of
    /// them to reach the event callback. When this returns `Ok`, a request
    /// published from any connection reaches the new subscriptions.
    pub(crate) async fn confirm_subscriptions(&self, subjects: &[String]) -> Result<(), Error> {
        let failed = |reason: String| Error::Subscribe {
            subject: subjects.first().cloned().unwrap_or_default(),
            reason,
        };
        self.client
            .flush()
            .await
            .map_err(|e| failed(e.to_string()))?;
        // A refusal may come while the round trip is on its way (a refused
        // reply subscription means it never comes back): it is the answer.
        // Once the round trip is back, the broker has sent any refusal and
        // the client has queued it to the event callback, which runs on its
        // own task: it gets until `settled` to take it.
        let round_trip = self.round_trip();
        tokio::pin!(round_trip);
        let mut settled = None;
        loop {
            let notified = self.shared.subscription_denied.notified();
            if let Some(subject) = self.shared.take_denied_subscription(subjects) {
                return Err(Error::SubscribeDenied { subject });
            }
            match settled {
                None => tokio::select! {
                    done = &mut round_trip => {
                        done.map_err(failed)?;
                        settled = Some(tokio::time::Instant::now() + SUBSCRIPTION_CHECK);
                    }
                    () = notified => {}
                },
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return match self.shared.take_denied_subscription(subjects) {
                            Some(subject) => Err(Error::SubscribeDenied { subject }),
                            None => Ok(()),
                        };
                    }
                }
            }
        }
    }

    /// A round trip through the broker on this connection: a message to
    /// this instance's own reply subject (inside every service's implicit
    /// grants: `PUB <plane>.reply._.<own>.>`, `SUB <plane>.reply._.*.<own>.*`)
    /// awaited back. When it returns, the broker has processed everything
    /// this connection sent before it, new subscriptions included, and any
    /// refusal of those came in before it. (async-nats's `flush` only writes
    /// the socket: the broker may not yet have read what it wrote, and a
    /// request from another connection can still find no subscriber.)
    pub(crate) async fn round_trip(&self) -> Result<(), String> {
        let msg_id = id::message_id();
        let key = id::message_key(&msg_id).ok_or("a message id that is not 8 bytes")?;
        let own = self.host.as_str();
        let subject = async_nats::Subject::from(subject::reply(&self.plane, own, own, &self.id));
        let mut w = wire::MessageWriter::response(204, 0).map_err(|e| e.to_string())?;
        w.transport(wire::Kind::Response, &msg_id, &self.reply_sender)
            .map_err(|e| e.to_string())?;
        let (tx, rx) = oneshot::channel();
        /// Takes the round trip's entry out of the table however it ends
        /// (its future may be dropped when a refusal answers first).
        struct Entry<'a>(&'a Shared, u64);
        impl Drop for Entry<'_> {
            fn drop(&mut self) {
                self.0.pending().remove(&self.1);
            }
        }
        let _entry = Entry(&self.shared, key);
        self.shared.pending().insert(
            key,
            Pending {
                subject: subject.clone(),
                expect: Some(compact_str::CompactString::from(own)),
                sink: Sink::Once {
                    ack: None,
                    acked: false,
                    reply: Some(tx),
                    partial: None,
                    max_body: 0,
                },
                bytes: 0,
                max_bytes: 4096,
            },
        );
        if let Some(r) = &self.recorder {
            r.publish(subject.as_str());
        }
        let subject_text = subject.to_string();
        let sent = self.client.publish(subject, w.finish(&[])).await;
        let back = match sent {
            Ok(()) => tokio::time::timeout(self.config.timeout, rx).await,
            Err(e) => return Err(format!("publishing a round trip through the broker: {e}")),
        };
        match back {
            Ok(Ok(Incoming::Denied)) => Err(format!(
                "the broker refuses this instance's own reply subject {subject_text:?}: \
                 its creds lack the grant every service has, `PUB <plane>.reply._.<own>.>` \
                 (regenerate them with gencreds)"
            )),
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "no round trip through the broker within {:?}: the connection's own \
                 reply subject is not granted, or the broker is not answering",
                self.config.timeout
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_subjects_are_read_from_server_errors() {
        assert_eq!(
            violation_subject(r#"Permissions Violation for Publish to "a.b.c""#, "publish"),
            Some("a.b.c".to_string())
        );
        assert_eq!(
            violation_subject(
                "'Permissions Violation for Subscription to \"x.>\"'",
                "subscription"
            ),
            Some("x.>".to_string())
        );
        assert_eq!(
            violation_subject(
                r#"Permissions Violation for Subscription to "a.*.b" using queue "q.example""#,
                "subscription"
            ),
            Some("a.*.b".to_string())
        );
        assert_eq!(violation_subject("something else", "publish"), None);
    }

    #[tokio::test]
    async fn hostile_localities_are_typed_errors_at_connect() {
        for bad in [
            "",
            ".",
            "*",
            ">",
            "us.>",
            "us west",
            "us\tx",
            "ünïcode",
            "us_west",
            "id-x",
            "loc-x",
            "all",
            &"a".repeat(65),
            &"🦀".repeat(10_000),
        ] {
            // No server at this URL: the locality is refused before any I/O.
            let c = Connector::with_config("calc.example", Config::default())
                .with_url("nats://127.0.0.1:1")
                .with_locality(bad);
            match c.connect().await {
                Err(Error::InvalidLocality { locality, reason }) => {
                    assert!(locality.chars().count() <= 200, "{bad:?}");
                    assert!(reason.contains("locality"), "{reason}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
            assert!(!c.is_connected());
        }
    }

    #[test]
    fn new_does_no_io_and_reports_not_connected() {
        let c = Connector::with_config("Calc.Example", Config::default());
        assert_eq!(c.hostname(), "calc.example");
        assert!(!c.is_connected());
        assert!(matches!(c.live(), Err(Error::NotConnected { .. })));
    }
}
