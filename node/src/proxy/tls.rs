//! TLS termination: a rustls server config per https listener (ring provider, TLS 1.2 and 1.3,
//! ALPN h2 and http/1.1) whose certificate is chosen by SNI: exact names, then `*.suffix`
//! wildcards, then certificates valid for the name, then the listener's first certificate.

use std::collections::HashMap;
use std::sync::Arc;

use gantry_proto::config::Certificate;
use gantry_proto::Problem;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by suffix with its leading dot.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Certificates without explicit server_names: matched against their own SANs.
    by_subject: Vec<Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return Some(key.clone());
        }
        for (dot, _) in name.match_indices('.') {
            if let Some(key) = self.wildcard.get(&name[dot..]) {
                return Some(key.clone());
            }
        }
        if let Ok(server_name) = ServerName::try_from(name.as_str()) {
            for key in &self.by_subject {
                let valid = key.end_entity_cert().ok().is_some_and(|der| {
                    webpki::EndEntityCert::try_from(der)
                        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&server_name).is_ok())
                });
                if valid {
                    return Some(key.clone());
                }
            }
        }
        Some(self.default.clone())
    }
}

/// Loads one certificate's PEM files. Problems name the certificate's path in the document.
pub fn load_certificate(cert: &Certificate, path: &str) -> Result<Arc<CertifiedKey>, Problem> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert.cert_file).and_then(|iter| iter.collect()).map_err(|e| {
            Problem::new(format!("{path}.cert_file"), format!("cannot read certificates from {}: {e}", cert.cert_file))
        })?;
    if chain.is_empty() {
        return Err(Problem::new(format!("{path}.cert_file"), format!("{} holds no PEM certificate", cert.cert_file)));
    }
    let key = PrivateKeyDer::from_pem_file(&cert.key_file).map_err(|e| {
        Problem::new(format!("{path}.key_file"), format!("cannot read a private key from {}: {e}", cert.key_file))
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| Problem::new(format!("{path}.key_file"), format!("unusable key for {}: {e}", cert.cert_file)))
}

/// Builds the server config of one https listener from its certificates (first = default).
pub fn server_config(
    certificates: &[(&Certificate, Arc<CertifiedKey>)],
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut by_subject = Vec::new();
    for (cert, key) in certificates {
        if cert.server_names.is_empty() {
            by_subject.push(key.clone());
        }
        for name in &cert.server_names {
            match name.strip_prefix('*') {
                Some(suffix) => wildcard.entry(suffix.to_string()).or_insert_with(|| key.clone()),
                None => exact.entry(name.clone()).or_insert_with(|| key.clone()),
            };
        }
    }
    let default = certificates
        .first()
        .map(|(_, key)| key.clone())
        .ok_or_else(|| rustls::Error::General("an https listener needs a certificate".into()))?;
    let resolver = SniResolver { exact, wildcard, by_subject, default };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
