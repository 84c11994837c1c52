//! `weft bench`: runs the benchmark suite and prints (and optionally
//! writes) its figures.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::EXIT_OK;
use crate::bench::{self, Options, Section};
use crate::store::StoreLocation;

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

    /// The PostgreSQL server of the postgres, fairness and cluster sections,
    /// postgres://user@host:port/database: the bench creates databases of
    /// its own there (the role needs CREATEDB) and drops them at the end.
    /// The password comes from the URL, PGPASSWORD or the password file.
    /// [default: a throwaway server started from the PostgreSQL binaries on
    /// this machine]
    #[arg(long, value_name = "URL")]
    store: Option<String>,

    /// A Python task's component (built from example-tasks/python/hello)
    /// for the compiled section's Python figures; without it they are
    /// skipped.
    #[arg(long, value_name = "FILE")]
    python_module: Option<PathBuf>,
}

pub(crate) async fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    if let Some(url) = &args.store {
        let location: StoreLocation = url.parse()?;
        anyhow::ensure!(
            matches!(location, StoreLocation::Postgres(_)),
            "--store takes a postgres:// URL, not {location}: the redb figures are measured under --dir"
        );
    }
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
        store: args.store,
        python_module: args.python_module,
    };
    let report = bench::run(&options).await?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("\nwrote {}", path.display());
    }
    Ok(EXIT_OK)
}
