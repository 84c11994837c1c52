//! `weft migrate` and `weft check`: moving a store to another backend, and
//! reading one for integrity problems. Both refuse a store a running
//! server holds, and show progress as they read.

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{EXIT_FAILED, EXIT_OK};
use crate::store::check::check as check_store;
use crate::store::transfer::{copy, is_empty, scan};
use crate::store::{self, StoreLocation, Table, Tally};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The store to copy: redb:DIR or postgres://user@host:port/database.
    /// It must not be in use by a running server; it is not changed.
    #[arg(long, value_name = "STORE")]
    from: String,

    /// The store to copy into, created if missing: redb:DIR or
    /// postgres://...
    #[arg(long, value_name = "STORE")]
    to: String,

    /// Copy into a target that holds records already (records with the
    /// same key are replaced). Without it, a non-empty target is refused.
    #[arg(long)]
    into_non_empty: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The store to check: redb:DIR or postgres://user@host:port/database.
    /// It is read, never changed, and must not be in use by a server.
    #[arg(long, env = "WEFT_STORE", value_name = "STORE")]
    store: String,
}

fn location(text: &str, flag: &str) -> anyhow::Result<StoreLocation> {
    text.parse().with_context(|| format!("{flag} {text:?}"))
}

/// A spinner that names the table and counts its records.
fn progress(verb: &'static str) -> (ProgressBar, impl FnMut(Table, u64)) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let shown = bar.clone();
    (bar, move |table: Table, n: u64| {
        shown.set_message(format!("{verb} {}: {n} records", table.name()));
    })
}

pub(crate) async fn migrate(args: MigrateArgs) -> anyhow::Result<u8> {
    let from_location = location(&args.from, "--from")?;
    let to_location = location(&args.to, "--to")?;
    if from_location.to_string() == to_location.to_string() {
        bail!("--from and --to name the same store");
    }
    let from = store::open_existing(&from_location)
        .await
        .with_context(|| format!("cannot open the source {from_location}"))?;
    let to = store::open_exclusive(&to_location, store::DEFAULT_CACHE)
        .await
        .with_context(|| format!("cannot open the target {to_location}"))?;
    if !args.into_non_empty && !is_empty(&*to).await? {
        bail!("{to_location} holds records already; pass --into-non-empty to copy into it anyway");
    }
    eprintln!("copying {from_location} into {to_location}");
    let (bar, shown) = progress("copying");
    let copied = copy(&*from, &*to, shown).await?;
    bar.finish_and_clear();
    let (bar, shown) = progress("verifying");
    let target = scan(&*to, |_| {}, shown).await?;
    bar.finish_and_clear();

    print_tallies(&copied.tally, &target.tally);
    for corrupt in &copied.corrupt {
        eprintln!(
            "not copied: {} {} does not decode: {}",
            corrupt.table.name(),
            corrupt.key,
            corrupt.error
        );
    }
    let same = copied.tally == target.tally;
    if same && copied.corrupt.is_empty() {
        println!("the target holds exactly what the source holds");
        Ok(EXIT_OK)
    } else if !same && args.into_non_empty {
        println!("the target holds more than the source (it was not empty); every source record was copied");
        Ok(if copied.corrupt.is_empty() {
            EXIT_OK
        } else {
            EXIT_FAILED
        })
    } else {
        println!("the stores differ: see above (run `weft check` on both)");
        Ok(EXIT_FAILED)
    }
}

fn print_tallies(source: &Tally, target: &Tally) {
    println!("{:<18} {:>12} {:>12}", "table", "source", "target");
    for table in Table::ALL {
        let (a, b) = (source.count(table), target.count(table));
        let mark = if a == b { "" } else { "  differs" };
        println!("{:<18} {a:>12} {b:>12}{mark}", table.name());
    }
    println!("{:<18} {:>12} {:>12}", "checksum", source.checksum(), target.checksum());
}

pub(crate) async fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let location = location(&args.store, "--store")?;
    let store = store::open_existing(&location)
        .await
        .with_context(|| format!("cannot open {location}"))?;
    let (bar, shown) = progress("reading");
    let report = check_store(&*store, shown).await?;
    bar.finish_and_clear();
    let total: u64 = report.counts.iter().map(|(_, n)| n).sum();
    for finding in &report.findings {
        println!("{finding}");
    }
    if report.findings.is_empty() {
        println!(
            "{location}: {total} records in {} tables, no problems",
            report.counts.len()
        );
        Ok(EXIT_OK)
    } else {
        println!("{location}: {} problem(s) in {total} records", report.findings.len());
        Ok(EXIT_FAILED)
    }
}
