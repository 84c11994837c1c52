//! `weft admin`: operations on a store itself, run beside it with the
//! servers stopped, like `weft migrate`. Today: `rotate-key`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use super::EXIT_OK;
use super::run::ExistingStore;
use crate::secrets::keycheck::NEW_KEY_FILE;
use crate::secrets::rotate::rotate;
use crate::secrets::{KeyOrigin, MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey};
use crate::store::{self, StoreLocation};

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Replace the store's master key: re-seal every secret and every
    /// tenant's data key with a new key, and replace the key check, in one
    /// transaction. Sealed payloads are not rewritten (their data keys do
    /// not change), so it takes the same time however many runs there are.
    ///
    /// The current key is WEFT_MASTER_KEY, else DIR/master.key. The new
    /// key is the one in --new-key FILE (made there, readable by you
    /// only, if FILE does not exist). On an embedded store whose key is
    /// DIR/master.key, --new-key may be left out: a new key is made, and
    /// put in place of master.key once the store is sealed with it.
    ///
    /// Stop every server on the store first: it is opened alone (a
    /// running server refuses the rotation), and servers hold the old key.
    /// Start them again with the new key; the old one can then be dropped.
    #[command(after_help = "Examples:
  weft admin rotate-key --data ./weft-data
  WEFT_MASTER_KEY=$OLD weft admin rotate-key --store postgres://weft@db/weft --new-key new.key")]
    RotateKey(RotateKeyArgs),
}

#[derive(Debug, Args)]
struct RotateKeyArgs {
    #[command(flatten)]
    store: ExistingStore,

    /// A file holding the new key (64 hex digits or base64), made with a
    /// new random key if it does not exist.
    #[arg(long, value_name = "FILE")]
    new_key: Option<PathBuf>,
}

pub(crate) async fn admin(args: AdminArgs) -> anyhow::Result<u8> {
    match args.command {
        AdminCommand::RotateKey(args) => rotate_key(args).await,
    }
}

async fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<u8> {
    let location = args.store.location()?;
    let key_dir = match &location {
        StoreLocation::Redb(dir) => Some(dir.clone()),
        StoreLocation::Postgres(_) => None,
    };
    let old = match &key_dir {
        Some(dir) => MasterKey::find(dir)?,
        None => MasterKey::from_env()?,
    }
    .with_context(|| {
        format!(
            "no current master key: give it with {MASTER_KEY_ENV}{}",
            if key_dir.is_some() {
                format!(" (or in DIR/{MASTER_KEY_FILE})")
            } else {
                String::new()
            }
        )
    })?;
    // Where the new key goes once the store is sealed with it: in place
    // of the embedded store's key file, when that is where the old key is.
    let key_file = match (old.origin(), &key_dir) {
        (KeyOrigin::File(path), Some(dir)) if path == &dir.join(MASTER_KEY_FILE) => Some(path.clone()),
        _ => None,
    };
    let new_path = match (&args.new_key, &key_file) {
        (Some(path), _) => path.clone(),
        (None, Some(file)) => file.with_file_name(NEW_KEY_FILE),
        (None, None) => bail!(
            "give the new key with --new-key FILE: the current key comes from {MASTER_KEY_ENV}, where weft cannot \
             put a new one"
        ),
    };
    let store = store::open_existing(&location)
        .await
        .with_context(|| format!("cannot open {location} (stop every server on it first)"))?;
    let new = MasterKey::file_or_create(&new_path)?;
    let generated = matches!(new.origin(), KeyOrigin::Generated(_));
    if generated {
        eprintln!("made a new master key in {}", new_path.display());
    }

    eprintln!("re-sealing with key {} (was {}) ...", new.key_id(), old.key_id());
    let done = match rotate(&*store, &old, &new).await {
        Ok(done) => done,
        Err(e) => {
            // Nothing changed: a key made for this rotation seals nothing.
            if generated {
                let _ = std::fs::remove_file(&new_path);
            }
            return Err(e.into());
        }
    };
    drop(store);
    if let Some(file) = &key_file {
        put_in_place(&new_path, file)?;
    }
    if done.sealed_anything {
        println!(
            "{location}: {} secret(s) and {} tenant data key(s) re-sealed; the master key is now {} (was {})",
            done.secrets,
            done.data_keys,
            new.key_id(),
            old.key_id()
        );
    } else {
        println!(
            "{location}: nothing was sealed yet, so nothing was re-sealed; the master key is now {}",
            new.key_id()
        );
    }
    match &key_file {
        Some(file) => println!("the new key is in {}", file.display()),
        None => println!(
            "start every node with {MASTER_KEY_ENV} set to the new key (in {}); the old key opens nothing now",
            new_path.display()
        ),
    }
    Ok(EXIT_OK)
}

/// Makes `to` hold the key in `from`: renamed when `from` is the rotation's
/// own file beside it, else copied through a temporary file and renamed,
/// so `to` is never half written.
fn put_in_place(from: &Path, to: &Path) -> anyhow::Result<()> {
    if from == to {
        return Ok(());
    }
    if from != to.with_file_name(NEW_KEY_FILE) {
        let text = std::fs::read_to_string(from).with_context(|| format!("cannot read {}", from.display()))?;
        let temp = to.with_file_name(NEW_KEY_FILE);
        let _ = std::fs::remove_file(&temp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        use std::io::Write as _;
        options
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .with_context(|| format!("cannot write {}", temp.display()))?;
        return put_in_place(&temp, to);
    }
    std::fs::rename(from, to).with_context(|| {
        format!(
            "the store is sealed with the new key, but it could not be moved from {} to {}: move it yourself",
            from.display(),
            to.display()
        )
    })
}
