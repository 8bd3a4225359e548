//! Which `https://` servers the agent trusts, and what to say when TLS fails.

use std::path::Path;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::AgentError;

/// The certificates of a PEM file of CA certificates (`--ca-cert`).
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, AgentError> {
    let pem = std::fs::read(path).map_err(|e| ca_error(path, e.to_string()))?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error(
            path,
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

fn ca_error(path: &Path, reason: String) -> AgentError {
    AgentError::CaCert {
        path: path.to_owned(),
        reason,
    }
}

/// A client TLS config that accepts only the first certificate of the PEM file at `path`.
pub(crate) fn pinned(path: &Path) -> Result<rustls::ClientConfig, AgentError> {
    let cert = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_error(path, e.to_string()))?
        .next()
        .ok_or_else(|| {
            ca_error(
                path,
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
            )
        })?
        .map_err(|e| ca_error(path, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Pinned {
        cert,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_error(path, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// Trusts one certificate, byte for byte. The handshake's signatures are still checked
/// against its key, so only the holder of the private key passes.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What to tell people when a request failed in TLS: an untrusted certificate (with the
/// flag that fixes it), or a server that answered `https://` in plain HTTP. `None` for any
/// other failure.
pub(crate) fn failure(err: &reqwest::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = rustls_error(e) {
            return Some(match tls {
                // A plain-HTTP answer read as a TLS record: `H` is no content type.
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    "the server speaks plain HTTP, not HTTPS: use an http:// URL".to_owned()
                }
                rustls::Error::InvalidCertificate(_) => format!(
                    "the server's TLS certificate is not trusted ({tls}): pass --ca-cert FILE or set BATON_CA_CERT to the CA certificate that signed it"
                ),
                other => format!(
                    "TLS with the server failed ({other}); if its certificate comes from a private CA, pass --ca-cert FILE or set BATON_CA_CERT"
                ),
            });
        }
        cur = e.source();
    }
    None
}

/// The rustls error `e` is or wraps. Connectors hand it up inside `io::Error`s (nested),
/// whose `source()` skips what they wrap, so look inside each.
fn rustls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}
