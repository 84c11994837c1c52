//! `weft bench`: runs the benchmark suite and prints (and optionally
//! writes) its figures.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::EXIT_OK;
use crate::bench::{self, Options, Section};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Smaller loads, every figure in under a minute: a first look, noisier
    /// than a full run.
    #[arg(long)]
    quick: bool,

    /// Also write the figures to FILE as one JSON object.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The directory holding the example tasks' components (`hello.wasm`,
    /// `misbehave.wasm`).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "example-tasks/target/wasm32-wasip2/release"
    )]
    modules: PathBuf,

    /// Where the bench's stores go (in a temporary directory inside it):
    /// put it on the disk you want measured.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,

    /// Run only these sections, in this order.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SECTION")]
    only: Vec<Section>,
}

pub(crate) async fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    for module in ["hello", "misbehave"] {
        let path = args.modules.join(format!("{module}.wasm"));
        anyhow::ensure!(
            path.exists(),
            "{} is missing: build the example tasks first (cargo build --release --target \
             wasm32-wasip2 --manifest-path example-tasks/Cargo.toml), or pass --modules DIR",
            path.display()
        );
    }
    let options = Options {
        quick: args.quick,
        modules: args.modules,
        dir: args.dir,
        weft: std::env::current_exe().context("cannot find the weft binary to run as the server")?,
        sections: if args.only.is_empty() {
            Section::ALL.to_vec()
        } else {
            args.only
        },
    };
    let report = bench::run(&options).await?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("\nwrote {}", path.display());
    }
    Ok(EXIT_OK)
}
