//! Server certificates for TLS listeners: reading the PEM files named by `[tls]`,
//! checking that each key matches its certificate, and choosing a certificate by
//! the name a client asks for (SNI), with the default for every other name.
//!
//! Owns certificate loading and selection. It must never touch a connection or a
//! socket: the transport uses the `rustls::ServerConfig` built here.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsConfig;

/// A certificate or key that cannot be used: which config key names it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertError {
    /// `cert` or `key` (in `[tls]` or a `[[tls.sni]]` entry).
    pub key: &'static str,
    pub message: String,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.message)
    }
}

/// Builds the TLS server configuration: TLS 1.3 and 1.2, ALPN `http/1.1`, the
/// default certificate and one per `[[tls.sni]]` name.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let default = certified_key(&tls.cert, &tls.key)?;
    let mut by_name = HashMap::new();
    for sni in &tls.sni {
        by_name.insert(
            sni.name.to_ascii_lowercase(),
            certified_key(&sni.cert, &sni.key)?,
        );
    }
    let resolver = Arc::new(CertResolver { default, by_name });
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| CertError {
                key: "cert",
                message: format!("TLS setup: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads a chain and its key and checks that they belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let cert_err = |message: String| CertError {
        key: "cert",
        message,
    };
    let key_err = |message: String| CertError {
        key: "key",
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cert_err(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(cert_err(format!(
            "{}: no PEM certificate in it",
            cert.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| key_err(format!("{}: {e}", key.display())))?;
    let signing = provider::sign::any_supported_type(&private)
        .map_err(|e| key_err(format!("{}: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        key_err(format!(
            "{} does not match the certificate in {}: {e}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

/// Picks the certificate for the name in the ClientHello, or the default.
#[derive(Debug)]
struct CertResolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()));
        Some(Arc::clone(named.unwrap_or(&self.default)))
    }
}
