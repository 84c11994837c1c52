//! Loading refuses everything that is not a weft task, saying why.

use weft::sandbox::LoadError;

use crate::common::{guest_bytes, sandbox};

fn load_error(bytes: &[u8]) -> LoadError {
    sandbox().load(bytes).expect_err("the component was accepted")
}

#[test]
fn refuses_a_file_that_is_not_wasm() {
    assert_eq!(load_error(b""), LoadError::Empty);
    assert_eq!(load_error(b"#!/bin/sh\necho hi\n"), LoadError::NotWasm);
    assert!(
        load_error(b"hello")
            .to_string()
            .contains("does not start with the `\\0asm` magic bytes")
    );
}

#[test]
fn refuses_a_core_module() {
    let core = wat::parse_str("(module (func (export \"run\")))").unwrap();
    let error = load_error(&core);
    assert_eq!(error, LoadError::CoreModule);
    assert!(
        error
            .to_string()
            .contains("build the task for the wasm32-wasip2 target")
    );
}

#[test]
fn refuses_a_truncated_component() {
    let bytes = guest_bytes("hello");
    let error = load_error(&bytes[..bytes.len() / 2]);
    assert!(matches!(error, LoadError::Invalid(_)), "{error}");
}

#[test]
fn refuses_a_component_importing_what_the_host_lacks() {
    let error = load_error(&guest_bytes("bad_import"));
    assert_eq!(
        error,
        LoadError::UnsupportedImports(vec!["acme:rogue/net@1.0.0".into()])
    );
    assert!(
        error
            .to_string()
            .starts_with("the component imports `acme:rogue/net@1.0.0`, which weft does not provide")
    );
}

#[test]
fn refuses_a_component_for_another_world() {
    let error = load_error(&guest_bytes("not_a_task"));
    let LoadError::NotATask { exports } = &error else {
        panic!("{error}")
    };
    assert!(exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2")), "{exports:?}");
    assert!(error.to_string().contains("so it is not a weft task"));
}

#[test]
fn accepts_every_example_task_and_caches_by_digest() {
    for name in crate::common::EXAMPLE_TASKS {
        let bytes = guest_bytes(name);
        let module = sandbox().load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(module.digest(), weft::Digest::of(&bytes));
        let again = sandbox()
            .load_compiled(&module.digest())
            .unwrap()
            .expect("kept in memory");
        assert!(
            std::sync::Arc::ptr_eq(&module, &again),
            "{name}: the same module by digest"
        );
        assert!(
            module.imports().iter().any(|i| i.starts_with("weft:task/")),
            "{name}: {:?}",
            module.imports()
        );
        let again = sandbox().load(&bytes).unwrap();
        assert!(std::sync::Arc::ptr_eq(&module, &again), "{name} was compiled twice");
    }
}
