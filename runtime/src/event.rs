//! Events: a service fires its own `:417` events (the generated `…Trigger`)
//! as multicast requests under its own hostname, and sinks subscribe to them
//! (the generated `…Hook`), one replica of each sink host receiving each event.

use crate::call::{Outgoing, Target};
use crate::connector::Connector;
use crate::error::Error;
use crate::serve::{Handler, Inbound, parse_endpoint};
use crate::wire::Response;
use buswarden_rules::route::EVENT_PORT;
use buswarden_rules::subject;
use buswarden_rules::{Hostname, Position};

impl Connector {
    /// Fires the event `method route` of `source` (which must be this
    /// connector's own host) with a concrete `path` and typed arguments
    /// (query or body); returns every sink's response. Crate-private:
    /// services fire events through the generated `…Trigger`, the one form
    /// the analyzer resolves.
    pub(crate) async fn trigger_args(
        &self,
        source: &str,
        method: &str,
        route: &str,
        path: String,
        args: crate::__private::Encoded,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        let live = self.live_arc()?;
        let (method, parsed) = parse_endpoint(method, route)?;
        if source != live.host.as_str() || parsed.port != EVENT_PORT {
            return Err(Error::ForeignEvent {
                source_host: source.to_string(),
                host: live.host.to_string(),
                route: route.to_string(),
            });
        }
        let method = if method.is_any() {
            buswarden_rules::Method::post()
        } else {
            method
        };
        let target = Target {
            responder: live.host.clone(),
            host: live.host.clone(),
            pos: Position::Any,
            port: EVENT_PORT,
            path,
        };
        live.multicast(&target, &method, Outgoing::from_args(args), None)
            .await
    }

    /// Subscribes `handler` to the event `method route` fired by `source`.
    /// Replicas of this host share the event (this host's queue group,
    /// [`buswarden_rules::queue::group`], the one its creds pin the hook to).
    /// Crate-private: sinks subscribe through the generated `…Hook`.
    pub(crate) async fn hook(
        &self,
        source: &str,
        method: &str,
        route: &str,
        handler: Handler,
    ) -> Result<(), Error> {
        let live = self.live_arc()?;
        let source = Hostname::parse(source).map_err(|e| Error::InvalidHostname {
            host: source.to_string(),
            reason: e.to_string(),
        })?;
        let (method, parsed) = parse_endpoint(method, route)?;
        let subject = subject::subscription(
            &live.plane,
            source.as_str(),
            &Position::Any,
            &method,
            &parsed,
        );
        let queue = buswarden_rules::queue::group(&live.host);
        live.listen(&subject, Some(&queue), handler, None, Inbound::Event)
            .await?;
        live.confirm_subscriptions(&[subject]).await
    }
}
