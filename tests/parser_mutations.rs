//! A stable-toolchain complement to the coverage-guided fuzz target in
//! `fuzz/`: tens of thousands of deterministic mutations of the seed
//! documents (flipped, inserted, deleted and duplicated bytes, YAML and
//! CEL punctuation, truncation) go through the parser, which must never
//! panic and must answer each within the time a document deserves.

use std::path::Path;
use std::time::{Duration, Instant};

use weft::spec::{SpecConfig, parse};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PUNCTUATION: &[&str] = &[
    ":",
    "-",
    "[",
    "]",
    "{",
    "}",
    "&a",
    "*a",
    "!!str",
    "|",
    ">",
    "#",
    "'",
    "\"",
    "\n",
    "  ",
    "${{",
    "}}",
    "steps.",
    "input.",
    "needs:",
    "for_each:",
    "when:",
    "<<: *a",
    "\t",
    "\u{feff}",
    "é",
    "0x",
    "1e999",
    "null",
    "~",
];

fn mutate(seed: &str, rng: &mut Rng) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            1 => {
                let piece = PUNCTUATION[rng.below(PUNCTUATION.len())].as_bytes();
                bytes.splice(at..at, piece.iter().copied());
            }
            2 if at < bytes.len() => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => bytes.truncate(at),
            4 if at < bytes.len() => {
                let end = (at + rng.below(80)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_documents_never_panic_the_parser() {
    let seeds_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parse");
    let seeds: Vec<String> = std::fs::read_dir(seeds_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(seeds.len() >= 15);
    let config = SpecConfig::default();
    let mut rng = Rng(0x5eed_f00d_cafe_d00d);
    let mut parsed = 0;
    for round in 0..25_000 {
        let seed = &seeds[round % seeds.len()];
        let text = mutate(seed, &mut rng);
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| parse(&text, &config).map(|_| ()).map_err(|e| e.to_string()));
        match result {
            Ok(outcome) => parsed += usize::from(outcome.is_ok()),
            Err(_) => panic!("the parser panicked on round {round}:\n{text}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round} took {:?}:\n{text}",
            started.elapsed()
        );
    }
    // Some mutations leave a valid document; most do not.
    assert!(parsed > 0 && parsed < 25_000, "{parsed} of 25,000 parsed");
}
