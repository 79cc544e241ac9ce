//! Serving: the endpoints of an API implementation subscribed on their
//! subjects, each received request checked and handed to its handler.
//!
//! Every endpoint is subscribed twice: on the `_` position (load-balanced
//! across the replicas of the host by its queue group ([`buswarden_rules::queue::group`],
//! the flattened hostname, the only group its creds let it join);
//! `:888` control endpoints use no queue group, so every replica answers) and
//! on this instance's own `id-…` position (direct addressing). An instance
//! with a locality ([`Connector::with_locality`]) also subscribes each
//! endpoint on every level of it, as Microbus does (`loc-us`,
//! `loc-us-west`, … in the endpoint's queue group), so a call to
//! `//loc-us-west.<host>/…` reaches only instances in that locality; its
//! acks and responses carry `Microbus-Locality`. `:888` endpoints also
//! listen on the broadcast host `all`.
//!
//! Certified caller identity: the caller's hostname is the source segment of
//! the subject, which the broker pins to the publisher's own hostname. A
//! request without one (`_`) is dropped; the `Microbus-From-Host` header the
//! publisher wrote is removed in every spelling and replaced by the source
//! segment before the handler runs. A `:417` event is accepted only when its
//! source segment is its destination (only the source fires its events).
//!
//! The protocol is Microbus's (see [`crate::wire`]): a handler is polled
//! once as soon as its request is accepted; one that finishes there is
//! answered at once, one that waits is acknowledged first (`Ack`, 202) so
//! its caller knows someone is working on it, and is given the request's
//! time budget minus a round trip, after which it is answered with 408. A
//! request deeper than 64 hops is answered with 508. Errors travel as `Err`
//! with Microbus's error JSON. A request in fragments is acknowledged with
//! 100 on its first fragment and reassembled (bounded, see [`crate::frag`])
//! before its handler runs; a large response is sent in fragments. At most
//! [`MAX_RUNNING`] handlers wait per subscription; beyond that the
//! subscription is not read until one finishes.
//!
//! `:888` control endpoints: a Go Microbus peer may broadcast its built-in
//! control requests (ping, config refresh, metrics, …) to the host `all`.
//! A buswarden service answers only the `:888` endpoints its API declares;
//! it does not subscribe to the others, so those broadcasts never reach it
//! (a Go caller counts no responder from it).

use crate::actor::Admit;
use crate::call::{MAX_CALL_DEPTH, ROUND_TRIP};
use crate::connector::{Connector, Live};
use crate::context::{FirstPoll, Frame, Scoped};
use crate::error::Error;
use crate::frag::{self, Inbound as Fragment};
use crate::wire::{self, Envelope, FROM_HOST, Kind, MessageWriter, Request, Response};
use buswarden_rules::route::{CONTROL_PORT, EVENT_PORT};
use buswarden_rules::subject;
use buswarden_rules::{Hostname, Method, Position, Route};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

/// Most handlers waiting at once per subscription.
pub const MAX_RUNNING: usize = 1024;

/// The broadcast hostname of control endpoints: a `:888` call to `all`
/// reaches every replica of every service.
pub const BROADCAST_HOST: &str = "all";

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;
/// A request handler.
pub type Handler = Arc<dyn Fn(Request) -> HandlerFuture + Send + Sync>;

/// One endpoint: its method, route and handler.
#[derive(Clone)]
pub struct Endpoint {
    /// The trait method's name (for errors).
    pub name: &'static str,
    /// The method token (`GET`, `ANY`, …).
    pub method: &'static str,
    /// The route (`:443/items/{id}`).
    pub route: &'static str,
    /// The handler.
    pub handler: Handler,
    /// Required claims: the expression as written and its compiled check
    /// (the handler then runs only for a verified actor that satisfies it).
    pub claims: Option<(&'static str, crate::claims::Check)>,
}

impl Endpoint {
    /// An endpoint from an async function of the request.
    pub fn new<F, Fut>(name: &'static str, method: &'static str, route: &'static str, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, Error>> + Send + 'static,
    {
        Endpoint {
            name,
            method,
            route,
            handler: Arc::new(move |req| Box::pin(f(req))),
            claims: None,
        }
    }

    /// The same endpoint with required claims.
    pub fn with_claims(mut self, text: &'static str, check: crate::claims::Check) -> Self {
        self.claims = Some((text, check));
        self
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({} {} {})", self.name, self.method, self.route)
    }
}

/// An API implementation ready to serve (generated by `#[buswarden::api]`
/// as `<Trait>Server`).
pub trait Serve: Send + Sync + 'static {
    /// The API's hostname.
    fn host(&self) -> &'static str;
    /// The endpoints.
    fn endpoints(&self) -> Vec<Endpoint>;
}

/// Where a request's response goes.
pub(crate) struct ReplyTo {
    /// The reply subject (cloned per publish without a copy).
    subject: async_nats::Subject,
    /// The request's message id.
    msg_id: compact_str::CompactString,
    /// The trace id (32 lower-case hex digits), for error bodies; kept
    /// inline.
    trace: Option<[u8; 32]>,
}

/// A request that passed the checks: its handler's input and context, and
/// where the response goes.
pub(crate) struct Accepted {
    to: ReplyTo,
    frame: Frame,
    request: Request,
    /// When the handler's budget runs out.
    deadline: tokio::time::Instant,
}

/// What a received message asks of the responder.
// `Call` is the variant of nearly every value (moved once, never stored).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Received {
    /// Run the handler.
    Call(Accepted),
    /// Answer at once with this error.
    Refuse(ReplyTo, Error),
    /// A first fragment: acknowledge with 100 and wait for the rest.
    Continue(ReplyTo),
    /// Nothing to do (dropped and counted, or a fragment stored).
    Nothing,
}

/// The trace id and flags of a `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let b = value.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    (b.len() == 55
        && b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(0..2)
        && hex(3..35)
        && hex(36..52)
        && hex(53..55))
    .then(|| {
        (
            value[3..35].to_ascii_lowercase(),
            value[53..55].to_ascii_lowercase(),
        )
    })
}

/// What kind of message a subscription receives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inbound {
    Request,
    Event,
}

pub(crate) fn parse_endpoint(method: &str, route: &str) -> Result<(Method, Route), Error> {
    let m = Method::parse(method).map_err(|e| Error::InvalidMethod {
        method: method.to_string(),
        reason: e.to_string(),
    })?;
    let r = Route::parse(route).map_err(|e| Error::InvalidRoute {
        route: route.to_string(),
        reason: e.to_string(),
    })?;
    Ok((m, r))
}

impl Connector {
    /// Serves an API implementation: `svc.serve(CalculatorServer::new(imp)).await?`.
    /// The connector's hostname must be the API's.
    pub async fn serve(&self, api: impl Serve) -> Result<(), Error> {
        let live = self.live_arc()?;
        let api_host = Hostname::parse(api.host()).map_err(|e| Error::InvalidHostname {
            host: api.host().to_string(),
            reason: e.to_string(),
        })?;
        if api_host != live.host {
            return Err(Error::HostMismatch {
                api_host: api_host.to_string(),
                host: live.host.to_string(),
            });
        }
        let mut subjects = Vec::new();
        for ep in api.endpoints() {
            let (method, route) = parse_endpoint(ep.method, ep.route)?;
            let guard = ep.claims.map(|(text, check)| {
                Arc::new(crate::actor::Guard {
                    svc: self.clone(),
                    text,
                    check,
                })
            });
            let dest = route.host.clone().unwrap_or_else(|| live.host.clone());
            // The queue group the creds pin this service's SUB entries to.
            let queue =
                (route.port != CONTROL_PORT).then(|| buswarden_rules::queue::group(&live.host));
            // Where the endpoint listens: any replica (in the queue group),
            // this instance, its locality levels, and for control endpoints
            // the `all` broadcast host.
            let mut listens = vec![
                (
                    subject::subscription(
                        &live.plane,
                        dest.as_str(),
                        &Position::Any,
                        &method,
                        &route,
                    ),
                    queue.as_deref(),
                ),
                (
                    subject::subscription(&live.plane, dest.as_str(), &live.id, &method, &route),
                    None,
                ),
            ];
            for level in live.locality.iter().flat_map(Position::locality_levels) {
                let local =
                    subject::subscription(&live.plane, dest.as_str(), &level, &method, &route);
                listens.push((local, queue.as_deref()));
            }
            if route.port == CONTROL_PORT && route.host.is_none() {
                let all = Hostname::parse_destination(BROADCAST_HOST).map_err(|e| {
                    Error::InvalidHostname {
                        host: BROADCAST_HOST.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                let broadcast = subject::subscription(
                    &live.plane,
                    all.as_str(),
                    &Position::Any,
                    &method,
                    &route,
                );
                listens.push((broadcast, None));
            }
            for (subject, queue) in listens {
                live.listen(
                    &subject,
                    queue,
                    ep.handler.clone(),
                    guard.clone(),
                    Inbound::Request,
                )
                .await?;
                subjects.push(subject);
            }
        }
        live.confirm_subscriptions(&subjects).await
    }
}

impl Live {
    /// Subscribes and hands every message to `handler` in its own task.
    pub(crate) async fn listen(
        self: &Arc<Self>,
        subject: &str,
        queue: Option<&str>,
        handler: Handler,
        guard: Option<Arc<crate::actor::Guard>>,
        inbound: Inbound,
    ) -> Result<(), Error> {
        let mut sub = self.subscribe(subject, queue).await?;
        let live = self.clone();
        // Handlers run concurrently inside the subscription's own task: no
        // task hop per request (a hop costs a cross-thread wake-up, which
        // dominated the round trip). A handler that blocks the thread holds
        // up its subscription only; CPU-heavy handlers should spawn.
        //
        // A handler is polled once as soon as its request is accepted; most
        // finish there and their response is published at once. Only the
        // ones that wait join the running set (a small future: the handler
        // in its frame and where the response goes).
        self.add_task(tokio::spawn(async move {
            let mut running = FuturesUnordered::new();
            loop {
                tokio::select! {
                    msg = sub.next(), if running.len() < MAX_RUNNING => match msg {
                        Some(msg) => match live.accept(msg, inbound) {
                            Received::Call(Accepted { to, frame, request, deadline }) => {
                                // Required claims: decided here for a token seen
                                // before (a lookup, no box, no extra scope).
                                let mut verified = None;
                                let mut fut = match &guard {
                                    None => handler(request),
                                    Some(g) => match g.admit(frame.actor.as_ref()) {
                                        Admit::Verified(actor) => {
                                            verified = Some(actor);
                                            handler(request)
                                        }
                                        Admit::Refuse(e) => {
                                            live.respond(to, Err(e)).await;
                                            continue;
                                        }
                                        Admit::Verify(token) => {
                                            g.clone().verify_then(token, handler.clone(), request)
                                        }
                                    },
                                };
                                let mut frame = Some(Scoped { frame, verified });
                                let first = std::future::poll_fn(|cx| {
                                    Poll::Ready(crate::context::poll_once(
                                        frame.take().unwrap_or_default(),
                                        &mut fut,
                                        cx,
                                    ))
                                })
                                .await;
                                match first {
                                    FirstPoll::Done(outcome) => live.respond(to, outcome).await,
                                    FirstPoll::Waiting(frame) => {
                                        live.acknowledge(&to, 202).await;
                                        running.push(async move {
                                            let outcome = tokio::time::timeout_at(deadline, frame.scope(fut))
                                                .await
                                                .unwrap_or_else(|_| {
                                                    Err(Error::status(408, "the time budget ran out"))
                                                });
                                            (outcome, to)
                                        });
                                    }
                                }
                            }
                            Received::Refuse(to, e) => live.respond(to, Err(e)).await,
                            Received::Continue(to) => live.acknowledge(&to, 100).await,
                            Received::Nothing => {}
                        },
                        None => break,
                    },
                    Some((outcome, to)) = running.next(), if !running.is_empty() => {
                        live.respond(to, outcome).await;
                    }
                }
            }
            while let Some((outcome, to)) = running.next().await {
                live.respond(to, outcome).await;
            }
        }));
        Ok(())
    }

    /// Checks a received request: the call to make, an answer to give at
    /// once, or nothing (counted as malformed, anonymous or a foreign
    /// event).
    fn accept(&self, msg: async_nats::Message, inbound: Inbound) -> Received {
        let Ok(req) = subject::decode_request(msg.subject.as_str()) else {
            self.shared.count_malformed();
            return Received::Nothing;
        };
        if req.src.is_empty() {
            self.shared.count_anonymous();
            return Received::Nothing;
        }
        if inbound == Inbound::Event && (req.src_token != req.dest_token || req.port != EVENT_PORT)
        {
            self.shared.count_foreign_event();
            return Received::Nothing;
        }
        let Ok((envelope, body)) = Envelope::decode(&msg.payload) else {
            self.shared.count_malformed();
            return Received::Nothing;
        };
        if envelope.kind != Kind::Request {
            self.shared.count_malformed();
            return Received::Nothing;
        }
        let Some(caller_id) = Position::id_token(&envelope.from_id) else {
            self.shared.count_malformed();
            return Received::Nothing;
        };
        let reply = crate::arena::subject(|out| {
            subject::reply_to_token_into(out, &self.reply_head, req.src_token, &caller_id)
        });
        let query = envelope.query().to_string();
        let Envelope {
            msg_id,
            from_id,
            time_budget,
            call_depth,
            fragment,
            mut headers,
            ..
        } = envelope;
        let trace = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wire::TRACEPARENT))
            .and_then(|(_, v)| parse_traceparent(v));
        let to = ReplyTo {
            subject: reply,
            msg_id,
            trace: trace
                .as_ref()
                .and_then(|(t, _)| t.as_bytes().try_into().ok()),
        };
        if let Some(limit) = self.shared.caller_limit.get()
            && let Err(wait) = limit.check(&req.src)
        {
            self.shared.count_rate_limited();
            return Received::Refuse(
                to,
                Error::status(
                    429,
                    format!(
                        "{} is over its rate limit at {}; retry in {} ms",
                        req.src,
                        self.host,
                        wait.as_millis().max(1)
                    ),
                ),
            );
        }
        if call_depth > MAX_CALL_DEPTH {
            return Received::Refuse(
                to,
                Error::status(508, format!("call depth overflow: {call_depth} hops")),
            );
        }
        let budget = time_budget.unwrap_or(self.config.timeout);
        if budget <= ROUND_TRIP {
            return Received::Refuse(to, Error::status(408, "the time budget ran out"));
        }
        let deadline = tokio::time::Instant::now() + (budget - ROUND_TRIP);
        let body = match fragment.filter(|(_, n)| *n > 1) {
            None => body,
            Some((i, n)) => match self.inbound_frags.add(
                // Keyed by the certified caller too: another service cannot
                // add fragments to this caller's request.
                (
                    compact_str::format_compact!("{}|{from_id}", req.src),
                    to.msg_id.clone(),
                ),
                (i, n),
                body,
                deadline,
                self.config.max_body,
                2 * self.config.max_body,
            ) {
                Fragment::Stored if i == 1 => return Received::Continue(to),
                Fragment::Stored => return Received::Nothing,
                Fragment::Complete(body) => body,
                Fragment::Refused => {
                    return Received::Refuse(
                        to,
                        Error::status(413, "fragment refused: out of order, or over a limit"),
                    );
                }
            },
        };
        // Any From-Host the publisher wrote was taken out of the headers
        // by the decoder; the certified one is the subject's source
        // segment, pinned by the broker.
        headers.push((FROM_HOST.to_string(), req.src.clone()));
        let mut actor = None;
        let mut baggage = Vec::new();
        let mut forwarded = Vec::new();
        for (n, v) in &headers {
            if actor.is_none() && n.eq_ignore_ascii_case(wire::ACTOR) {
                actor = Some(std::sync::Arc::from(v.as_str()));
            } else if wire::has_prefix(n, wire::BAGGAGE_PREFIX) {
                baggage.push((n.clone(), v.clone()));
            } else if wire::is_propagated(n) {
                forwarded.push((n.clone(), v.clone()));
            }
        }
        let frame = Frame {
            caller: Some(req.src),
            actor,
            baggage,
            forwarded,
            depth: call_depth,
            deadline: Some(deadline),
            trace,
        };
        let request = Request {
            method: req.method.to_string(),
            path: req.path,
            query,
            headers,
            body: body.to_vec(),
        };
        self.shared.count_handled();
        Received::Call(Accepted {
            to,
            frame,
            request,
            deadline,
        })
    }

    /// The acknowledgement: 202 (working on it) or 100 (send the rest).
    async fn acknowledge(&self, to: &ReplyTo, status: u16) {
        if let Ok(mut w) = MessageWriter::response(status, 0)
            && w.transport(Kind::Ack, &to.msg_id, &self.reply_sender)
                .is_ok()
        {
            if let Some(r) = &self.recorder {
                r.publish(to.subject.as_str());
            }
            let _ = self.client.publish(to.subject.clone(), w.finish(&[])).await;
        }
    }

    /// Publishes a handler's outcome as the response (in fragments when
    /// it is larger than one message).
    async fn respond(&self, to: ReplyTo, outcome: Result<Response, Error>) {
        if let Some(r) = &self.recorder {
            r.publish(to.subject.as_str());
        }
        // The subject is cut from a shared block (`arena`): a clone is a
        // reference count.
        for payload in self.response_messages(&to, outcome) {
            let _ = self.client.publish(to.subject.clone(), payload).await;
        }
    }

    /// The response messages. A response whose headers cannot be encoded
    /// becomes a 500 error with the reason.
    fn response_messages(&self, to: &ReplyTo, outcome: Result<Response, Error>) -> frag::Parts {
        let encoded = outcome.and_then(|resp| {
            let status = if (100..=999).contains(&resp.status) {
                resp.status
            } else {
                500
            };
            let parts = frag::slices(&resp.body, self.fragment_size);
            let n = parts.len() as u32;
            parts
                .enumerate()
                .map(|(i, part)| {
                    let mut w = MessageWriter::response(status, part.len())?;
                    w.transport(Kind::Response, &to.msg_id, &self.reply_sender)?;
                    if n > 1 {
                        w.header(wire::FRAGMENT, &format!("{}/{n}", i + 1))?;
                    }
                    for (name, value) in &resp.headers {
                        if !wire::is_envelope(name) {
                            w.header(name, value)?;
                        }
                    }
                    Ok(w.finish(part))
                })
                .collect::<Result<frag::Parts, wire::EnvelopeError>>()
                .map_err(|e| Error::Encode {
                    what: "response".into(),
                    reason: e.to_string(),
                })
        });
        match encoded {
            Ok(messages) => messages,
            Err(e) => {
                let status = e.status_code();
                let trace = to
                    .trace
                    .as_ref()
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .unwrap_or_default();
                let body = wire::error_body(&e.message(), status, trace);
                let message = MessageWriter::response(status, body.len()).and_then(|mut w| {
                    w.transport(Kind::Error, &to.msg_id, &self.reply_sender)?;
                    w.header("Content-Type", "application/json")?;
                    Ok(w.finish(&body))
                });
                // Only a status outside 100-999 fails here, and error
                // statuses are 400-599: an empty reply is never sent.
                message.into_iter().collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_traceparent;

    #[test]
    fn traceparents_are_read_strictly() {
        assert_eq!(
            parse_traceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),
            Some(("0af7651916cd43dd8448eb211c80319c".into(), "01".into()))
        );
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00-0af7651916cd43dd8448eb211c8031é-b7ad6b7169203331-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }
}
