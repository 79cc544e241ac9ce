//! Outbound calls: unicast (first response wins), multicast (every responder,
//! found through acknowledgements), and the raw `request`/`get`/`post`/
//! `publish` calls on a [`Connector`].
//!
//! A call publishes a Microbus request (see [`crate::wire`]) on the request
//! subject and waits on the connector's one reply subscription, correlated
//! by its message id. A reply is accepted only from the responder host that
//! was called. A publish the broker refuses fails the call at once with
//! [`Error::PublishDenied`].
//!
//! As in Microbus: a unicast call returns on the first response or error;
//! with neither nor an acknowledgement within the ack timeout it fails with
//! [`Error::AckTimeout`] (404: nobody serves the subject); after an ack it
//! waits up to its time budget, then fails with [`Error::Timeout`] (408). The
//! budget is the smaller of the call's timeout and what is left of the
//! budget of the request being handled, and a call with at most one round
//! trip left fails at once. Each hop adds one to the call depth; a handler
//! at depth 64 cannot call (508). A body larger than one message is sent in
//! fragments: the first to the subject, the rest, after the ack, to the
//! instance that acked. A multicast collects, per responder instance, its
//! ack and its response, up to `max_responders` instances and
//! `max_reply_bytes` bytes; the rest is dropped and counted.

use crate::connector::{Connector, Incoming, Live, Pending, Reply, Sink};
use crate::error::Error;
use crate::frag::{self, Partial};
use crate::id;
use crate::method::Method;
use crate::wire::{self, Kind, MessageWriter, Response};
use buswarden_rules::subject;
use buswarden_rules::{Hostname, Position, Url};
use bytes::Bytes;
use compact_str::CompactString;
use futures_util::future::{Either, select};
use std::collections::{HashMap, HashSet};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The round trip a call allows for: a call with at most this much budget
/// left fails at once with 408, and a handler gets its budget minus this.
pub const ROUND_TRIP: Duration = Duration::from_millis(20);
/// The deepest a chain of calls goes: a handler of a request at this depth
/// cannot call (508).
pub const MAX_CALL_DEPTH: u32 = 64;

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: Hostname,
    pub(crate) pos: Position,
    pub(crate) port: u16,
    pub(crate) path: String,
    /// The host whose replies are accepted: the destination, except for an
    /// endpoint served under another hostname (`//alt.example/…` route),
    /// whose service replies under its own name, the API's host.
    pub(crate) responder: Hostname,
}

/// What a call carries besides its target.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outgoing {
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
}

impl Outgoing {
    pub(crate) fn from_args(args: crate::__private::Encoded) -> Self {
        Outgoing {
            query: args.query,
            body: args.body,
            ..Outgoing::default()
        }
    }
}

/// Splits a host that may start with an `id-…`/`loc-…` label into the
/// hostname and the position.
pub(crate) fn parse_host(text: &str) -> Result<(Hostname, Position), Error> {
    let bad = |reason: String| Error::InvalidUrl {
        url: text.to_string(),
        reason,
    };
    let (pos, rest) = Position::split_host(text).map_err(|e| bad(e.to_string()))?;
    let host = Hostname::parse_destination(rest).map_err(|e| bad(e.to_string()))?;
    Ok((host, pos))
}

/// Parses a raw-call URL: `http(s)://[id-…|loc-….]host[:port]/path[?query]`.
pub(crate) fn parse_url(url: &str) -> Result<(Target, String), Error> {
    let (parsed, pos) = Url::parse_addressed(url).map_err(|e| Error::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    Ok((
        Target {
            responder: parsed.host.clone(),
            host: parsed.host,
            pos,
            port: parsed.port,
            path: parsed.path,
        },
        query,
    ))
}

/// The budget and depth of one outbound call.
struct Plan {
    depth: u32,
    budget: Duration,
    deadline: Instant,
}

/// What the current handler passes on to the calls it makes.
#[derive(Default)]
struct Inherited {
    actor: Option<std::sync::Arc<str>>,
    headers: Vec<(String, String)>,
    trace: Option<(String, String)>,
}

impl Live {
    /// The budget and depth of a call, or the 508/408 that stops it.
    fn plan(&self, out: &Outgoing, subject: &str) -> Result<Plan, Error> {
        let now = Instant::now();
        let (depth, inherited) =
            crate::context::with_frame(|f| (f.depth, f.deadline)).unwrap_or((0, None));
        if depth >= MAX_CALL_DEPTH {
            return Err(Error::status(
                508,
                format!("call depth overflow: {depth} hops calling {subject}"),
            ));
        }
        let mut budget = self.timeout(out).min(wire::MAX_TIME_BUDGET);
        if let Some(deadline) = inherited {
            budget = budget.min(deadline.saturating_duration_since(now));
        }
        if budget <= ROUND_TRIP {
            return Err(Error::Timeout {
                subject: subject.to_string(),
                timeout: budget,
            });
        }
        Ok(Plan {
            depth: depth + 1,
            budget,
            deadline: now + budget,
        })
    }

    /// One request message from this connector: head, then `body`.
    #[allow(clippy::too_many_arguments)]
    fn request_message(
        &self,
        target: &Target,
        pos: &Position,
        method: &buswarden_rules::Method,
        msg_id: &str,
        plan: &Plan,
        out: &Outgoing,
        inherited: &Inherited,
        fragment: Option<(u32, u32)>,
        body: &[u8],
    ) -> Result<Bytes, Error> {
        let encode = |e: wire::EnvelopeError| Error::Encode {
            what: "request".into(),
            reason: e.to_string(),
        };
        let direct;
        let host = match pos {
            Position::Any => target.host.as_str(),
            other => {
                direct = format!("{}.{}", other.token(), target.host);
                direct.as_str()
            }
        };
        let room = body.len()
            + inherited
                .actor
                .as_ref()
                .map_or(0, |a| wire::header_len(wire::ACTOR, a))
            + wire::headers_len(&inherited.headers)
            + wire::headers_len(&out.headers);
        let mut w = MessageWriter::request(
            method.as_str(),
            host,
            target.port,
            &target.path,
            &out.query,
            room,
        )
        .map_err(encode)?;
        let write = |w: &mut MessageWriter| -> Result<(), wire::EnvelopeError> {
            w.transport(Kind::Request, msg_id, &self.request_sender)?;
            w.budget_and_depth(plan.budget, plan.depth);
            if let Some((i, n)) = fragment {
                w.header(wire::FRAGMENT, &format!("{i}/{n}"))?;
            }
            // Propagated when the request being handled carried one (a
            // new span id, the same trace); a call outside any trace sends
            // none, as Microbus does with tracing off (no OTLP endpoint).
            if let Some((t, f)) = &inherited.trace {
                w.traceparent(Some((t.as_str(), f.as_str())));
            }
            if let Some(actor) = &inherited.actor {
                w.header(wire::ACTOR, actor)?;
            }
            for (name, value) in &inherited.headers {
                w.header(name, value)?;
            }
            let inherited_name = |name: &str| {
                (inherited.actor.is_some() && name.eq_ignore_ascii_case(wire::ACTOR))
                    || inherited
                        .headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(name))
            };
            for (name, value) in &out.headers {
                if wire::is_envelope(name)
                    || name.eq_ignore_ascii_case(wire::TRACEPARENT)
                    || inherited_name(name)
                {
                    continue;
                }
                w.header(name, value)?;
            }
            Ok(())
        };
        write(&mut w).map_err(encode)?;
        Ok(w.finish(body))
    }

    fn subject_for(
        &self,
        target: &Target,
        pos: &Position,
        method: &buswarden_rules::Method,
    ) -> async_nats::Subject {
        crate::arena::subject(|out| {
            subject::request_into(
                out,
                &self.plane,
                target.port,
                self.host.as_str(),
                target.host.as_str(),
                pos,
                method,
                &target.path,
            )
        })
    }

    fn timeout(&self, out: &Outgoing) -> Duration {
        out.timeout.unwrap_or(self.config.timeout)
    }

    /// The body's fragments, or 413 when it is over the limit.
    fn fragments(&self, body: Vec<u8>) -> Result<Body, Error> {
        if body.len() > self.config.max_body {
            return Err(Error::status(
                413,
                format!(
                    "a body of {} bytes is over the limit of {}",
                    body.len(),
                    self.config.max_body
                ),
            ));
        }
        let parts = Body {
            bytes: body,
            fragment: self.fragment_size,
        };
        if parts.len() > wire::MAX_FRAGMENTS as usize {
            return Err(Error::status(413, "a body in too many fragments"));
        }
        Ok(parts)
    }

    /// A call ready to publish: its subject, plan, id and messages.
    fn prepare(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        mut out: Outgoing,
    ) -> Result<Prepared, Error> {
        let subject = self.subject_for(target, &target.pos, method);
        let plan = self.plan(&out, subject.as_str())?;
        let msg_id = id::message_id();
        let parts = self.fragments(std::mem::take(&mut out.body))?;
        let inherited = crate::context::with_frame(|f| Inherited {
            actor: f.actor.clone(),
            headers: f
                .baggage
                .iter()
                .chain(&f.forwarded)
                .filter(|(n, _)| wire::is_propagated(n))
                .cloned()
                .collect(),
            trace: f.trace.clone(),
        })
        .unwrap_or_default();
        let n = parts.len() as u32;
        let first = self.request_message(
            target,
            &target.pos,
            method,
            &msg_id,
            &plan,
            &out,
            &inherited,
            (n > 1).then_some((1, n)),
            parts.part(0),
        )?;
        Ok(Prepared {
            subject,
            plan,
            msg_id,
            first,
            parts,
            out,
            inherited,
        })
    }

    /// Registers a waiting call and publishes its first message.
    async fn send_first(
        &self,
        call: &mut Prepared,
        sink: Sink,
        expect: Option<CompactString>,
    ) -> Result<u64, Error> {
        let key = id::message_key(&call.msg_id).ok_or_else(|| Error::Encode {
            what: "message id".into(),
            reason: "not 8 bytes".into(),
        })?;
        let entry = Pending {
            subject: call.subject.clone(),
            expect,
            sink,
            bytes: 0,
            max_bytes: self.config.max_reply_bytes,
        };
        self.shared.pending().insert(key, entry);
        if let Some(r) = &self.recorder {
            r.publish(&call.subject);
        }
        if let Err(e) = self
            .client
            .publish(call.subject.clone(), std::mem::take(&mut call.first))
            .await
        {
            self.shared.pending().remove(&key);
            return Err(Error::Publish {
                subject: call.subject.to_string(),
                reason: e.to_string(),
            });
        }
        Ok(key)
    }

    /// Sends fragments 2..n of a request to the instance `acker` that acked
    /// the first.
    async fn send_rest(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        call: &Prepared,
        acker: &str,
    ) -> Result<(), Error> {
        let pos = match Position::parse(acker) {
            Ok(p @ Position::Id(_)) => p,
            _ => {
                return Err(Error::Decode {
                    what: "acknowledgement".into(),
                    reason: format!("the acker's instance id {acker:?} is not an id-…"),
                });
            }
        };
        let subject = self.subject_for(target, &pos, method);
        let n = call.parts.len() as u32;
        if let Some(r) = &self.recorder {
            r.publish(&subject);
        }
        for (i, part) in call.parts.iter().enumerate().skip(1) {
            let msg = self.request_message(
                target,
                &pos,
                method,
                &call.msg_id,
                &call.plan,
                &call.out,
                &call.inherited,
                Some((i as u32 + 1, n)),
                part,
            )?;
            self.client
                .publish(subject.clone(), msg)
                .await
                .map_err(|e| Error::Publish {
                    subject: subject.to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Sends a request and waits for the first response.
    pub(crate) async fn unicast(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        out: Outgoing,
    ) -> Result<Response, Error> {
        let mut call = self.prepare(target, method, out)?;
        let (reply_tx, mut reply_rx) = oneshot::channel();
        // Only a request in fragments needs to hear of the ack at once (to
        // send the rest to the acker); otherwise the dispatcher just marks
        // the entry acked, and the call looks when its ack timeout is up.
        let (ack_tx, mut ack_rx) = if call.parts.len() > 1 {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let expect = Some(CompactString::from(target.responder.as_str()));
        let sink = Sink::Once {
            ack: ack_tx,
            acked: false,
            reply: Some(reply_tx),
            partial: None,
            max_body: self.config.max_body,
        };
        let start = Instant::now();
        let key = self.send_first(&mut call, sink, expect).await?;
        let mut guard = PendingGuard {
            live: self,
            key,
            armed: true,
        };
        let subject = &call.subject;
        let timeout = || Error::Timeout {
            subject: subject.to_string(),
            timeout: call.plan.budget,
        };
        let ack_deadline = (start + self.config.ack_window).min(call.plan.deadline);
        let ack_timeout = || Error::AckTimeout {
            subject: subject.to_string(),
            timeout: self.config.ack_window,
        };
        let first = match &mut ack_rx {
            None => tokio::time::timeout_at(ack_deadline, &mut reply_rx)
                .await
                .map(|r| r.map_err(|_| ()))
                .map_err(|_| ()),
            Some(ack_rx) => {
                match tokio::time::timeout_at(ack_deadline, select(&mut reply_rx, ack_rx)).await {
                    Ok(Either::Left((r, _))) => Ok(r.map_err(|_| ())),
                    Ok(Either::Right((Ok(acker), _))) => {
                        self.send_rest(target, method, &call, &acker).await?;
                        Err(())
                    }
                    // The entry is gone (delivered or refused): the reply is
                    // ready.
                    Ok(Either::Right((Err(_), _))) => Ok(reply_rx.try_recv().map_err(|_| ())),
                    Err(_) => Err(()),
                }
            }
        };
        let incoming = match first {
            Ok(Ok(incoming)) => incoming,
            Ok(Err(())) => return Err(timeout()),
            // The ack timeout is up, or an ack came for a request in
            // fragments: wait for the response if someone acked.
            Err(()) => {
                if ack_deadline >= call.plan.deadline && ack_rx.is_none() {
                    return Err(timeout());
                }
                let acked = match self.shared.pending().get(&key) {
                    Some(Pending {
                        sink: Sink::Once { acked, .. },
                        ..
                    }) => *acked,
                    // Delivered meanwhile.
                    _ => true,
                };
                if !acked {
                    return Err(if ack_deadline >= call.plan.deadline {
                        timeout()
                    } else {
                        ack_timeout()
                    });
                }
                match tokio::time::timeout_at(call.plan.deadline, &mut reply_rx).await {
                    Ok(Ok(incoming)) => incoming,
                    _ => return Err(timeout()),
                }
            }
        };
        // The dispatcher removed the entry when it delivered.
        guard.armed = false;
        match incoming {
            Incoming::Message { responder, reply } => into_response(&responder, reply),
            Incoming::Denied => Err(Error::PublishDenied {
                subject: subject.to_string(),
            }),
            Incoming::Refused(reason) => Err(Error::Decode {
                what: "response".into(),
                reason: reason.into(),
            }),
        }
    }

    /// A multicast whose responders must be the target host.
    pub(crate) async fn multicast_to(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        out: Outgoing,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        // Responders to the broadcast host answer under their own names.
        let expect = (target.host.as_str() != crate::serve::BROADCAST_HOST)
            .then(|| CompactString::from(target.responder.as_str()));
        self.multicast(target, method, out, expect).await
    }

    /// Sends a request to every subscriber and collects the responses of
    /// every responder instance that acknowledged it within the ack window
    /// (or answered at once).
    pub(crate) async fn multicast(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        out: Outgoing,
        expect: Option<CompactString>,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        let mut call = self.prepare(target, method, out)?;
        let max_responders = self.config.max_responders;
        // Room for every responder's ack and response; fragments beyond it
        // wait in the subscription.
        let (tx, mut rx) = mpsc::channel(2 * max_responders + 64);
        let sink = Sink::Many {
            tx,
            responders: HashSet::new(),
            max_responders,
        };
        let start = Instant::now();
        let ack_deadline = start + self.config.ack_window.min(call.plan.budget);
        let all_deadline = call.plan.deadline;
        let key = self.send_first(&mut call, sink, expect).await?;
        let _guard = PendingGuard {
            live: self,
            key,
            armed: true,
        };
        let subject = &call.subject;
        let mut acked: HashSet<(CompactString, CompactString)> = HashSet::new();
        let mut done: HashSet<(CompactString, CompactString)> = HashSet::new();
        let mut partials: HashMap<(CompactString, CompactString), Partial> = HashMap::new();
        let mut results = Vec::new();
        let outcome = loop {
            let waiting = acked.len() > done.len();
            let now = Instant::now();
            let deadline = if now < ack_deadline {
                ack_deadline
            } else if waiting {
                all_deadline
            } else {
                break Ok(());
            };
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Incoming::Message { responder, reply })) => {
                    let who = (responder.clone(), reply.from_id.clone());
                    if done.contains(&who) {
                        continue;
                    }
                    if reply.kind == Kind::Ack {
                        let fresh = acked.insert(who);
                        let acker = reply.from_id.clone();
                        if fresh
                            && call.parts.len() > 1
                            && reply.status == 100
                            && let Err(e) = self.send_rest(target, method, &call, &acker).await
                        {
                            results.push(Err(e));
                        }
                        continue;
                    }
                    let mut reply = reply;
                    let body = std::mem::take(&mut reply.body);
                    let body = match reply.fragment.filter(|(_, n)| *n > 1) {
                        None => body,
                        Some((i, n)) => {
                            let part = partials
                                .entry(who.clone())
                                .or_insert_with(|| Partial::new(n));
                            match part.add(i, n, body, self.config.max_body) {
                                Ok(false) => continue,
                                Ok(true) => {
                                    reply.fragment = None;
                                    partials
                                        .remove(&who)
                                        .map(Partial::assemble)
                                        .unwrap_or_default()
                                }
                                Err(_) => {
                                    partials.remove(&who);
                                    acked.insert(who.clone());
                                    done.insert(who);
                                    self.shared.count_dropped_reply();
                                    results.push(Err(Error::Decode {
                                        what: "response".into(),
                                        reason: "a fragmented response out of order or over the body limit".into(),
                                    }));
                                    continue;
                                }
                            }
                        }
                    };
                    acked.insert(who.clone());
                    done.insert(who);
                    reply.body = body;
                    results.push(into_response(&responder, reply));
                }
                Ok(Some(Incoming::Denied)) => {
                    break Err(Error::PublishDenied {
                        subject: subject.to_string(),
                    });
                }
                Ok(Some(Incoming::Refused(_))) => {}
                Ok(None) => break Ok(()),
                Err(_) if deadline == all_deadline => {
                    for _ in done.len()..acked.len() {
                        results.push(Err(Error::Timeout {
                            subject: subject.to_string(),
                            timeout: call.plan.budget,
                        }));
                    }
                    break Ok(());
                }
                Err(_) => {}
            }
        };
        outcome.map(|()| results)
    }
}

/// A request's body and the size of its fragments: the slices are taken
/// as each message is written (no `Bytes` per slice).
struct Body {
    bytes: Vec<u8>,
    fragment: usize,
}

impl Body {
    /// How many messages carry the body (at least one).
    fn len(&self) -> usize {
        frag::slices(&self.bytes, self.fragment).len()
    }

    /// Slice `i` (0-based).
    fn part(&self, i: usize) -> &[u8] {
        self.iter().nth(i).unwrap_or_default()
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        frag::slices(&self.bytes, self.fragment)
    }
}

/// A call ready to publish.
struct Prepared {
    subject: async_nats::Subject,
    plan: Plan,
    msg_id: CompactString,
    first: Bytes,
    parts: Body,
    out: Outgoing,
    inherited: Inherited,
}

/// Removes a call's entry from the table of waiting calls however the call
/// ends: timeout, error, or its future dropped by the caller. What the
/// entry held (queued replies, fragments) is freed with it.
struct PendingGuard<'a> {
    live: &'a Live,
    key: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Freed after the lock is released.
            let entry = self.live.shared.pending().remove(&self.key);
            drop(entry);
        }
    }
}

/// Turns a reply into a [`Response`], or an error for an `Err` reply
/// (Microbus's error JSON; its message, or the body as text).
pub(crate) fn into_response(responder: &str, reply: Reply) -> Result<Response, Error> {
    let Reply {
        kind,
        status,
        mut headers,
        body,
        ..
    } = reply;
    if kind == Kind::Error {
        let message = wire::parse_error_body(&body)
            .map(|(m, _)| m)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(Error::Remote {
            host: responder.to_string(),
            status,
            message,
        });
    }
    headers.retain(|(n, _)| !wire::is_envelope(n));
    Ok(Response {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// A raw call being built: `svc.get(url)`, `svc.post(url, body)`,
/// `svc.request(method, url)`. Await it (or call [`RawCall::send`]).
#[derive(Debug, Clone)]
#[must_use = "a raw call does nothing until awaited"]
pub struct RawCall {
    svc: Connector,
    method: Method,
    url: String,
    out: Outgoing,
}

impl RawCall {
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.out.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.out.body = body.into();
        self
    }

    /// Overrides the connector's timeout for this call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.out.timeout = Some(timeout);
        self
    }

    /// Sends the call and waits for its response.
    pub async fn send(self) -> Result<Response, Error> {
        let live = self.svc.live()?;
        let (target, query) = parse_url(&self.url)?;
        let method = self.method.for_sending()?;
        let mut out = self.out;
        out.query = query;
        live.unicast(&target, &method, out).await
    }
}

impl IntoFuture for RawCall {
    type Output = Result<Response, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A raw multicast being built: `svc.publish(method, url)`. Await it for the
/// responses of every responder.
#[derive(Debug, Clone)]
#[must_use = "a multicast does nothing until awaited"]
pub struct RawMulticast {
    call: RawCall,
}

impl RawMulticast {
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.call = self.call.header(name, value);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.call = self.call.body(body);
        self
    }

    /// Overrides the connector's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.call = self.call.timeout(timeout);
        self
    }

    /// Sends and collects every response.
    pub async fn send(self) -> Result<Vec<Result<Response, Error>>, Error> {
        let RawCall {
            svc,
            method,
            url,
            mut out,
        } = self.call;
        let live = svc.live()?;
        let (target, query) = parse_url(&url)?;
        let method = method.for_sending()?;
        out.query = query;
        live.multicast_to(&target, &method, out).await
    }
}

impl IntoFuture for RawMulticast {
    type Output = Result<Vec<Result<Response, Error>>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl Connector {
    /// A raw call: `svc.request(Method::GET, "https://other.example:444/x?q=1")`.
    pub fn request(&self, method: impl Into<Method>, url: &str) -> RawCall {
        RawCall {
            svc: self.clone(),
            method: method.into(),
            url: url.to_string(),
            out: Outgoing::default(),
        }
    }

    /// A raw `GET`.
    pub fn get(&self, url: &str) -> RawCall {
        self.request(Method::GET, url)
    }

    /// A raw `POST` with a body.
    pub fn post(&self, url: &str, body: impl Into<Vec<u8>>) -> RawCall {
        self.request(Method::POST, url).body(body)
    }

    /// A raw multicast: every responder answers.
    pub fn publish(&self, method: impl Into<Method>, url: &str) -> RawMulticast {
        RawMulticast {
            call: self.request(method, url),
        }
    }

    pub(crate) fn live_arc(&self) -> Result<Arc<Live>, Error> {
        self.live().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_ports_queries_and_instances() {
        let (t, q) = parse_url("https://Other.Example:444/path/x?q=1#frag").unwrap();
        assert_eq!(t.host.as_str(), "other.example");
        assert_eq!(
            (t.port, t.path.as_str(), q.as_str()),
            (444, "/path/x", "q=1")
        );
        assert_eq!(t.pos, Position::Any);
        let (t, q) = parse_url("http://id-abc123.calc.example/x").unwrap();
        assert_eq!((t.port, t.pos.token(), q.as_str()), (80, "id-abc123", ""));
        assert_eq!(t.host.as_str(), "calc.example");
        let (t, _) = parse_url("https://calc.example").unwrap();
        assert_eq!(t.path, "/");
        assert!(parse_url("ftp//x").is_err());
        assert!(parse_url("https://bad_host.example/x").is_err());
    }
}
