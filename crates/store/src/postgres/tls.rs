//! TLS to PostgreSQL: the URL's `sslmode` and `sslrootcert`, and a rustls connector for
//! tokio-postgres.
//!
//! The modes follow libpq's:
//!
//! | `sslmode`            | encrypted | certificate checked                      |
//! |----------------------|-----------|------------------------------------------|
//! | `disable`            | no        | -                                        |
//! | `prefer` (default)   | no        | - (libpq would try TLS first; we do not) |
//! | `require`            | yes       | no; as `verify-ca` when `sslrootcert` is given |
//! | `verify-ca`          | yes       | signed by a trusted CA                   |
//! | `verify-full`        | yes       | signed by a trusted CA, for the URL's host |
//!
//! The trusted CAs are those of the `sslrootcert` PEM file, or the system's when it is
//! absent or `system`. tokio-postgres knows neither `verify-*` nor `sslrootcert`, so both are
//! taken off the URL before it parses the rest. Channel binding is not offered: SCRAM still
//! authenticates, and `verify-full` already rules out a man in the middle.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::StoreError;

/// How the connection is secured, from `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS parameters taken off a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: SslMode,
    /// `sslrootcert`: a PEM file of CAs; `None` for the system's.
    pub(crate) root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` off the query of a `postgres://` URL; other URLs and
/// parameters pass through untouched.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsParams), StoreError> {
    let mut params = TlsParams {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                params.mode = match percent_decode(value).as_str() {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(StoreError::Invalid(format!(
                            "bad database url: sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => {
                let value = percent_decode(value);
                params.root_cert = match value.as_str() {
                    "" | "system" => None,
                    path => Some(PathBuf::from(path)),
                };
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, params))
}

/// `%XX` escapes decoded; a malformed escape stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TlsParams {
    /// The mode tokio-postgres is to use: TLS or not, never "try".
    pub(crate) fn pg_mode(&self) -> PgSslMode {
        match self.mode {
            SslMode::Disable | SslMode::Prefer => PgSslMode::Disable,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        }
    }

    /// The connector for these parameters: reads `sslrootcert` now, so a bad file fails the
    /// start, by name.
    pub(crate) fn connector(&self) -> Result<PgTls, StoreError> {
        if self.pg_mode() == PgSslMode::Disable {
            return Ok(PgTls { config: None });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        // libpq: `require` with a root file checks the chain as `verify-ca` does.
        let mode = match (self.mode, &self.root_cert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Require => Arc::new(Unchecked { algorithms }),
            _ => {
                let full = self.chain_verifier(&provider)?;
                if mode == SslMode::VerifyCa {
                    Arc::new(AnyName { inner: full })
                } else {
                    full
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Invalid(format!("TLS protocol versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(PgTls {
            config: Some(Arc::new(config)),
        })
    }

    /// Checks the chain and the host name against `sslrootcert`, or the system's CAs.
    fn chain_verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<dyn ServerCertVerifier>, StoreError> {
        let Some(path) = &self.root_cert else {
            let system = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| StoreError::Invalid(format!("the system's CA certificates: {e}")))?;
            return Ok(Arc::new(system));
        };
        let mut roots = RootCertStore::empty();
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| bad_root(path, &format!("a certificate is unusable: {e}")))?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| bad_root(path, &e.to_string()))?;
        Ok(verifier)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let pem = std::fs::read(path).map_err(|e| bad_root(path, &e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_root(path, &format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad_root(
            path,
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn bad_root(path: &Path, why: &str) -> StoreError {
    StoreError::Invalid(format!(
        "cannot use the database's sslrootcert {}: {why}",
        path.display()
    ))
}

/// `sslmode=require` without a root file: encrypted, and the handshake is signed by the
/// certificate's key, but whose certificate it is goes unchecked (as in libpq).
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the host name is not.
#[derive(Debug)]
struct AnyName {
    inner: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // The name is checked last, after the chain: this error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Makes the TLS side of each new connection (pooled or `LISTEN`); `config` is `None` when
/// the connection stays plain, and tokio-postgres is then told never to ask for TLS.
#[derive(Clone)]
pub(crate) struct PgTls {
    config: Option<Arc<rustls::ClientConfig>>,
}

impl MakeTlsConnect<Socket> for PgTls {
    type Stream = PgTlsStream;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, io::Error> {
        // A unix socket has no name to check; that fails at `connect`, which only a TLS
        // connection reaches.
        Ok(PgTlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_owned()).ok(),
        })
    }
}

/// The TLS side of one connection.
pub(crate) struct PgTlsConnect {
    config: Option<Arc<rustls::ClientConfig>>,
    name: Option<ServerName<'static>>,
}

impl TlsConnect<Socket> for PgTlsConnect {
    type Stream = PgTlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let config = self.config.ok_or_else(|| {
                io::Error::new(io::ErrorKind::Unsupported, "TLS is not set up (sslmode)")
            })?;
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS needs a host name or IP address, not a unix socket",
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            Ok(PgTlsStream(tls))
        })
    }
}

/// An encrypted connection to PostgreSQL.
pub(crate) struct PgTlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_leave_the_url_and_the_rest_stays() {
        let (url, tls) = split_url(
            "postgres://u:p@h:5432/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u:p@h:5432/db?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(tls.pg_mode(), PgSslMode::Require);

        let (url, tls) = split_url("postgres://h/db").unwrap();
        assert_eq!(url, "postgres://h/db");
        assert_eq!(tls.mode, SslMode::Prefer);
        assert_eq!(tls.pg_mode(), PgSslMode::Disable, "prefer stays plain");

        let (url, tls) = split_url("postgres://h/db?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://h/db");
        assert_eq!((tls.mode, tls.root_cert), (SslMode::Require, None));
    }

    #[test]
    fn unknown_sslmodes_and_bad_root_files_are_named() {
        let err = split_url("postgres://h/db?sslmode=verify-everything").unwrap_err();
        assert!(err.to_string().contains("verify-everything"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let params = TlsParams {
            mode: SslMode::VerifyFull,
            root_cert: Some(missing),
        };
        let err = params.connector().err().unwrap().to_string();
        assert!(
            err.contains("nope.pem") && err.contains("sslrootcert"),
            "{err}"
        );

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let params = TlsParams {
            mode: SslMode::VerifyCa,
            root_cert: Some(junk),
        };
        let err = params.connector().err().unwrap().to_string();
        assert!(
            err.contains("junk.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
    }
}
