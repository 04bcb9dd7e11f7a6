//! Serving: the listener (HTTPS with a certificate under the platform root, or plain HTTP on
//! loopback only), graceful shutdown.

use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4443";

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most TLS handshakes in progress at once (beyond it, new connections wait in the kernel's
/// accept queue).
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Why the service could not bind.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address could not be bound.
    #[error("binding {0}: {1}")]
    Io(String, std::io::Error),
    /// Plain HTTP was asked for on an address other than loopback.
    #[error(
        "refusing plain HTTP on {0}: --insecure-http is for loopback addresses only (127.0.0.1, \
         [::1]); serve HTTPS (the default) on other addresses"
    )]
    InsecureNotLoopback(String),
    /// The PROXY protocol was asked for on plain HTTP.
    #[error(
        "proxy_protocol is for the HTTPS listener (a TCP load balancer passing TLS through); \
         it cannot be combined with --insecure-http"
    )]
    ProxyProtocolWithoutTls,
}

/// What the service knows about one connection: the peer's address and, over HTTPS, the
/// certificate the client presented (possession of its key proven by the TLS handshake, its
/// chain **not yet verified**: see `crate::device_auth`). Every request of the connection sees
/// the same value, so a device's verified identity is computed once per connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The client certificate (leaf, DER), if the client sent one.
    pub client_certificate: Option<Arc<[u8]>>,
    /// The device identity verified from `client_certificate`, once a handler needed it.
    pub device: Arc<tokio::sync::OnceCell<crate::device_auth::DeviceIdentity>>,
}

impl ConnInfo {
    /// A connection from `addr` that presented `client_certificate` (the listeners make these;
    /// benchmarks and tests drive the router in-process with them).
    pub fn new(addr: SocketAddr, client_certificate: Option<Arc<[u8]>>) -> ConnInfo {
        ConnInfo {
            addr,
            client_certificate,
            device: Arc::new(tokio::sync::OnceCell::new()),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ConnInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> ConnInfo {
        stream.remote_addr().clone()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, PlainListener>>
    for ConnInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, PlainListener>) -> ConnInfo {
        stream.remote_addr().clone()
    }
}

/// A bound listener: HTTPS, or plain HTTP on loopback.
#[derive(Debug)]
pub struct ServiceListener {
    inner: Inner,
    local_addr: SocketAddr,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpListener),
    Tls(TlsListener),
}

impl ServiceListener {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }
}

/// Bind the service's listener. With `tls`, serves HTTPS; without, plain HTTP, which is refused
/// unless `addr` is a loopback address (tests and local debugging only).
pub async fn bind(
    addr: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<ServiceListener, BindError> {
    bind_with(addr, tls, None).await
}

/// [`bind`], reading the PROXY protocol from trusted load balancers when `proxy` is given
/// (`crate::proxy_protocol`; HTTPS only).
pub async fn bind_with(
    addr: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    proxy: Option<crate::proxy_protocol::ProxyProtocol>,
) -> Result<ServiceListener, BindError> {
    if proxy.is_some() && tls.is_none() {
        return Err(BindError::ProxyProtocolWithoutTls);
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| BindError::Io(addr.to_string(), e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| BindError::Io(addr.to_string(), e))?;
    let inner = match tls {
        Some(config) => Inner::Tls(TlsListener::new(
            listener,
            TlsAcceptor::from(config),
            proxy.map(Arc::new),
        )),
        None => {
            if !local_addr.ip().is_loopback() {
                return Err(BindError::InsecureNotLoopback(addr.to_string()));
            }
            Inner::Plain(listener)
        }
    };
    Ok(ServiceListener { inner, local_addr })
}

/// Serve `app` on `listener` until `shutdown` completes, then stop accepting and wait for
/// in-flight requests to finish.
pub async fn serve(
    listener: ServiceListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match listener.inner {
        Inner::Plain(l) => {
            axum::serve(
                PlainListener(l),
                app.into_make_service_with_connect_info::<ConnInfo>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        Inner::Tls(l) => {
            axum::serve(l, app.into_make_service_with_connect_info::<ConnInfo>())
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Plain HTTP on loopback: no client certificates.
struct PlainListener(TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = TcpStream;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (io, ConnInfo::new(addr, None))
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnInfo::new(self.0.local_addr()?, None))
    }
}

/// Accepts TCP connections and completes TLS handshakes (after the PROXY protocol header, when
/// on) in their own tasks (so a slow or malicious client cannot stall accepting others), handing
/// finished streams to axum with the client's address.
#[derive(Debug)]
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        proxy: Option<Arc<crate::proxy_protocol::ProxyProtocol>>,
    ) -> TlsListener {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(64);
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let proxy = proxy.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let handshake = async {
                        let mut tcp = tcp;
                        let client = match &proxy {
                            Some(p) => p.accept(&mut tcp, peer).await.map_err(Refused::Proxy)?,
                            None => peer,
                        };
                        let stream = acceptor.accept(tcp).await.map_err(Refused::Tls)?;
                        Ok::<_, Refused>((stream, client))
                    };
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(accepted)) => {
                            let _ = tx.send(accepted).await;
                        }
                        Ok(Err(Refused::Proxy(e))) => {
                            tracing::warn!(peer = %peer, error = %e, "connection refused");
                        }
                        Ok(Err(Refused::Tls(e))) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener {
            rx,
            local_addr,
            task,
        }
    }
}

/// Why a connection ended before its TLS session began.
enum Refused {
    Proxy(crate::proxy_protocol::ProxyError),
    Tls(std::io::Error),
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some((stream, peer)) => {
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| Arc::<[u8]>::from(leaf.as_ref()));
                (stream, ConnInfo::new(peer, certificate))
            }
            // The accept task ended (only when the runtime shuts down): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnInfo::new(self.local_addr, None))
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}

/// The rustls server configuration for `chain` (leaf first, then the platform root) and the
/// service TLS key's signer. Clients may present a certificate (devices do, for the device
/// routes); its chain is verified per connection by `crate::device_auth`.
pub fn tls_config(
    chain: &[ferro_pki::Certificate],
    signer: ferro_pki::SharedSigner,
) -> Result<Arc<rustls::ServerConfig>, ferro_tls::TlsError> {
    let chain = chain
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec()))
        .collect();
    Ok(Arc::new(ferro_tls::server_config_with_client_certificates(
        chain, signer,
    )?))
}
