//! What a node keeps in its data dir besides the Raft store: who it is (`node.json`), its TLS
//! material (`tls/`), and on the bootstrap node the admin token (`admin-token`, mode 0600).
//! Also the join-token and admin-token formats.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use gantry_proto::cluster::NodeId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

use crate::fabric::{pki, MemberTls};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
}

/// `node.json`: written last when a node is created, so its presence means the identity is whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub name: String,
    pub zone: String,
}

/// Paths inside a data dir.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }
    pub fn node_record(&self) -> PathBuf {
        self.root.join("node.json")
    }
    pub fn raft_dir(&self) -> PathBuf {
        self.root.join("raft")
    }
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin-token")
    }
    fn node_cert(&self) -> PathBuf {
        self.tls_dir().join("node.crt")
    }
    fn node_key(&self) -> PathBuf {
        self.tls_dir().join("node.key")
    }
    fn ca_cert(&self) -> PathBuf {
        self.tls_dir().join("ca.crt")
    }

    pub fn load_record(&self) -> Result<Option<NodeRecord>, IdentityError> {
        let path = self.node_record();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(IdentityError::Io { action: "read", path, source }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| IdentityError::Corrupt { path, reason: e.to_string() })
    }

    /// Writes the TLS files, then `node.json` (the commit point).
    pub fn store(&self, record: &NodeRecord, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<(), IdentityError> {
        let tls = self.tls_dir();
        std::fs::create_dir_all(&tls).map_err(|source| IdentityError::Io {
            action: "create",
            path: tls.clone(),
            source,
        })?;
        write_private(&self.node_key(), key_pem.as_bytes())?;
        write_file(&self.node_cert(), cert_pem.as_bytes(), false)?;
        write_file(&self.ca_cert(), ca_pem.as_bytes(), false)?;
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| IdentityError::Corrupt { path: self.node_record(), reason: e.to_string() })?;
        write_file(&self.node_record(), &json, false)
    }

    /// The TLS material the fabric presents: chain (node, CA), key and CA.
    pub fn load_tls(&self) -> Result<MemberTls, IdentityError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| IdentityError::Io { action: "read", path, source })
        };
        let cert = pki::cert_der_from_pem(&read(self.node_cert())?)?;
        let ca = pki::cert_der_from_pem(&read(self.ca_cert())?)?;
        let key_path = self.node_key();
        let key = PrivateKeyDer::from_pem_slice(read(key_path.clone())?.as_bytes())
            .map_err(|e| IdentityError::Corrupt { path: key_path, reason: e.to_string() })?;
        Ok(MemberTls { chain: vec![cert, ca.clone()], key, ca })
    }

    pub fn store_admin_token(&self, token: &str) -> Result<(), IdentityError> {
        write_private(&self.admin_token(), format!("{token}\n").as_bytes())
    }
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io { action: "write", path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    write_file(path, bytes, true)
}

/// Random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    pki::sha256(bytes)
}

/// Compares without an early exit, so timing says nothing about where secrets differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// A join token: `gtj1.<id>.<secret>.<ca-sha256>`, all hex. The id names the token in Raft; the
/// secret proves possession (only its hash is stored); the pin lets the joiner trust the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinTokenText {
    pub id: String,
    pub secret: String,
    pub ca_pin: [u8; 32],
}

impl JoinTokenText {
    pub fn new(ca_pin: [u8; 32]) -> Self {
        Self { id: random_hex(8), secret: random_hex(16), ca_pin }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let [prefix, id, secret, pin] = parts.as_slice() else {
            return Err("a join token has four dot-separated parts (gtj1.ID.SECRET.PIN)".into());
        };
        if *prefix != "gtj1" {
            return Err(format!("unknown join token version \"{prefix}\" (expected gtj1)"));
        }
        let hex = |s: &str| s.len().is_multiple_of(2) && !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(id) || !hex(secret) || pin.len() != 64 || !hex(pin) {
            return Err("the join token is malformed (not hex)".into());
        }
        let mut ca_pin = [0u8; 32];
        for (i, byte) in ca_pin.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&pin[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Self { id: id.to_string(), secret: secret.to_string(), ca_pin })
    }

    pub fn secret_sha256(&self) -> [u8; 32] {
        sha256(self.secret.as_bytes())
    }
}

impl std::fmt::Display for JoinTokenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pin: String = self.ca_pin.iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "gtj1.{}.{}.{pin}", self.id, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_round_trip_and_reject_garbage() {
        let token = JoinTokenText::new([7; 32]);
        assert_eq!(JoinTokenText::parse(&token.to_string()), Ok(token.clone()));
        for bad in ["", "gtj1.a.b", "gtj2.aa.bb.cc", "gtj1.zz.bb.0707", &token.to_string().replace("gtj1", "gtj0")] {
            assert!(JoinTokenText::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn admin_token_file_is_private() {
        let dir = tempfile::tempdir().expect("dir");
        let data = DataDir::new(dir.path());
        data.store_admin_token("secret").expect("store");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.admin_token()).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
