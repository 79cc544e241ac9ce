//! The one error type of the runtime: transport failures, refusals by the
//! broker, remote errors, and the errors handlers return.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong on the bus, one variant per distinct failure.
///
/// Handlers return it too: [`Error::status`] makes an error with an HTTP-like
/// status that travels back to the caller, who receives it as
/// [`Error::Remote`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service hostname is not a valid hostname.
    #[error("invalid hostname {host:?}: {reason}")]
    InvalidHostname {
        /// The hostname as given.
        host: String,
        /// Why it was refused.
        reason: String,
    },
    /// The plane (code or `BUSWARDEN_PLANE`) is invalid.
    #[error("invalid plane {plane:?}: {reason}")]
    InvalidPlane {
        /// The plane as given.
        plane: String,
        /// Why it was refused.
        reason: String,
    },
    /// The locality (code or `BUSWARDEN_LOCALITY`) is invalid.
    #[error("invalid locality {locality:?}: {reason}")]
    InvalidLocality {
        /// The locality as given (at most 200 bytes of it).
        locality: String,
        /// Why it was refused.
        reason: String,
    },
    /// A method token is not 1 to 32 ASCII letters.
    #[error("invalid method {method:?}: {reason}")]
    InvalidMethod {
        /// The method as given.
        method: String,
        /// Why it was refused.
        reason: String,
    },
    /// A raw-call URL or a `for_host` override cannot be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL or host as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An endpoint route cannot be parsed (the macro checks routes at
    /// compile time; this is for hand-written endpoints).
    #[error("invalid route {route:?}: {reason}")]
    InvalidRoute {
        /// The route as given.
        route: String,
        /// Why it was refused.
        reason: String,
    },
    /// A path argument named in the route has no value.
    #[error("path argument {{{name}}} of {route:?} has no value")]
    MissingPathArgument {
        /// The route.
        route: String,
        /// The argument name.
        name: String,
    },
    /// The connector has not connected yet.
    #[error("connector for {host} is not connected; call connect() first")]
    NotConnected {
        /// The service hostname.
        host: String,
    },
    /// `connect` was called twice.
    #[error("connector for {host} is already connected")]
    AlreadyConnected {
        /// The service hostname.
        host: String,
    },
    /// The NATS connection could not be established.
    #[error("connecting {host} to {url}: {reason}")]
    Connect {
        /// The service hostname.
        host: String,
        /// The NATS URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The `.creds` file cannot be read or parsed (the seed is never shown).
    #[error("credentials file {path}: {reason}")]
    Creds {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A trait implementation was served on a connector of another hostname.
    #[error("the API of {api_host} cannot be served by the connector of {host}")]
    HostMismatch {
        /// The API trait's host.
        api_host: String,
        /// The connector's host.
        host: String,
    },
    /// An event was fired by a service other than its source.
    #[error("event {route} belongs to {source_host}; only that service fires it, not {host}")]
    ForeignEvent {
        /// The event's source host (the API host).
        source_host: String,
        /// The connector that tried to fire it.
        host: String,
        /// The event route.
        route: String,
    },
    /// The broker refused to publish on this subject (permissions violation).
    #[error("the broker refused to publish to {subject:?} (permissions violation)")]
    PublishDenied {
        /// The refused subject.
        subject: String,
    },
    /// The broker refused a subscription (permissions violation).
    #[error("the broker refused the subscription to {subject:?} (permissions violation)")]
    SubscribeDenied {
        /// The refused subject.
        subject: String,
    },
    /// Nobody acknowledged the request within the ack timeout: no service
    /// serves the subject (Microbus's 404 "ack timeout").
    #[error("ack timeout: nobody acknowledged {subject:?} within {timeout:?}")]
    AckTimeout {
        /// The request subject.
        subject: String,
        /// The ack timeout that elapsed.
        timeout: Duration,
    },
    /// The time budget ran out (before the call, or while waiting for the
    /// response after an acknowledgement): 408.
    #[error("no reply on {subject:?} within {timeout:?}")]
    Timeout {
        /// The request subject.
        subject: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// Publishing failed in the client (connection closed, buffer full).
    #[error("publishing to {subject:?}: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// What failed.
        reason: String,
    },
    /// Subscribing failed in the client.
    #[error("subscribing to {subject:?}: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What failed.
        reason: String,
    },
    /// The callee answered with an error status.
    #[error("{host} answered {status}: {message}")]
    Remote {
        /// The responder (broker-verified responder segment).
        host: String,
        /// The status (400 and above).
        status: u16,
        /// The error message.
        message: String,
    },
    /// An error made by a handler, sent to the caller with its status.
    #[error("{status}: {message}")]
    Status {
        /// The status, 400 to 599.
        status: u16,
        /// The message.
        message: String,
    },
    /// Arguments or a result could not be encoded.
    #[error("encoding {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A received body could not be decoded.
    #[error("decoding {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

impl Error {
    /// An error with an HTTP-like status, for handlers (`400..=599`; other
    /// values become 500).
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        let status = if (400..=599).contains(&status) {
            status
        } else {
            500
        };
        Error::Status {
            status,
            message: message.into(),
        }
    }

    /// The status this error is sent back with when a handler returns it.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Status { status, .. } | Error::Remote { status, .. } => *status,
            Error::Timeout { .. } => 408,
            Error::AckTimeout { .. } => 404,
            Error::PublishDenied { .. } | Error::SubscribeDenied { .. } => 403,
            Error::Decode { .. }
            | Error::MissingPathArgument { .. }
            | Error::InvalidUrl { .. }
            | Error::InvalidMethod { .. } => 400,
            _ => 500,
        }
    }

    /// The message sent back to a caller: the text of a status or remote
    /// error, the whole display otherwise.
    pub fn message(&self) -> String {
        match self {
            Error::Status { message, .. } | Error::Remote { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}
