//! TLS to PostgreSQL (`database_ca_file`): the server's certificate must chain to one of the
//! CA certificates of the file, and the host of the URL (a DNS name or an IP address) must be
//! in its subjectAltName — libpq's `sslmode=verify-full`. rustls with the `ring` provider; the
//! tokio-postgres glue (and its SCRAM channel binding) is tokio-postgres-rustls.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The CA certificates PostgreSQL servers are verified against, ready to connect with.
#[derive(Clone)]
pub struct DatabaseCa {
    path: PathBuf,
    certificates: usize,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for DatabaseCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseCa")
            .field("path", &self.path)
            .field("certificates", &self.certificates)
            .finish()
    }
}

impl DatabaseCa {
    /// Reads a PEM file of one or more CA certificates. The message of an error names the
    /// path and what is wrong with it (unreadable, no certificate, a certificate that does
    /// not parse).
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut roots = RootCertStore::empty();
        for (n, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let cert = cert.map_err(|e| format!("{shown}: not a PEM file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: certificate {} is not a usable CA: {e}", n + 1))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "{shown} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)"
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Ok(Self {
            path: path.to_path_buf(),
            certificates: roots.len(),
            connector: MakeRustlsConnect::new(config),
        })
    }

    /// The file the certificates came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many CA certificates the file holds.
    pub fn certificates(&self) -> usize {
        self.certificates
    }

    /// The tokio-postgres connector: TLS, verifying chain and host name against this CA.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }
}
