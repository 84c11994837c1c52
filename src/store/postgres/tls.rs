//! TLS to PostgreSQL: rustls, with the `ring` provider.
//!
//! [`connector`] builds the one connector that the writer's connection and
//! the read pool share, whatever the `sslmode`: the client decides from its
//! own `SslMode` (which `location.rs` sets) whether to use it, so `disable`
//! never does, `prefer` asks the server and talks in clear text when it has
//! no TLS, and the other modes refuse such a server. What the connector
//! checks is what libpq checks:
//!
//! - `prefer`, `require`: the handshake alone (it is signed with the key of
//!   the certificate presented), so the connection is encrypted against an
//!   eavesdropper but not proven to reach the right server. As in libpq,
//!   `require` with a roots file checks as `verify-ca` does.
//! - `verify-ca`: the certificate chains to a trusted root.
//! - `verify-full`: that, and it names the host of the URL (a DNS name, or
//!   an IP address among its subject alternative names).
//!
//! The trusted roots are those in the file that `sslrootcert` (else
//! `PGSSLROOTCERT`) names, and only those, as in libpq. Without one they are
//! the system's (`rustls-native-certs`: the store an operator adds a
//! private CA to, or `SSL_CERT_FILE`), never a list built into the binary;
//! `sslrootcert=system` says so explicitly, as in libpq 16. A check
//! without the host name against the system's roots is refused, as libpq 16
//! refuses it: any certificate that a public CA signed, for any name, would
//! pass it.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::store::location::TlsMode;

/// The TLS connector of every connection to one store.
pub(super) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

/// The `sslrootcert` value that names the system's roots (libpq 16).
const SYSTEM_ROOTS: &str = "system";

/// Why no connector could be built for a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum TlsError {
    /// The roots file cannot be read or holds no certificate.
    #[error("sslrootcert {path}: {reason}")]
    RootFile {
        /// The file, as named.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The system's roots were asked for and none could be loaded.
    #[error(
        "sslmode={mode} checks the server's certificate against the system's trusted roots, and none could be loaded ({reason}); name a file of roots with sslrootcert=PATH"
    )]
    NoSystemRoots {
        /// The mode that needs them.
        mode: TlsMode,
        /// What the loader said.
        reason: String,
    },
    /// A check without the host name, against the system's roots.
    #[error(
        "sslmode={mode} against the system's trusted roots would accept any certificate a public CA signed, as it checks no host name: name your CA's file with sslrootcert=PATH, or use sslmode=verify-full"
    )]
    ChainWithoutNameOnSystemRoots {
        /// The mode asked for.
        mode: TlsMode,
    },
}

/// The connector for `mode`, trusting the roots in `root_file` (else the
/// system's) where the mode checks the certificate. Reads no file and no
/// system store when it does not.
pub(super) fn connector(mode: TlsMode, root_file: Option<&Path>) -> Result<Connector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Verifier {
        check: check(mode, root_file)?,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring offers TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // What libpq 17 offers; a server that speaks TLS first
    // (`sslnegotiation=direct`) requires it, the others ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Connector::new(config))
}

/// What `mode` checks, with the roots it needs loaded.
fn check(mode: TlsMode, root_file: Option<&Path>) -> Result<Check, TlsError> {
    let named = root_file.map(|path| match path.to_str() {
        Some(SYSTEM_ROOTS) => Roots::System,
        _ => Roots::File(path),
    });
    Ok(match (mode, named) {
        (TlsMode::Disable | TlsMode::Prefer, _) | (TlsMode::Require, None) => Check::Handshake,
        (TlsMode::Require | TlsMode::VerifyCa, Some(Roots::File(path))) => Check::Chain(roots_in(path)?),
        (TlsMode::Require | TlsMode::VerifyCa, _) => {
            return Err(TlsError::ChainWithoutNameOnSystemRoots { mode });
        }
        (TlsMode::VerifyFull, Some(Roots::File(path))) => Check::ChainAndName(roots_in(path)?),
        (TlsMode::VerifyFull, _) => Check::ChainAndName(system_roots(mode)?),
    })
}

/// The trusted roots a location names.
enum Roots<'a> {
    /// `sslrootcert=system`.
    System,
    /// A PEM file of them.
    File(&'a Path),
}

/// What the verifier checks of the server's certificate.
#[derive(Debug)]
enum Check {
    /// Only that the handshake is signed with the certificate's key.
    Handshake,
    /// That the certificate chains to one of these roots.
    Chain(RootCertStore),
    /// That, and that it names the host connected to.
    ChainAndName(RootCertStore),
}

/// The roots in a PEM file.
fn roots_in(path: &Path) -> Result<RootCertStore, TlsError> {
    let bad = |reason: String| TlsError::RootFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("holds no certificate (PEM, -----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(roots)
}

/// The system's trusted roots.
fn system_roots(mode: TlsMode) -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let reason = match loaded.errors.as_slice() {
            [] => "the system's store is empty".to_string(),
            errors => errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        };
        return Err(TlsError::NoSystemRoots { mode, reason });
    }
    for error in &loaded.errors {
        tracing::debug!(%error, "some of the system's trusted roots could not be loaded");
    }
    Ok(roots)
}

/// Checks the server's certificate as [`Check`] says, and the handshake's
/// signatures always, with the provider's algorithms.
#[derive(Debug)]
struct Verifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (roots, check_name) = match &self.check {
            Check::Handshake => return Ok(ServerCertVerified::assertion()),
            Check::Chain(roots) => (roots, false),
            Check::ChainAndName(roots) => (roots, true),
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        if check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    use super::*;

    /// A CA of its own, its certificate written to `ca.pem` in `dir`.
    fn ca(dir: &Path, name: &str) -> (CertifiedIssuer<'static, KeyPair>, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let file = dir.join(format!("{name}.pem"));
        std::fs::write(&file, ca.pem()).unwrap();
        (ca, file)
    }

    /// A server certificate for `names`, signed by `ca`.
    fn server(ca: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "db");
        params
            .signed_by(&KeyPair::generate().unwrap(), ca)
            .unwrap()
            .der()
            .clone()
    }

    fn verify(check: Check, cert: &CertificateDer<'_>, host: &str) -> Result<(), rustls::Error> {
        let verifier = Verifier {
            check,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        };
        let host = ServerName::try_from(host.to_string()).unwrap();
        verifier
            .verify_server_cert(cert, &[], &host, &[], UnixTime::now())
            .map(drop)
    }

    #[test]
    fn each_mode_checks_what_libpq_checks() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, ours_file) = ca(dir.path(), "ours");
        let (theirs, _) = ca(dir.path(), "theirs");
        let good = server(&ours, &["localhost", "127.0.0.1"]);
        let impostor = server(&theirs, &["localhost", "127.0.0.1"]);
        let root = Some(ours_file.as_path());
        let check = |mode| check(mode, root).unwrap();

        for host in ["localhost", "127.0.0.1"] {
            verify(check(TlsMode::VerifyFull), &good, host).unwrap();
        }
        let elsewhere = verify(check(TlsMode::VerifyFull), &good, "db.example").unwrap_err();
        assert!(
            elsewhere.to_string().contains("not valid for name \"db.example\""),
            "{elsewhere}"
        );
        let unknown = verify(check(TlsMode::VerifyFull), &impostor, "localhost").unwrap_err();
        assert!(unknown.to_string().contains("UnknownIssuer"), "{unknown}");

        verify(check(TlsMode::VerifyCa), &good, "db.example").unwrap();
        verify(check(TlsMode::VerifyCa), &impostor, "localhost").unwrap_err();
        // As in libpq: `require` with a roots file checks as `verify-ca`.
        verify(check(TlsMode::Require), &good, "db.example").unwrap();
        verify(check(TlsMode::Require), &impostor, "localhost").unwrap_err();

        for mode in [TlsMode::Disable, TlsMode::Prefer, TlsMode::Require] {
            let check = super::check(mode, None).unwrap();
            assert!(matches!(check, Check::Handshake), "{mode}: {check:?}");
            verify(check, &impostor, "db.example").unwrap();
        }
    }

    #[test]
    fn a_check_without_the_name_needs_a_named_ca() {
        let system = Some(Path::new(SYSTEM_ROOTS));
        for (mode, roots) in [
            (TlsMode::VerifyCa, None),
            (TlsMode::VerifyCa, system),
            (TlsMode::Require, system),
        ] {
            let error = check(mode, roots).unwrap_err();
            assert_eq!(error, TlsError::ChainWithoutNameOnSystemRoots { mode });
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("sslmode={mode} against the system's")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_roots_file_must_be_there_and_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = check(TlsMode::VerifyFull, Some(&missing)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("sslrootcert {}: ", missing.display())),
            "{error}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = check(TlsMode::VerifyCa, Some(&empty)).unwrap_err();
        assert!(error.to_string().contains("holds no certificate"), "{error}");
        // Read only when the mode checks the certificate.
        assert!(matches!(check(TlsMode::Prefer, Some(&missing)), Ok(Check::Handshake)));
    }
}
