//! A plain WASI command (`wasi:cli/run`): a valid component, but not a
//! weft task, so loading it must fail with a message saying what it exports.

fn main() {
    println!("I am a command, not a task");
}
