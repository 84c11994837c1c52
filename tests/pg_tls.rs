//! TLS to PostgreSQL, on a real server with `ssl = on` that takes TCP
//! connections over TLS only (`Pg::start_local_tls`), with certificates
//! made for the test: what each `sslmode` accepts and what it refuses, and
//! that the refusals say why.

#[path = "common/pg.rs"]
mod pg;

use std::path::PathBuf;
use std::sync::Arc;

use pg::Pg;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use weft::store::{self, Change, Store, StoreError, StoreLocation};

/// A CA of the test's own and a server certificate it signed for
/// `localhost` and 127.0.0.1, and another CA that signed nothing here.
struct Certs {
    dir: tempfile::TempDir,
    cert_pem: String,
    key_pem: String,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), ca.pem()).unwrap();
            ca
        };
        let ours = ca("ours");
        ca("theirs");
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "weft test server");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ours).unwrap();
        Certs {
            dir,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The roots file of the CA that signed the server's certificate.
    fn ours(&self) -> PathBuf {
        self.dir.path().join("ours.pem")
    }

    /// The roots file of a CA that did not.
    fn theirs(&self) -> PathBuf {
        self.dir.path().join("theirs.pem")
    }
}

/// A server with TLS on, with `certs`' certificate; `None` (reported as
/// skipped) where no server can be had.
fn server(certs: &Certs) -> Option<Pg> {
    Pg::start_local_tls(&certs.cert_pem, &certs.key_pem)
}

/// The test database's URL with `host` for 127.0.0.1 and `query` added.
fn url(pg: &Pg, host: &str, query: &str) -> String {
    format!("{}?{query}", pg.url().replacen("@127.0.0.1:", &format!("@{host}:"), 1))
}

async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let location: StoreLocation = url.parse().unwrap();
    store::open(&location, store::DEFAULT_CACHE).await
}

/// Opens the store at `url`, writes through it and reads back what it
/// wrote; returns the store, open.
async fn round_trip(url: &str, value: &str) -> Arc<dyn Store> {
    let db = match open(url).await {
        Ok(db) => db,
        Err(e) => panic!("{url}: {e}"),
    };
    let value = value.as_bytes().to_vec();
    db.commit(vec![Change::Kv {
        tenant: "acme".into(),
        key: "k".into(),
        value: Some(value.clone()),
    }])
    .await
    .unwrap();
    assert_eq!(db.kv_get("acme", "k").await.unwrap(), Some(value), "{url}");
    db
}

/// The message of the error opening `url`; panics if it opens.
async fn refused(url: &str) -> String {
    match open(url).await {
        Ok(_) => panic!("{url} opened"),
        Err(StoreError::Open(message)) => message,
        Err(other) => panic!("{url}: not an open error: {other:?}"),
    }
}

#[tokio::test]
async fn verify_full_trusts_the_named_ca_and_checks_the_host_name() {
    let certs = Certs::new();
    let Some(pg) = server(&certs) else { return };
    let ours = format!("sslrootcert={}", certs.ours().display());
    let theirs = format!("sslrootcert={}", certs.theirs().display());

    // The certificate names both 127.0.0.1 and localhost.
    round_trip(&url(&pg, "127.0.0.1", &format!("sslmode=verify-full&{ours}")), "1").await;
    round_trip(&url(&pg, "localhost", &format!("sslmode=verify-full&{ours}")), "2").await;

    let message = refused(&url(&pg, "127.0.0.1", &format!("sslmode=verify-full&{theirs}"))).await;
    assert!(
        message.contains("TLS") && message.contains("certificate") && message.contains("UnknownIssuer"),
        "{message}"
    );

    // Connected to 127.0.0.1 under a name the certificate does not hold:
    // verify-full refuses it by name, verify-ca checks only the chain.
    let elsewhere = |mode: &str, roots: &str| {
        url(
            &pg,
            "db.weft.test",
            &format!("hostaddr=127.0.0.1&sslmode={mode}&{roots}"),
        )
    };
    let message = refused(&elsewhere("verify-full", &ours)).await;
    assert!(
        message.contains("TLS") && message.contains("certificate not valid for name \"db.weft.test\""),
        "{message}"
    );
    round_trip(&elsewhere("verify-ca", &ours), "3").await;
    let message = refused(&elsewhere("verify-ca", &theirs)).await;
    assert!(message.contains("UnknownIssuer"), "{message}");

    let missing = certs.dir.path().join("missing.pem");
    let message = refused(&url(
        &pg,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
    ))
    .await;
    assert!(
        message.contains(&format!("sslrootcert {}", missing.display())),
        "{message}"
    );
}

#[tokio::test]
async fn require_and_prefer_encrypt_without_a_ca_and_a_tls_only_server_refuses_disable() {
    let certs = Certs::new();
    let Some(pg) = server(&certs) else { return };

    round_trip(&url(&pg, "127.0.0.1", "sslmode=require"), "1").await;
    // The server takes TCP connections over TLS only, so `prefer` (also the
    // default, without sslmode) can only get through encrypted. (Its
    // fallback to clear text is what every other PostgreSQL test, on a
    // server without TLS, goes through.)
    round_trip(&url(&pg, "127.0.0.1", "sslmode=prefer"), "2").await;
    let db = round_trip(pg.url(), "3").await;
    let connections = pg.psql(
        "SELECT count(*) FILTER (WHERE ssl) || ' of ' || count(*) \
         FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name LIKE 'weft %'",
    );
    let (encrypted, all) = connections.split_once(" of ").unwrap();
    assert!(
        encrypted == all && all != "0",
        "{connections} of the store's connections are encrypted"
    );
    drop(db);

    let message = refused(&url(&pg, "127.0.0.1", "sslmode=disable")).await;
    assert!(message.contains("no encryption"), "{message}");
}
