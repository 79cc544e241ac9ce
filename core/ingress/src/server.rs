//! The listeners: the public one (HTTP/1.1 and HTTP/2, with TLS through
//! rustls when configured, h2 offered by ALPN; cleartext HTTP/2 with prior
//! knowledge otherwise), and the operators' one (`/healthz`, `/metrics`).
//! A shutdown stops accepting, lets requests in flight finish within the
//! configured grace, then closes the bus connection.

use crate::headers::Origin;
use crate::proxy::{Body, Ingress, text};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// Why the ingress could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error("tls: {0}")]
    Tls(String),
}

/// A running ingress.
pub struct Running {
    /// Where the public listener is bound.
    pub addr: SocketAddr,
    /// Where `/healthz` and `/metrics` are served.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, waits for requests in flight (within the grace),
    /// and returns when both listeners are closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Loads the rustls server configuration: the PEM chain and key, ALPN h2
/// then http/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServerError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds the listeners and serves until [`Running::shutdown`].
pub async fn start(ingress: Arc<Ingress>) -> Result<Running, ServerError> {
    let c = ingress.config();
    let tls = match &c.tls {
        Some(t) => Some(tls_acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let public = bind(c.listen).await?;
    let addr = public.local_addr().map_err(|source| ServerError::Bind {
        addr: c.listen,
        source,
    })?;
    let ops = match c.metrics_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let metrics_addr = ops.as_ref().and_then(|l| l.local_addr().ok());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(serve_public(
        ingress.clone(),
        public,
        tls,
        stopped.clone(),
    ))];
    if let Some(l) = ops {
        tasks.push(tokio::spawn(serve_ops(ingress.clone(), l, stopped)));
    }
    tracing::info!(%addr, ?metrics_addr, host = %ingress.config().hostname, "ingress listening");
    Ok(Running {
        addr,
        metrics_addr,
        stop,
        tasks,
    })
}

fn builder(c: &crate::config::Config) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(c.header_read_timeout)
        .max_buf_size(c.max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(c.max_header_bytes.min(u32::MAX as usize) as u32);
    b
}

async fn serve_public(
    ingress: Arc<Ingress>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    let http = builder(ingress.config());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let origin = Origin {
            peer,
            trusted: ingress.config().trusted_proxies.contains(&peer.ip()),
            proto: if tls.is_some() { "https" } else { "http" },
        };
        let ing = ingress.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let ing = ing.clone();
            let origin = origin.clone();
            async move { Ok::<_, Infallible>(ing.handle(req, origin).await) }
        });
        match &tls {
            None => {
                let conn = http
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                tokio::spawn(graceful.watch(conn));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                let handshake = ingress.config().header_read_timeout;
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            _ => return,
                        };
                    let conn = http
                        .serve_connection(TokioIo::new(stream), svc)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    let grace = ingress.config().shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "requests still in flight after the shutdown grace");
    }
}

async fn serve_ops(
    ingress: Arc<Ingress>,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) {
    let http = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = stopped.changed() => break,
        };
        let ing = ingress.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let ing = ing.clone();
            async move { Ok::<_, Infallible>(ops(&ing, req.uri().path())) }
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(conn);
    }
}

fn ops(ingress: &Ingress, path: &str) -> Response<Body> {
    match path {
        "/healthz" if ingress.svc.is_connected() => text(StatusCode::OK, "ok\n"),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the bus\n",
        ),
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(
                ingress.metrics().render(ingress.mints()),
            )));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
