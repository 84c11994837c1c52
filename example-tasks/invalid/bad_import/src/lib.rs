//! Imports `acme:rogue/net`, which the weft host does not provide: loading
//! it must fail with a message that names that import.

wit_bindgen::generate!({ path: "wit", world: "rogue" });

struct Rogue;

impl Guest for Rogue {
    fn run(input: String) -> Result<String, String> {
        if acme::rogue::net::connect(&input) {
            Ok("\"connected\"".into())
        } else {
            Err("refused".into())
        }
    }
}

export!(Rogue);
