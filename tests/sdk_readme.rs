//! The complete example in `guest-sdk/README.md` is an example task,
//! verbatim, so building `example-tasks/` (as every test run does) proves it
//! compiles, and the sandbox tests prove it works.

mod common;

use std::path::Path;

#[test]
fn the_readme_example_is_validate_payment_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("guest-sdk/README.md")).unwrap();
    let start = readme.find("```rust\n").expect("a rust block in guest-sdk/README.md") + "```rust\n".len();
    let end = start + readme[start..].find("```\n").expect("the rust block ends");
    let source = std::fs::read_to_string(root.join("example-tasks/validate_payment/src/lib.rs")).unwrap();
    assert_eq!(
        &readme[start..end],
        source,
        "guest-sdk/README.md and validate_payment/src/lib.rs differ"
    );

    // And that source builds to a component the sandbox accepts.
    let module = common::sandbox()
        .load(&common::guest_bytes("validate_payment"))
        .unwrap();
    assert!(module.imports().contains(&"weft:task/kv@0.1.0".to_string()));
}
