//! TLS for `rtmps://` destinations (Facebook Live, YouTube's backup ingest and others accept
//! nothing else): rustls with Mozilla's root certificates (webpki-roots, built in, so a
//! server without a CA bundle still verifies), plus the operator's own CA file for a private
//! service. The certificate must match the destination's host name; there is no way to turn
//! verification off, on purpose: a stream key sent to an impostor is a stolen stream.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the extra CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("the extra CA file {0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How `rtmps://` destinations are verified; built once per server, cheap to clone.
#[derive(Clone)]
pub struct PushTls {
    connector: TlsConnector,
    extra_roots: usize,
}

impl PushTls {
    /// Mozilla's roots, and the certificates of `extra_ca` (a PEM file) when given.
    pub fn new(extra_ca: Option<&Path>) -> Result<PushTls, TlsSetupError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut extra_roots = 0;
        if let Some(path) = extra_ca {
            let ca_error = |reason: String| TlsSetupError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certificates.is_empty() {
                return Err(TlsSetupError::NoCertificate(path.to_owned()));
            }
            for certificate in certificates {
                roots.add(certificate)?;
                extra_roots += 1;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(PushTls {
            connector: TlsConnector::from(Arc::new(config)),
            extra_roots,
        })
    }

    /// TLS over `tcp` to `host`; the error is written for the teacher who added the URL.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, TlsConnectError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsConnectError::NotAHostName(host.to_owned()))?;
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_failure(host, e))
    }
}

/// Why a TLS connection to a destination could not be opened, in the teacher's words.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    #[error("`{0}` is not a host name TLS can verify")]
    NotAHostName(String),
    /// An untrusted or mismatched certificate says so, and what to do about a private CA.
    #[error(
        "TLS: the certificate of {host} is not trusted ({why:?}); if the service uses a \
         private CA, give it to the server as restream.extra_ca_file"
    )]
    Untrusted {
        host: String,
        why: rustls::CertificateError,
    },
    #[error("TLS with {host} failed: {error}")]
    Handshake { host: String, error: std::io::Error },
}

/// Why the TLS handshake failed: an untrusted or mismatched certificate is told apart.
fn tls_failure(host: &str, error: std::io::Error) -> TlsConnectError {
    let untrusted = match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(why)) => Some(why.clone()),
        _ => None,
    };
    let host = host.to_owned();
    match untrusted {
        Some(why) => TlsConnectError::Untrusted { host, why },
        // A rustls error inside an I/O error reads as the rustls error.
        None => TlsConnectError::Handshake { host, error },
    }
}

impl fmt::Debug for PushTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushTls")
            .field("extra_roots", &self.extra_roots)
            .finish()
    }
}
