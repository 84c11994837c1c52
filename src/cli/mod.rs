//! The `weft` command line: argument parsing and dispatch. Each command
//! group lives in its own file; `main.rs` only calls [`main`].

mod admin;
mod approvals;
mod audit;
mod bench;
mod client;
mod hook;
mod https;
mod key;
mod nodes;
mod remote;
mod run;
mod scaffold;
mod schedule;
mod secret;
mod serve;
mod signal;
mod store;
mod task;
mod tenant;
mod workflow;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weft runs workflows whose every step is a sandboxed WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "weft", version, propagate_version = true)]
pub struct Cli {
    /// What to log on stderr, as a tracing filter: `warn`, `info`,
    /// `weft=debug`, ...
    #[arg(long, global = true, env = "WEFT_LOG", default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with task components: try one locally before uploading it.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Run a workflow end to end on an embedded store, showing each step as
    /// it goes, and print its output.
    ///
    /// Exit status: 0 when the run succeeded, 1 when it failed, 2 when the
    /// workflow, a module or the input is invalid.
    #[command(after_help = "Example:\n  \
        weft run example-tasks/workflows/order.yaml \\\n    \
        --modules example-tasks/target/wasm32-wasip2/release \\\n    \
        --input @example-tasks/inputs/order.json")]
    Run(run::RunArgs),
    /// Recover the unfinished runs of a store (after a crash or a kill)
    /// and wait for them to finish.
    #[command(after_help = "Example:\n  weft recover --data ./store")]
    Recover(run::RecoverArgs),
    /// Show the runs of a store, or one run with its steps and attempts.
    Show(run::ShowArgs),
    /// Check workflow documents and print every problem found, with its
    /// line and column.
    ///
    /// Exit status: 0 when every document is valid, 1 when any has a
    /// problem, 2 when a file cannot be read.
    Validate(workflow::ValidateArgs),
    /// Print the JSON Schema of workflow documents (for editors and
    /// linters).
    Schema,
    /// Run the HTTP API: tenants, modules, workflows and runs, kept in a
    /// data directory. Unfinished runs are resumed on start; SIGTERM or
    /// Ctrl-C stops taking work, lets running attempts finish, and exits;
    /// SIGHUP reads the TLS certificate and key again.
    #[command(after_help = "Examples:\n  \
        weft serve --data ./weft-data --listen 127.0.0.1:8080\n  \
        weft serve --data ./weft-data --listen 0.0.0.0:8443 \\\n    \
        --tls-cert /etc/weft/cert.pem --tls-key /etc/weft/key.pem\n\n\
        The admin token is WEFT_ADMIN_TOKEN, or the one in DIR/admin.token\n\
        (generated on first start, readable by you only).")]
    Serve(serve::ServeArgs),
    /// Copy a store into another, e.g. from the embedded store to
    /// PostgreSQL or back, and verify the copy.
    ///
    /// Everything is copied, table by table, a page at a time (memory
    /// stays flat however many runs there are); then both stores are read
    /// again and their per-table counts and content checksums compared and
    /// printed. The source must not be in use by a running server.
    ///
    /// Exit status: 0 when the target holds what the source holds, 1 when
    /// they differ or a source record could not be read.
    #[command(after_help = "Example:
          weft migrate --from redb:./weft-data --to postgres://weft@db.internal/weft")]
    Migrate(store::MigrateArgs),
    /// Read a store and report every integrity problem, changing nothing:
    /// records that do not decode, references to missing tenants,
    /// modules, workflows or runs, units and histories that disagree with
    /// their run, histories with gaps.
    ///
    /// Exit status: 0 when the store is clean, 1 when a problem was found.
    #[command(after_help = "Example:
  weft check --store redb:./weft-data")]
    Check(store::CheckArgs),
    /// Upload, list and delete task modules on a server.
    Module(remote::ModuleArgs),
    /// Push, list and show workflows on a server.
    Workflow(remote::WorkflowArgs),
    /// Start a run of a workflow on a server (with --wait, follow it live).
    ///
    /// Exit status with --wait: 0 when the run succeeded, 1 when it did not.
    #[command(after_help = "Example:\n  \
        weft start order --input @example-tasks/inputs/order.json --wait")]
    Start(remote::StartArgs),
    /// List runs on a server, newest first.
    Runs(remote::RunsArgs),
    /// Show a run with its steps, attempts, fuel and timings.
    ///
    /// Exit status: 0 when the run succeeded or is running, 1 otherwise.
    Status(remote::RunArg),
    /// Show the logs of a step's attempts.
    Logs(remote::LogsArgs),
    /// Cancel a running run.
    Cancel(remote::RunArg),
    /// Pause a running run on a server: no new attempt starts until it is
    /// resumed; running attempts finish, sleeps and signal waits go on.
    Pause(remote::RunArg),
    /// Resume a paused run on a server: its held steps start.
    Resume(remote::RunArg),
    /// Retry a failed or cancelled run from its failed steps; steps that
    /// succeeded are kept.
    Retry(remote::RetryArgs),
    /// Run an ended run again from a step that succeeded: that step and
    /// everything downstream of it run again (with whatever failed or was
    /// cancelled), reading the recorded outputs of the steps upstream. The
    /// history keeps the earlier attempts.
    #[command(after_help = "Example:\n  weft reset 42 --from reserve_inventory --wait")]
    Reset(remote::ResetArgs),
    /// Send a signal to a run: the step waiting for it (`wait_for: {signal:
    /// NAME}`) ends with the payload as its output. A signal sent before
    /// its step waits is kept for it.
    #[command(after_help = "Example:\n  \
        weft signal 42 payment_confirmed --data '{\"amount\": 1999}' --id psp-evt-8812")]
    Signal(signal::SignalArgs),
    /// List the approval steps waiting for a decision, across the tenant's
    /// running runs, with who may decide each.
    Approvals(approvals::ListArgs),
    /// Approve an approval step: it succeeds, with the decision as its
    /// output. `--as` names you (or set WEFT_USER).
    #[command(after_help = "Example:\n  weft approve 42 manager_ok --as ada@example.com -m 'refund is fine'")]
    Approve(approvals::DecideArgs),
    /// Reject an approval step: it fails with code `rejected`, so
    /// `on_failure` and compensation apply.
    #[command(after_help = "Example:\n  weft reject 42 manager_ok --as ada@example.com -m 'over the limit'")]
    Reject(approvals::DecideArgs),
    /// Manage tenants and their API keys (needs the admin token).
    Tenant(tenant::TenantArgs),
    /// Work on a store itself, with its servers stopped: `rotate-key`
    /// replaces the master key that seals secrets and tenants' data keys.
    Admin(admin::AdminArgs),
    /// Set, list and delete the tenant's secrets on a server: values that
    /// steps receive by name, sealed at rest and never shown again.
    #[command(after_help = "Example:\n  \
        weft secret set stripe_key < stripe.key\n  \
        weft secret list")]
    Secret(secret::SecretArgs),
    /// Set, list, show, pause, resume and delete the tenant's schedules on
    /// a server: cron expressions in a time zone that start runs.
    #[command(after_help = "Example:\n  \
        weft schedule set nightly --cron '0 2 * * *' --tz Europe/Paris --workflow report\n  \
        weft schedule list")]
    Schedule(schedule::ScheduleArgs),
    /// Set, list and delete the tenant's inbound hooks: signed requests
    /// from other systems that start runs.
    #[command(after_help = "Example:\n  \
        weft hook set stripe --workflow refund --secret stripe_hook --input \"{'order': body.data.id}\"\n  \
        weft hook list")]
    Hook(hook::HookArgs),
    /// Make, list and revoke your tenant's API keys, each with a role
    /// (needs a key whose role is admin).
    #[command(after_help = "Example:\n  weft key create --role operator\n  weft key list")]
    Key(key::KeyArgs),
    /// The audit trail: who changed what, when, from where and how it
    /// ended, newest first (`--server` for the admin token's requests).
    #[command(after_help = "Example:\n  weft audit --limit 20")]
    Audit(audit::AuditArgs),
    /// Show the tenant, key and role your token acts as.
    Whoami {
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Measure throughput, latency, memory and recovery on this machine,
    /// each figure next to a baseline measured in the same run.
    #[command(after_help = "Example (from a checkout; builds the example tasks first):\n  \
        cargo build --release --target wasm32-wasip2 --manifest-path example-tasks/Cargo.toml\n  \
        cargo run --release -- bench --json bench.json\n\n\
        docs/performance.md explains each figure, its baseline and its target.")]
    Bench(bench::BenchArgs),
    /// Show the nodes serving a store: on PostgreSQL every node of the
    /// cluster (alive, draining, or dead or gone within the hour) with its
    /// address, load (running attempts / capacity), claims per second and
    /// last heartbeat; on the embedded store the one server.
    #[command(after_help = "Example:\n  WEFT_ADMIN_TOKEN=... weft nodes --url http://weft.internal:8080")]
    Nodes(nodes::NodesArgs),
}

/// Reads `@FILE` as the file's text; anything else is the text itself.
pub(crate) fn read_arg(arg: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(arg.to_string()),
    }
}

/// Milliseconds since the epoch as an RFC 3339 time to the second (UTC).
pub(crate) fn format_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Exit status: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit status: the command ran, but what it ran did not succeed (e.g. the
/// attempt ended in anything but `ok`).
pub const EXIT_FAILED: u8 = 1;
/// Exit status: the command could not run (bad arguments, unreadable or
/// invalid files).
pub const EXIT_USAGE: u8 = 2;

/// Parses the arguments, runs the command, and returns its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Task(command) => task::run(command).await,
            Command::Run(args) => run::run(args).await,
            Command::Recover(args) => run::recover(args).await,
            Command::Show(args) => run::show(args).await,
            Command::Validate(args) => workflow::validate(args),
            Command::Schema => workflow::schema(),
            Command::Serve(args) => serve::serve(args).await,
            Command::Migrate(args) => store::migrate(args).await,
            Command::Check(args) => store::check(args).await,
            Command::Module(args) => remote::module(args).await,
            Command::Workflow(args) => remote::workflow(args).await,
            Command::Start(args) => remote::start(args).await,
            Command::Runs(args) => remote::runs(args).await,
            Command::Status(args) => remote::status(args).await,
            Command::Logs(args) => remote::logs(args).await,
            Command::Cancel(args) => remote::cancel(args).await,
            Command::Pause(args) => remote::set_paused(args, true).await,
            Command::Resume(args) => remote::set_paused(args, false).await,
            Command::Retry(args) => remote::retry(args).await,
            Command::Approvals(args) => approvals::list(args).await,
            Command::Approve(args) => approvals::decide(args, true).await,
            Command::Reject(args) => approvals::decide(args, false).await,
            Command::Reset(args) => remote::reset(args).await,
            Command::Signal(args) => signal::signal(args).await,
            Command::Tenant(args) => tenant::tenant(args).await,
            Command::Admin(args) => admin::admin(args).await,
            Command::Secret(args) => secret::secret(args).await,
            Command::Schedule(args) => schedule::schedule(args).await,
            Command::Hook(args) => hook::hook(args).await,
            Command::Key(args) => key::key(args).await,
            Command::Audit(args) => audit::audit(args).await,
            Command::Whoami { remote } => key::whoami(remote).await,
            Command::Bench(args) => bench::bench(args).await,
            Command::Nodes(args) => nodes::nodes(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: ignoring --log {filter:?}: {e}");
        tracing_subscriber::EnvFilter::new("warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
