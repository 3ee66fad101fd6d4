//! The cluster's certificates: a CA made at bootstrap (rcgen), node certificates that name the
//! node id in a DNS SAN (`n<ID>.nodes.gantry.internal`), and the SHA-256 pin joiners check.
//! A joiner makes its own key pair and sends only the public key: private keys never travel.

use gantry_proto::cluster::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm,
};
use rustls_pki_types::CertificateDer;

/// Suffix of the DNS name that carries a node id in its certificate.
pub const NODE_NAME_SUFFIX: &str = ".nodes.gantry.internal";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("bad PEM: {0}")]
    Pem(String),
}

/// The DNS name a node's certificate is valid for; dialers verify it.
pub fn node_server_name(id: NodeId) -> String {
    format!("n{id}{NODE_NAME_SUFFIX}")
}

/// The node id a certificate names, if it names exactly one.
pub fn node_id_of(cert: &CertificateDer<'_>) -> Option<NodeId> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let mut ids = parsed
        .valid_dns_names()
        .filter_map(|name| name.strip_suffix(NODE_NAME_SUFFIX)?.strip_prefix('n')?.parse().ok());
    let id = ids.next()?;
    ids.next().is_none().then_some(id)
}

/// SHA-256 of a DER certificate: the CA pin carried by join tokens.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn ca_params(cluster_id: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("gantry cluster CA {cluster_id}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

/// A new cluster CA: (certificate PEM, key PEM).
pub fn new_ca(cluster_id: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let cert = ca_params(cluster_id)?.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A public key sent by a joiner: raw P-256 point (what `KeyPair::public_key_raw` gives).
struct RawP256PublicKey(Vec<u8>);

impl PublicKeyData for RawP256PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// Signs a node certificate for `id` over `public_key` (raw P-256 point). Valid for server and
/// client authentication, for the node's DNS name.
pub fn sign_node_cert(cluster_id: &str, ca_key_pem: &str, id: NodeId, public_key: &[u8]) -> Result<String, PkiError> {
    // A P-256 point is 65 bytes uncompressed; anything else is not a key we made.
    if public_key.len() != 65 || public_key.first() != Some(&4) {
        return Err(PkiError::Pem("the public key is not an uncompressed P-256 point".into()));
    }
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(cluster_id)?, ca_key);
    let mut params = CertificateParams::new(vec![node_server_name(id)])?;
    params.distinguished_name.push(DnType::CommonName, format!("gantry node {id}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let cert = params.signed_by(&RawP256PublicKey(public_key.to_vec()), &issuer)?;
    Ok(cert.pem())
}

/// A new node key pair: (key PEM, raw public key to send to the CA holder).
pub fn new_node_key() -> Result<(String, Vec<u8>), PkiError> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_raw().to_vec()))
}

/// Parses the first certificate of a PEM text.
pub fn cert_der_from_pem(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_name_their_node() {
        let (ca_pem, ca_key) = new_ca("c1").expect("ca");
        let (_key_pem, public) = new_node_key().expect("key");
        let cert_pem = sign_node_cert("c1", &ca_key, 42, &public).expect("sign");
        let der = cert_der_from_pem(&cert_pem).expect("der");
        assert_eq!(node_id_of(&der), Some(42));
        // It chains to the CA.
        let ca_der = cert_der_from_pem(&ca_pem).expect("ca der");
        let anchor = webpki::anchor_from_trusted_cert(&ca_der).expect("anchor");
        let cert = webpki::EndEntityCert::try_from(&der).expect("cert");
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .expect("chains to the CA");
        assert!(sign_node_cert("c1", &ca_key, 1, &[1, 2, 3]).is_err());
    }
}
