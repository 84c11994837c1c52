//! Misbehaves on request: one guest for every way a task can try to
//! exhaust, crash or escape its sandbox. The sandbox tests run each mode
//! and check that the limit holds and the host keeps serving.
//!
//! Input: `{"mode": "<mode>", ...}`; see [`Mode`]. The escape modes (file,
//! env, socket) return what they managed to do, so a test can check that
//! it was nothing; the HTTP modes (`http.rs`) report how far they got.

mod http;

use std::hint::black_box;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_sdk::TaskError;

#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
enum Mode {
    /// Loops forever without calling the host.
    Spin,
    /// Allocates (and touches) 1 MiB after 1 MiB, never freeing.
    Allocate,
    /// Recurses without end.
    Recurse,
    /// Does a fixed amount of arithmetic and returns its result.
    Burn { iterations: u64 },
    /// Returns a JSON string of `bytes` bytes.
    BigOutput { bytes: usize },
    /// Prints to stdout forever.
    StdoutFlood,
    /// Sleeps in the host (a blocking WASI call), for `ms` milliseconds.
    Sleep { ms: u64 },
    /// Panics.
    Panic,
    /// Tries to read a file and list the root directory.
    ReadFile { path: String },
    /// Reports every environment variable it can see, and the one named.
    EnvVar { name: String },
    /// Tries to connect to `addr` over TCP, bind UDP and resolve a name.
    OpenSocket { addr: String },
    /// Requests `url` until the host stops it (the request cap).
    HttpFlood { url: String },
    /// Uploads an endless body to `url` (the bytes-sent cap).
    EndlessUpload { url: String },
    /// Reads the answer of `url` to its end, keeping none of it (the
    /// bytes-received cap, against a server that never ends).
    HttpDrain { url: String },
    /// Reads the answer of `url` 16 bytes at a time, `pause_ms` apart (the
    /// host must not buffer what the task has not read).
    SlowReader { url: String, pause_ms: u64 },
}

fn misbehave(mode: Mode) -> Result<Value, TaskError> {
    match mode {
        Mode::Spin => {
            let mut n = 0u64;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        Mode::Allocate => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![0xAB; 1 << 20]));
            }
        }
        Mode::Recurse => Ok(json!({ "depth": recurse(black_box(0)) })),
        Mode::Burn { iterations } => {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..iterations {
                x = black_box(x.rotate_left(5) ^ i).wrapping_mul(0x0100_0000_01b3);
            }
            Ok(json!({ "result": x }))
        }
        Mode::BigOutput { bytes } => Ok(Value::String("x".repeat(bytes))),
        Mode::StdoutFlood => loop {
            println!("{}", black_box("all work and no play makes jack a dull boy"));
        },
        Mode::Sleep { ms } => {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(json!({ "slept_ms": ms }))
        }
        Mode::Panic => panic!("the misbehave task panicked on purpose"),
        Mode::ReadFile { path } => Ok(json!({
            "read": outcome(std::fs::read_to_string(&path).map(|s| s.len())),
            "list_root": outcome(std::fs::read_dir("/").map(|d| d.count())),
            "create": outcome(std::fs::write("escape.txt", b"out")),
        })),
        Mode::EnvVar { name } => Ok(json!({
            "vars": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
            "named": std::env::var(&name).ok(),
            "args": std::env::args().collect::<Vec<_>>(),
            "cwd": std::env::current_dir().ok().map(|p| p.display().to_string()),
        })),
        Mode::OpenSocket { addr } => Ok(json!({
            "tcp_connect": outcome(std::net::TcpStream::connect(&addr).map(|_| ())),
            "udp_bind": outcome(std::net::UdpSocket::bind("0.0.0.0:0").map(|_| ())),
            "tcp_listen": outcome(std::net::TcpListener::bind("127.0.0.1:0").map(|_| ())),
            "resolve": outcome(std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|a| a.count())),
        })),
        Mode::HttpFlood { url } => http::flood(&url),
        Mode::EndlessUpload { url } => http::endless_upload(&url),
        Mode::HttpDrain { url } => http::drain(&url),
        Mode::SlowReader { url, pause_ms } => http::slow_reader(&url, pause_ms),
    }
}

#[derive(Serialize)]
struct Attempted {
    succeeded: bool,
    detail: String,
}

fn outcome<T: std::fmt::Debug>(result: std::io::Result<T>) -> Attempted {
    match result {
        Ok(value) => Attempted {
            succeeded: true,
            detail: format!("{value:?}"),
        },
        Err(e) => Attempted {
            succeeded: false,
            detail: e.to_string(),
        },
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    // black_box on both sides keeps this from becoming a loop.
    1 + recurse(black_box(depth + 1)) + black_box(depth)
}

weft_sdk::export_task!(misbehave);
