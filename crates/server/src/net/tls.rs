//! TLS on the line-protocol TCP port and on catalogue links (rustls with
//! the ring provider). The acceptor asks every connection for a
//! certificate signed by the CA (required with `--tls-verify-clients`);
//! the dialer presents ours and checks the acceptor's. Who a certificate
//! names is checked against the catalogue URI claimed in WELCOME by
//! [`names_host`]. The configuration is re-read on SIGHUP ([`Tls::reload`]):
//! new handshakes use the new files, links up stay up.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::settings::TlsFiles;

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("cannot read {}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A file holds no certificate.
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(std::path::PathBuf),
    /// rustls refused the certificates or key.
    #[error("unusable certificate or key")]
    Rustls(#[source] rustls::Error),
    /// The CA cannot verify client certificates.
    #[error("unusable CA for client certificates")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// The two halves built from one reading of the files.
struct Configs {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

/// The catalogue's TLS state, shared by listeners and dialers.
pub(crate) struct Tls {
    files: TlsFiles,
    verify_clients: bool,
    current: RwLock<Arc<Configs>>,
}

/// A TLS stream accepted by the listener.
pub(crate) type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// A TLS stream dialed to a peer.
pub(crate) type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

impl Tls {
    /// Reads the files; fails if any is missing or unusable.
    pub(crate) fn load(files: &TlsFiles, verify_clients: bool) -> Result<Self, TlsError> {
        let configs = build(files, verify_clients)?;
        Ok(Self {
            files: files.clone(),
            verify_clients,
            current: RwLock::new(Arc::new(configs)),
        })
    }

    /// Reads the files again; on error the old configuration stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let configs = build(&self.files, self.verify_clients)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(configs);
        Ok(())
    }

    fn configs(&self) -> Arc<Configs> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the server side of a handshake.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> std::io::Result<ServerStream> {
        let acceptor = self.configs().acceptor.clone();
        acceptor.accept(tcp).await
    }

    /// Runs the client side of a handshake with the catalogue at `host`,
    /// whose certificate must name it.
    pub(crate) async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<ClientStream> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connector = self.configs().connector.clone();
        connector.connect(name, tcp).await
    }
}

fn build(files: &TlsFiles, verify_clients: bool) -> Result<Configs, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certs(&files.ca)? {
        roots.add(ca).map_err(TlsError::Rustls)?;
    }
    let roots = Arc::new(roots);
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::File {
        path: files.key.clone(),
        source,
    })?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    // Clients without a certificate may still look up (not register, not
    // link) unless every client must be verified.
    let verifier = if verify_clients {
        verifier
    } else {
        verifier.allow_unauthenticated()
    };
    let verifier = verifier.build().map_err(TlsError::Verifier)?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(TlsError::Rustls)?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    Ok(Configs {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |source| TlsError::File {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(file_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The host part of `host:port` (IPv6 without its brackets).
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Whether a (verified) certificate names `host`, as a DNS name or an IP
/// address among its subject alternative names.
pub(crate) fn names_host(cert: &CertificateDer<'_>, host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert).is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("a.example:4790"), "a.example");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:1"), "::1");
    }
}
