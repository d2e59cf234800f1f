//! TLS to a catalogue's TCP port: the catalogue's certificate is verified
//! against the CA and must name the host dialed; a client certificate, if
//! given, is presented (a catalogue with TLS lets only such clients
//! register).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;

/// TLS files of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificate(s) the catalogue's certificate must be signed by.
    pub ca: PathBuf,
    /// Our certificate and its key, to register (both or neither).
    pub cert: Option<(PathBuf, PathBuf)>,
}

impl TlsOptions {
    /// From `RARANGI_TLS_CA`, `RARANGI_TLS_CERT` and `RARANGI_TLS_KEY`;
    /// None without a CA.
    pub fn from_env() -> Option<Self> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let ca = var("RARANGI_TLS_CA")?;
        let cert = var("RARANGI_TLS_CERT").zip(var("RARANGI_TLS_KEY"));
        Some(Self { ca, cert })
    }

    /// Reads the files into a connector.
    pub(crate) fn connector(&self) -> Result<TlsConnector, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in certs(&self.ca)? {
            roots
                .add(ca)
                .map_err(|e| Error::Invalid(format!("{}: {e}", self.ca.display())))?;
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Invalid(e.to_string()))?
            .with_root_certificates(roots);
        let config = match &self.cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(certs(cert)?, key)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", cert.display())))?
            }
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad =
        |e: rustls::pki_types::pem::Error| Error::Invalid(format!("cannot read {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!("{} holds no certificate", path.display())));
    }
    Ok(certs)
}

/// Runs the handshake with the catalogue at `addr` (`host:port`).
pub(crate) async fn connect(
    opts: &TlsOptions,
    addr: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    opts.client()?.connect(addr, tcp).await
}

/// A TLS client built once from [`TlsOptions`], for many connections (a
/// load generator's, say) without reading the files again.
#[derive(Clone)]
pub struct TlsClient(TlsConnector);

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsOptions {
    /// Reads the files once into a reusable [`TlsClient`].
    pub fn client(&self) -> Result<TlsClient, Error> {
        self.connector().map(TlsClient)
    }
}

impl TlsClient {
    /// Runs the handshake over `tcp` with the catalogue at `addr`
    /// (`host:port`), whose certificate must name its host.
    pub async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| Error::Invalid(format!("{host:?} cannot be checked against a certificate: {e}")))?;
        Ok(self.0.connect(name, tcp).await?)
    }
}
