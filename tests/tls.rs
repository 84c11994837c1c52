//! HTTPS without a proxy, on real `weft serve` processes with
//! certificates made for the test by two CAs of its own: the CLI with and
//! without `--ca`, a plain HTTPS client, plain HTTP sent to the TLS port,
//! a certificate swapped by SIGHUP (and a broken one refused by it), and
//! the start-up errors of certificates that cannot be used.

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use serve::{ADMIN, Server, serve_command};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Two CAs, `one` and `two`, and for each a server certificate it signed
/// for `localhost` and 127.0.0.1, all as PEM files in one directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        for name in ["one", "two"] {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(DnType::CommonName, format!("weft test CA {name}"));
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            std::fs::write(dir.path().join(format!("ca-{name}.pem")), ca.pem()).unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, "weft test server");
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.path().join(format!("cert-{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("key-{name}.pem")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The CA file of `one` or `two`.
    fn ca(&self, name: &str) -> PathBuf {
        self.path(&format!("ca-{name}.pem"))
    }

    /// Puts the certificate and key that `name` signed where the server
    /// reads them (`cert.pem`, `key.pem`).
    fn install(&self, name: &str) {
        for what in ["cert", "key"] {
            std::fs::copy(
                self.path(&format!("{what}-{name}.pem")),
                self.path(&format!("{what}.pem")),
            )
            .unwrap();
        }
    }
}

/// A server on 127.0.0.1:0 serving HTTPS with `pki`'s `cert.pem` and
/// `key.pem`.
fn start(pki: &Pki, data: &Path) -> Server {
    let mut command = serve_command(data, None, None);
    command
        .arg("--tls-cert")
        .arg(pki.path("cert.pem"))
        .arg("--tls-key")
        .arg(pki.path("key.pem"));
    let server = Server::spawn(command);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    server
}

fn port(server: &Server) -> u16 {
    server.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A TLS connection to the server trusting only the CA in `ca`, checking
/// the certificate against the name `localhost`.
async fn connect(port: u16, ca: &Path) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())
}

/// One HTTP/1.1 request on `stream`, with a JSON body if given (the
/// connection closes after it): the status and the body.
async fn exchange<S>(stream: &mut S, method: &str, path: &str, token: Option<&str>, json: Option<&str>) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let content = match json {
        Some(json) => format!("content-type: application/json\r\ncontent-length: {}\r\n", json.len()),
        None => String::new(),
    };
    let body = json.unwrap_or_default();
    let request =
        format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n{auth}{content}connection: close\r\n\r\n{body}");
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_all(stream).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    (status, body)
}

/// Everything the peer sends until it closes (or the connection breaks).
async fn read_all<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return answer,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the peer neither answered nor closed within 10 s"),
        }
    }
}

/// `GET path` over a fresh HTTPS connection trusting only `ca`.
async fn get(port: u16, ca: &Path, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let mut stream = connect(port, ca).await?;
    Ok(exchange(&mut stream, "GET", path, token, None).await)
}

/// Runs the CLI with `args`, with no WEFT_* setting from the environment
/// but those in `env`.
fn weft(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command.args(args).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("WEFT_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until the server's log holds `text`.
fn wait_for_log(server: &Server, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = server.log();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "the server never logged {text:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hangup(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_https_client_is_served_and_plain_http_is_refused() {
    let pki = Pki::new();
    pki.install("one");
    let data = tempfile::tempdir().unwrap();
    let mut server = start(&pki, data.path());
    let port = port(&server);
    let (ca_one, ca_two) = (pki.ca("one"), pki.ca("two"));

    // A plain HTTPS client trusting the CA that signed the certificate.
    let (status, body) = get(port, &ca_one, "/healthz", None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    // One trusting another CA refuses the server.
    let refused = get(port, &ca_two, "/healthz", None).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    // A client that connects and never shakes hands holds up no one.
    let _silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let asked = Instant::now();
    let (status, _) = get(port, &ca_one, "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());

    // Plain HTTP to the TLS port gets no HTTP answer ...
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut plain).await;
    assert!(!answer.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&answer));
    wait_for_log(&server, "TLS handshake failed; connection dropped");
    // ... and the server goes on serving.
    assert!(server.alive());
    let mut stream = connect(port, &ca_one).await.unwrap();
    let (status, body) = exchange(
        &mut stream,
        "POST",
        "/v1/admin/tenants",
        Some(ADMIN),
        Some(r#"{"name": "acme"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The audit trail has the peer's address, over TLS too.
    let (status, body) = get(port, &ca_one, "/v1/admin/audit", Some(ADMIN)).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let trail: Value = serde_json::from_str(&body).unwrap();
    let entry = &trail["entries"][0];
    assert!(
        entry["address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1")),
        "{entry}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_trusts_the_ca_it_is_given() {
    let pki = Pki::new();
    pki.install("one");
    let data = tempfile::tempdir().unwrap();
    let server = start(&pki, data.path());
    let (ca_one, ca_two) = (pki.ca("one"), pki.ca("two"));
    let (ca_one, ca_two) = (ca_one.to_str().unwrap(), ca_two.to_str().unwrap());

    // An admin command, then tenant commands, with WEFT_CA in place of
    // the flag for the last.
    let created = weft(
        &[
            "tenant",
            "create",
            "acme",
            "--json",
            "--url",
            &server.url,
            "--ca",
            ca_one,
        ],
        &[("WEFT_ADMIN_TOKEN", ADMIN)],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = created["api_key"]["token"].as_str().unwrap().to_string();
    let me = weft(
        &["whoami", "--url", &server.url, "--ca", ca_one],
        &[("WEFT_TOKEN", &token)],
    );
    assert!(me.status.success(), "{}", stderr(&me));
    assert!(String::from_utf8_lossy(&me.stdout).contains("of tenant acme"));
    let listed = weft(
        &["workflow", "list", "--json", "--url", &server.url],
        &[("WEFT_TOKEN", &token), ("WEFT_CA", ca_one)],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap()["workflows"],
        serde_json::json!([])
    );

    // A module upload (a body of some size), a workflow, and a run
    // followed live over its event stream, all over HTTPS.
    let with_ca = [("WEFT_TOKEN", token.as_str()), ("WEFT_CA", ca_one)];
    let hello = common::guest("hello");
    let pushed = weft(
        &["module", "push", "hello", hello.to_str().unwrap(), "--url", &server.url],
        &with_ca,
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let workflow = data.path().join("greet.yaml");
    std::fs::write(
        &workflow,
        "name: greet\nsteps:\n  - id: greet\n    task: hello\n    input: {name: Ada}\n",
    )
    .unwrap();
    let pushed = weft(
        &["workflow", "push", workflow.to_str().unwrap(), "--url", &server.url],
        &with_ca,
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let run = weft(&["start", "greet", "--wait", "--url", &server.url], &with_ca);
    let followed = stderr(&run);
    assert!(run.status.success(), "{followed}");
    // Lines only the event stream prints.
    assert!(
        followed.contains("attempt 1") && followed.contains("run succeeded"),
        "{followed}"
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("Ada"), "{followed}");

    // Without --ca the system's roots do not know the test CA; with the
    // other CA's file, that file is named.
    let untrusted = weft(&["whoami", "--url", &server.url], &[("WEFT_TOKEN", &token)]);
    assert_eq!(untrusted.status.code(), Some(2));
    let message = stderr(&untrusted);
    assert!(
        message.contains("certificate is not trusted") && message.contains("--ca FILE"),
        "{message}"
    );
    let wrong_ca = weft(
        &["whoami", "--url", &server.url, "--ca", ca_two],
        &[("WEFT_TOKEN", &token)],
    );
    let message = stderr(&wrong_ca);
    assert!(!wrong_ca.status.success());
    assert!(
        message.contains("certificate is not trusted") && message.contains(ca_two),
        "{message}"
    );

    // http:// to the TLS port: no answer, and the CLI says what to do.
    let http_url = server.url.replacen("https://", "http://", 1);
    let plain = weft(&["whoami", "--url", &http_url], &[("WEFT_TOKEN", &token)]);
    let message = stderr(&plain);
    assert!(!plain.status.success());
    assert!(message.contains("use an https:// URL"), "{message}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_swaps_the_certificate_and_keeps_it_when_the_new_one_is_broken() {
    let pki = Pki::new();
    pki.install("one");
    let data = tempfile::tempdir().unwrap();
    let mut server = start(&pki, data.path());
    let port = port(&server);
    let (ca_one, ca_two) = (pki.ca("one"), pki.ca("two"));
    // A connection opened under the first certificate.
    let mut open = connect(port, &ca_one).await.unwrap();

    pki.install("two");
    hangup(&server);
    wait_for_log(&server, "SIGHUP: reloaded the TLS certificate and key");
    let (status, _) = get(port, &ca_two, "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
    let refused = get(port, &ca_one, "/healthz", None).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // The connection opened before is untouched.
    let (status, _) = exchange(&mut open, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200);

    // A key file that holds no key: logged, naming it, and the second
    // certificate stays in force.
    std::fs::write(pki.path("key.pem"), "not a key\n").unwrap();
    hangup(&server);
    let log = wait_for_log(&server, "still serving the previous certificate");
    assert!(
        log.contains(&format!(
            "the TLS key file {} holds no private key",
            pki.path("key.pem").display()
        )),
        "{log}"
    );
    assert!(server.alive());
    let (status, _) = get(port, &ca_two, "/healthz", None).await.unwrap();
    assert_eq!(status, 200);

    // A key that belongs to another certificate is refused too.
    std::fs::copy(pki.path("key-one.pem"), pki.path("key.pem")).unwrap();
    hangup(&server);
    let log = wait_for_log(&server, "does not belong to the certificate");
    assert!(log.contains(&pki.path("key.pem").display().to_string()), "{log}");
    let (status, _) = get(port, &ca_two, "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(server.alive());
    server.stop();
}

/// Starts `weft serve` with `args` and expects it to stop with an error
/// before serving; returns its stderr.
fn refused_start(args: &[&Path]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut command = serve_command(data.path(), None, None);
    command.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("weft serve {args:?} started");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    stderr(&output)
}

#[test]
fn certificates_that_cannot_be_used_stop_the_start_naming_the_file() {
    let pki = Pki::new();
    let flag = |f: &'static str| Path::new(f);
    let (cert, key) = (pki.path("cert-one.pem"), pki.path("key-one.pem"));

    let message = refused_start(&[flag("--tls-cert"), &cert]);
    assert!(message.contains("--tls-key"), "{message}");
    let message = refused_start(&[flag("--tls-key"), &key]);
    assert!(message.contains("--tls-cert"), "{message}");

    let missing = pki.path("missing.pem");
    let message = refused_start(&[flag("--tls-cert"), &missing, flag("--tls-key"), &key]);
    assert!(
        message.contains(&format!("cannot read the TLS certificate file {}", missing.display())),
        "{message}"
    );
    let message = refused_start(&[flag("--tls-cert"), &key, flag("--tls-key"), &key]);
    assert!(
        message.contains(&format!(
            "the TLS certificate file {} holds no certificate",
            key.display()
        )),
        "{message}"
    );
    let message = refused_start(&[flag("--tls-cert"), &cert, flag("--tls-key"), &cert]);
    assert!(
        message.contains(&format!("the TLS key file {} holds no private key", cert.display())),
        "{message}"
    );
    let other_key = pki.path("key-two.pem");
    let message = refused_start(&[flag("--tls-cert"), &cert, flag("--tls-key"), &other_key]);
    assert!(
        message.contains(&format!(
            "the TLS key in {} does not belong to the certificate in {}",
            other_key.display(),
            cert.display()
        )),
        "{message}"
    );
}
