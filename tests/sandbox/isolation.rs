//! Nothing is granted: a guest sees no file, no environment variable, no
//! argument and no network.

use serde_json::Value;

use crate::common::run;

async fn attempt_output(input: &str) -> Value {
    let report = run("misbehave", input).await;
    let weft::Outcome::Ok { output } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    serde_json::from_str(&output).unwrap()
}

fn assert_failed(report: &Value, what: &str) {
    assert_eq!(report[what]["succeeded"], false, "{what} succeeded: {report}");
}

#[tokio::test]
async fn cannot_see_files() {
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for path in ["/etc/passwd", here, "Cargo.toml", "."] {
        let report = attempt_output(&format!(r#"{{"mode": "read_file", "path": "{path}"}}"#)).await;
        assert_failed(&report, "read");
        assert_failed(&report, "list_root");
        assert_failed(&report, "create");
    }
    assert!(!std::path::Path::new("escape.txt").exists());
}

#[tokio::test]
async fn cannot_see_environment_variables_or_arguments() {
    // The test process certainly has PATH; the guest must not.
    assert!(std::env::var("PATH").is_ok());
    let report = attempt_output(r#"{"mode": "env_var", "name": "PATH"}"#).await;
    assert_eq!(report["vars"], serde_json::json!([]));
    assert_eq!(report["named"], Value::Null);
    assert_eq!(report["args"], serde_json::json!([]));
}

#[tokio::test]
async fn cannot_open_sockets() {
    // A real listener the guest would reach if it had any network.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let report = attempt_output(&format!(r#"{{"mode": "open_socket", "addr": "{addr}"}}"#)).await;
    for what in ["tcp_connect", "udp_bind", "tcp_listen", "resolve"] {
        assert_failed(&report, what);
    }
    assert!(listener.accept().is_err(), "the guest reached the listener");
}
