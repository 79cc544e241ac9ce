//! Outbound calls: unicast (first response wins), multicast (every responder,
//! found through acknowledgements), and the raw `request`/`get`/`post`/
//! `publish` calls on a [`Connector`].
//!
//! A call publishes on the request subject and waits on the connector's one
//! reply subscription, correlated by a 128-bit random message id. A response
//! is accepted only from the responder host that was called. A publish the
//! broker refuses fails the call at once with [`Error::PublishDenied`].

use crate::connector::{Connector, Incoming, Live, Pending, Reply, Sink};
use crate::error::Error;
use crate::id;
use crate::method::Method;
use crate::wire::{self, EnvelopeWriter, Kind, Response};
use buswarden_rules::subject;
use buswarden_rules::{Hostname, Position, Url};
use compact_str::CompactString;
use std::collections::HashSet;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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
    pub(crate) fn with_body(body: Vec<u8>) -> Self {
        Outgoing {
            body,
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
    let lower = text.to_ascii_lowercase();
    let (pos, rest) = match lower.split_once('.') {
        Some((first, rest)) if first.starts_with("id-") || first.starts_with("loc-") => (
            Position::parse(first).map_err(|e| bad(e.to_string()))?,
            rest,
        ),
        _ => (Position::Any, lower.as_str()),
    };
    let host = Hostname::parse_destination(rest).map_err(|e| bad(e.to_string()))?;
    Ok((host, pos))
}

/// Parses a raw-call URL: `http(s)://[id-….]host[:port]/path[?query]`.
pub(crate) fn parse_url(url: &str) -> Result<(Target, String), Error> {
    let bad = |reason: String| Error::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not an http:// or https:// URL".into()))?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (host_part, port_part) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let (host, pos) = parse_host(host_part)?;
    let mut plain = format!("{scheme}://{host}");
    if let Some(p) = port_part {
        plain.push(':');
        plain.push_str(p);
    }
    plain.push_str(tail);
    let parsed = Url::parse(&plain).map_err(|e| bad(e.to_string()))?;
    let query = tail
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

impl Live {
    /// A request message from this connector: envelope, then body.
    fn request_payload(
        &self,
        msg_id: u128,
        multicast: bool,
        out: &Outgoing,
    ) -> Result<bytes::Bytes, Error> {
        let encode = |e: wire::EnvelopeError| Error::Encode {
            what: "request envelope".into(),
            reason: e.to_string(),
        };
        let mut w = EnvelopeWriter::new(
            Kind::Request,
            multicast,
            0,
            msg_id,
            self.id.token(),
            &out.query,
            out.body.len(),
        )
        .map_err(encode)?;
        crate::context::with_current(|frame| {
            if let Some(actor) = &frame.actor {
                w.header(wire::ACTOR, actor)?;
            }
            for (name, value) in &frame.baggage {
                w.header(name, value)?;
            }
            Ok::<(), wire::EnvelopeError>(())
        })
        .transpose()
        .map_err(encode)?;
        for (name, value) in &out.headers {
            if wire::is_envelope(name) && !wire::is_propagated(name) {
                continue;
            }
            w.header(name, value).map_err(encode)?;
        }
        Ok(w.finish(&out.body))
    }

    fn subject_for(&self, target: &Target, method: &buswarden_rules::Method) -> String {
        subject::request(
            &self.plane,
            target.port,
            self.host.as_str(),
            target.host.as_str(),
            &target.pos,
            method,
            &target.path,
        )
    }

    fn timeout(&self, out: &Outgoing) -> Duration {
        out.timeout.unwrap_or(self.config.timeout)
    }

    /// Registers a waiting call and publishes its request; returns the
    /// subject and message id.
    async fn send_request(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        out: Outgoing,
        multicast: bool,
        expect: Option<CompactString>,
        sink: Sink,
    ) -> Result<(async_nats::Subject, u128), Error> {
        // One allocation for the subject: the waiting-call entry and the
        // publish share it.
        let subject = async_nats::Subject::from(self.subject_for(target, method));
        let msg_id = id::message_id();
        let payload = self.request_payload(msg_id, multicast, &out)?;
        let entry = Pending {
            subject: subject.clone(),
            expect,
            sink,
        };
        self.shared.pending().insert(msg_id, entry);
        if let Some(r) = &self.recorder {
            r.publish(&subject);
        }
        if let Err(e) = self.client.publish(subject.clone(), payload).await {
            self.shared.pending().remove(&msg_id);
            return Err(Error::Publish {
                subject: subject.to_string(),
                reason: e.to_string(),
            });
        }
        Ok((subject, msg_id))
    }

    /// Sends a request and waits for the first response.
    pub(crate) async fn unicast(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        out: Outgoing,
    ) -> Result<Response, Error> {
        let (tx, rx) = oneshot::channel();
        let expect = Some(CompactString::from(target.responder.as_str()));
        let timeout = self.timeout(&out);
        let (subject, msg_id) = self
            .send_request(target, method, out, false, expect, Sink::Once(Some(tx)))
            .await?;
        let mut guard = PendingGuard {
            live: self,
            msg_id,
            armed: true,
        };
        let mut rx = rx;
        match tokio::time::timeout(timeout, self.pump_until(&mut rx)).await {
            Ok(Ok(Incoming::Message { responder, reply })) => {
                // The dispatcher removed the entry when it delivered.
                guard.armed = false;
                into_response(&responder, reply)
            }
            Ok(Ok(Incoming::Denied)) => {
                guard.armed = false;
                Err(Error::PublishDenied {
                    subject: subject.to_string(),
                })
            }
            Ok(Err(_)) | Err(_) => Err(Error::Timeout {
                subject: subject.to_string(),
                timeout,
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
    /// every responder that acknowledged it within the ack window.
    pub(crate) async fn multicast(
        &self,
        target: &Target,
        method: &buswarden_rules::Method,
        out: Outgoing,
        expect: Option<CompactString>,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let timeout = self.timeout(&out);
        let start = tokio::time::Instant::now();
        let ack_deadline = start + self.config.ack_window.min(timeout);
        let all_deadline = start + timeout;
        let (subject, msg_id) = self
            .send_request(target, method, out, true, expect, Sink::Many(tx))
            .await?;
        let _guard = PendingGuard {
            live: self,
            msg_id,
            armed: true,
        };
        let mut acked: HashSet<(String, String)> = HashSet::new();
        let mut done: HashSet<(String, String)> = HashSet::new();
        let mut results = Vec::new();
        let outcome = loop {
            let waiting = acked.len() > done.len();
            let now = tokio::time::Instant::now();
            let deadline = if now < ack_deadline {
                ack_deadline
            } else if waiting {
                all_deadline
            } else {
                break Ok(());
            };
            match tokio::time::timeout_at(deadline, self.pump_until(Box::pin(rx.recv()))).await {
                Ok(Some(Incoming::Message { responder, reply })) => {
                    let key = (responder.to_string(), reply.envelope.from_id.clone());
                    if reply.envelope.kind == Kind::Ack {
                        acked.insert(key);
                    } else if done.insert(key.clone()) {
                        acked.insert(key);
                        results.push(into_response(&responder, reply));
                    }
                }
                Ok(Some(Incoming::Denied)) => {
                    break Err(Error::PublishDenied {
                        subject: subject.to_string(),
                    });
                }
                Ok(None) => break Ok(()),
                Err(_) if deadline == all_deadline => {
                    for _ in done.len()..acked.len() {
                        results.push(Err(Error::Timeout {
                            subject: subject.to_string(),
                            timeout,
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

/// Removes a call's entry from the table of waiting calls however the call
/// ends: timeout, error, or its future dropped by the caller.
struct PendingGuard<'a> {
    live: &'a Live,
    msg_id: u128,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Freed after the lock is released.
            let entry = self.live.shared.pending().remove(&self.msg_id);
            drop(entry);
        }
    }
}

/// Turns a response into a [`Response`], or an error for a status of 400
/// and above.
pub(crate) fn into_response(responder: &str, reply: Reply) -> Result<Response, Error> {
    let Reply { envelope, body } = reply;
    if envelope.status >= 400 {
        return Err(Error::Remote {
            host: responder.to_string(),
            status: envelope.status,
            message: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let mut headers = envelope.headers;
    headers.retain(|(n, _)| !wire::is_envelope(n));
    Ok(Response {
        status: envelope.status,
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
