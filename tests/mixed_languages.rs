//! The order workflow with its steps written in three languages
//! (`example-tasks/workflows/order-mixed.yaml`): payment, stock and refund
//! in Rust, the warehouse in TypeScript, the confirmation in Python, run
//! end to end by the real `weft run`. Skips loudly (fails under `CI=true`)
//! when the Python or JavaScript toolchain cannot be had.

// Both guest harnesses bring their own copy of `outside.rs`.
#![allow(clippy::duplicate_mod)]

mod common;
#[path = "common/js_guest.rs"]
mod js_guest;
#[path = "common/python_guest.rs"]
mod python_guest;

use std::path::Path;
use std::process::Command;

#[test]
fn the_order_runs_with_steps_in_rust_python_and_javascript() {
    let Some(confirmation) = python_guest::component("send_confirmation") else {
        return;
    };
    let Some(warehouse) = js_guest::component("notify_warehouse") else {
        return;
    };
    let rust = common::guest("validate_payment");
    let rust = rust.parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("run")
        .arg(root.join("example-tasks/workflows/order-mixed.yaml"))
        .arg("--modules")
        .arg(rust)
        .arg("--module")
        .arg(format!("send_confirmation_py={}", confirmation.display()))
        .arg("--module")
        .arg(format!("notify_warehouse_js={}", warehouse.display()))
        .arg("--input")
        .arg(format!("@{}", root.join("example-tasks/inputs/order.json").display()))
        .arg("--json")
        .output()
        .expect("running weft run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "the mixed order failed:\n{stdout}\n{stderr}"
    );
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}:\n{stdout}"));
    let run = &shown["run"];
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let output = &run["output"];
    // The Python step's output and the TypeScript step's, as their Rust
    // twins give them.
    assert_eq!(output["confirmation"], "msg_A-1001", "{run:#}");
    assert_eq!(output["shipment_id"], "shp_A-1001", "{run:#}");
    assert_eq!(output["warehouse"], "FRA-1", "{run:#}");
    assert!(
        output["authorization_id"]
            .as_str()
            .is_some_and(|a| a.starts_with("auth_")),
        "{run:#}"
    );
}
