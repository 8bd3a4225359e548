//! HTTPS: the server's certificate and key, and a listener whose connections are TLS.
//!
//! The crypto provider is named here (aws-lc-rs, the one reqwest already builds) rather
//! than taken from the process default, so the server works whether or not the binary
//! installed one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::{ServerError, TlsFiles};

/// How long a client may take to finish its TLS handshake; a silent one must not hold a
/// slot for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; connections beyond are closed at once, so a flood of idle
/// sockets cannot grow memory without bound.
const MAX_HANDSHAKES: usize = 1024;
/// Bytes read from a plain-HTTP client before it is answered, and after.
const PLAIN_HEAD_LIMIT: usize = 64 * 1024;
/// The first byte of a TLS handshake record; anything else is not TLS.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Reads the certificate chain and private key (PEM) into a rustls server config.
///
/// Every error names the file at fault, and a key that does not belong to the certificate is
/// refused here, not at the first handshake.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let cert_pem = read(&files.cert, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(&files.cert, "certificate", &e))?;
    if certs.is_empty() {
        return Err(ServerError::Config(format!(
            "the TLS certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            files.cert.display()
        )));
    }
    let key_pem = read(&files.key, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        ServerError::Config(format!(
            "the TLS key file {} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            files.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Config(format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ServerError::Config(format!(
                "the TLS key {} does not fit the certificate {}: {e}",
                files.key.display(),
                files.cert.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| {
        ServerError::Config(format!(
            "cannot read the TLS {what} file {}: {e}",
            path.display()
        ))
    })
}

fn bad_file(path: &Path, what: &str, err: &dyn std::fmt::Display) -> ServerError {
    ServerError::Config(format!(
        "the TLS {what} file {} is not valid PEM: {err}",
        path.display()
    ))
}

/// A TCP listener whose accepted connections have finished a TLS handshake.
///
/// Handshakes run in tasks of their own, so one slow client never holds up the others;
/// they live in a set owned by the listener, so dropping it (as a graceful shutdown does)
/// ends those still under way.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    /// Serves TLS with `config` on connections accepted by `tcp`.
    pub(crate) fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // Both branches are cancel-safe: axum drops this future when shutdown begins.
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if self.handshakes.len() >= MAX_HANDSHAKES {
                            tracing::warn!(%peer, "too many TLS handshakes under way; connection closed");
                            continue;
                        }
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(handshake(acceptor, stream, peer));
                    }
                    Err(e) => accept_failed(e).await,
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// One connection's TLS handshake; `None` when it failed (logged at debug: scanners and
/// clients that distrust our certificate are routine, not the server's trouble).
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    // Responses go out in several TLS records; without this a record can wait on the
    // client's delayed acknowledgement of the one before.
    let _ = stream.set_nodelay(true);
    let work = async {
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await?;
        if n == 1 && first[0] != TLS_HANDSHAKE_RECORD {
            refuse_plain_http(stream).await;
            return Ok(None);
        }
        acceptor.accept(stream).await.map(Some)
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, work).await {
        Ok(Ok(Some(tls))) => Some((tls, peer)),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Answers a client that sent plain HTTP to the HTTPS port, so it learns why instead of
/// seeing a reset connection.
async fn refuse_plain_http(mut stream: TcpStream) {
    // Closing a socket with unread input resets it, and the client would never see the
    // answer: read the request head first, then, after answering, whatever else it sends.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < PLAIN_HEAD_LIMIT {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = r#"{"error":{"code":"bad_request","message":"this server speaks HTTPS: use an https:// URL"}}"#;
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // The client may already be gone; there is no one else to tell.
    if stream.write_all(reply.as_bytes()).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut drained = 0;
    while drained < PLAIN_HEAD_LIMIT {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

/// Accept errors: a connection that died in the queue is nobody's concern; anything else
/// (out of file descriptors) is logged and given a second to pass, as axum does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
