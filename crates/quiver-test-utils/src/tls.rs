//! [`TestPki`]: certificates made at test time (rcgen, ECDSA P-256) in a directory of PEM files:
//! a CA, a server certificate for `127.0.0.1` and `localhost` signed by it, an expired server
//! certificate, a client certificate signed by the CA, and a second CA that signed none of them
//! (the "wrong CA").

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM files under one directory; see the module docs.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

/// A leaf signed by `issuer`: `(certificate PEM, key PEM)`.
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    expired: bool,
) -> (String, String) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf cert");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Generates every certificate into `dir` (created if missing).
    pub fn generate(dir: &Path) -> TestPki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let write = |name: &str, pem: &str| -> PathBuf {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        let authority = ca("Quiver test CA");
        let other = ca("Some other CA");
        let (server_cert, server_key) = leaf(
            &authority,
            "quiver server",
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        );
        let (expired_cert, expired_key) = leaf(
            &authority,
            "expired server",
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
        );
        let (client_cert, client_key) = leaf(
            &authority,
            "quiver client",
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        );
        TestPki {
            dir: dir.to_path_buf(),
            ca: write("ca.pem", &authority.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            expired_cert: write("expired.pem", &expired_cert),
            expired_key: write("expired.key", &expired_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.pem", &other.pem()),
        }
    }
}
