//! `weft task new`: a task project to start from, in Rust, Python or
//! JavaScript, that builds and passes `weft task run` as generated. The
//! templates live beside each SDK (`guest-sdk/template/`,
//! `guest-sdk/python/template/`, `guest-sdk/js/template/`) and are
//! compiled into the binary.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

/// The languages a task can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Lang {
    /// Rust, with `weft-sdk` (guest-sdk/).
    Rust,
    /// Python, with `weft_sdk` built by componentize-py.
    Python,
    /// JavaScript, with `weft-sdk` built by componentize-js.
    Js,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The task's name: lowercase letters, digits and `_`, starting with a
    /// letter (it names the component, the module and the function).
    name: String,

    /// The language to write it in.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,

    /// Where to make the project [default: ./NAME]. It must not exist or
    /// be empty.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// The weft source's `guest-sdk/` directory, which the project's build
    /// uses [default: the one this weft was built from].
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

/// One file of a template: its path in the project and its text, with
/// `{{name}}` and `{{sdk}}` to fill in.
type Template = &'static [(&'static str, &'static str)];

const RUST: Template = &[
    ("Cargo.toml", include_str!("../../guest-sdk/template/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../../guest-sdk/template/src/lib.rs")),
    ("README.md", include_str!("../../guest-sdk/template/README.md")),
];

const PYTHON: Template = &[
    (
        "{{name}}.py",
        include_str!("../../guest-sdk/python/template/{{name}}.py"),
    ),
    ("README.md", include_str!("../../guest-sdk/python/template/README.md")),
];

const JS: Template = &[
    ("task.js", include_str!("../../guest-sdk/js/template/task.js")),
    ("package.json", include_str!("../../guest-sdk/js/template/package.json")),
    ("README.md", include_str!("../../guest-sdk/js/template/README.md")),
];

/// What to do after making a project of each language: the SDK's own
/// build command, with its path filled in.
fn next_steps(lang: Lang, dir: &Path, name: &str, sdk: &Path) -> String {
    let (dir, sdk) = (dir.display(), sdk.display());
    let try_it = format!("weft task run {name}.wasm --input '{{\"name\": \"Ada\"}}'");
    match lang {
        Lang::Rust => format!(
            "  cd {dir}\n  cargo build --release --target wasm32-wasip2\n  \
             weft task run target/wasm32-wasip2/release/{name}.wasm --input '{{\"name\": \"Ada\"}}'"
        ),
        Lang::Python => format!("  cd {dir}\n  {sdk}/build.sh {name}.py {name}.wasm\n  {try_it}"),
        Lang::Js => format!(
            "  cd {dir}\n  (cd {sdk} && npm ci)   # once: the SDK's build tools\n  \
             node {sdk}/build.mjs task.js {name}.wasm\n  {try_it}"
        ),
    }
}

fn template(lang: Lang) -> Template {
    match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    }
}

/// Makes the project; prints where, and what to run next.
pub(crate) fn new(args: NewArgs) -> anyhow::Result<u8> {
    check_name(&args.name)?;
    let files = template(args.lang);
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && dir
            .read_dir()
            .with_context(|| format!("{} cannot be read", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let sdk = sdk_dir(args.lang, args.sdk)?;
    for (path, text) in files {
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{sdk}}", &sdk.display().to_string());
        let path = dir.join(path.replace("{{name}}", &args.name));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{} cannot be made", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("{} cannot be written", path.display()))?;
    }
    let language = match args.lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
    };
    println!(
        "made a {language} task `{}` in {}; next:\n{}",
        args.name,
        dir.display(),
        next_steps(args.lang, &dir, &args.name, &sdk)
    );
    Ok(super::EXIT_OK)
}

/// A task name every language takes as an identifier.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok || name.len() > 64 || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!(
            "{name:?} is not a task name: use 1 to 64 lowercase letters, digits and `_`, starting with a letter \
             (it names the component, the module and the function)"
        );
    }
    Ok(())
}

/// The SDK directory the project builds with: given, or the one beside
/// the source this binary was built from.
fn sdk_dir(lang: Lang, given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let sub = match lang {
        Lang::Rust => "",
        Lang::Python => "python",
        Lang::Js => "js",
    };
    let dir = match given {
        Some(dir) => dir,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-sdk").join(sub),
    };
    let marker = match lang {
        Lang::Rust => "Cargo.toml",
        Lang::Python => "pyproject.toml",
        Lang::Js => "package.json",
    };
    if !dir.join(marker).is_file() {
        bail!(
            "{} is not weft's guest SDK (no {marker}): give --sdk with the path of guest-sdk/{sub} in weft's source",
            dir.display()
        );
    }
    dir.canonicalize()
        .with_context(|| format!("{} cannot be resolved", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_identifiers_in_every_language() {
        for good in ["hello", "send_confirmation", "a1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Hello", "1task", "send-confirmation", "a b", "ü", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
