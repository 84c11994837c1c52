//! Any bytes, parsed as a workflow document: must never panic, hang or
//! exhaust memory, only succeed or return errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft::spec::{SpecConfig, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let config = SpecConfig::default();
        if let Err(errors) = parse(text, &config) {
            // Rendering the errors must not panic either.
            let _ = errors.to_string();
        }
    }
});
