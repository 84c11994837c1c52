//! The sandbox's errors: why a component cannot be loaded, and why an
//! attempt could not be run at all (as opposed to running and failing,
//! which is an [`Outcome`](super::Outcome)).

/// Why a component was refused. None of these is worth retrying: the
/// same bytes are refused again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// The bytes are not WebAssembly at all.
    #[error(
        "not a WebAssembly file (it does not start with the `\\0asm` magic bytes); \
         a weft task is a component built for the wasm32-wasip2 target"
    )]
    NotWasm,
    /// A core module where a component was expected.
    #[error(
        "this is a core WebAssembly module, not a component: build the task for \
         the wasm32-wasip2 target (or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not validate or compile.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component imports interfaces the host does not provide.
    #[error(
        "the component imports {}, which weft does not provide; a task may import \
         weft:task/{{log,context,kv,secrets}}@0.1 and WASI 0.2 (wasi:cli, wasi:clocks, \
         wasi:filesystem, wasi:io, wasi:random, wasi:sockets, and wasi:http's \
         types and outgoing-handler)",
        quoted(.0)
    )]
    UnsupportedImports(Vec<String>),
    /// The component does not export the task world's `run`.
    #[error(
        "the component does not export `run: func(input: string) -> result<string, task-error>`, \
         so it is not a weft task (world weft:task/task@0.1.0); it exports {}",
        if .exports.is_empty() { "nothing".to_string() } else { quoted(.exports) }
    )]
    NotATask {
        /// What it exports instead.
        exports: Vec<String>,
    },
    /// The imports or exports exist but their types do not match.
    #[error("the component does not fit the weft:task@0.1.0 world: {0}")]
    Incompatible(String),
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Why an attempt could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The wasmtime engine could not be configured (e.g. the pooling
    /// allocator could not reserve its address space).
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// An attempt asked for more than the server allows.
    #[error("the {limit} limit {requested} is above this server's maximum of {maximum}")]
    LimitTooHigh {
        /// Which limit.
        limit: &'static str,
        /// What was asked for.
        requested: u64,
        /// The most allowed.
        maximum: u64,
    },
    /// The host failed to set up or tear down the attempt; not the task's
    /// doing.
    #[error("the sandbox failed to run the attempt: {0}")]
    Host(String),
}

impl SandboxError {
    /// Whether running the same attempt again could work.
    pub fn is_retryable(&self) -> bool {
        match self {
            SandboxError::Host(_) => true,
            SandboxError::Engine(_) | SandboxError::LimitTooHigh { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_unsupported_import() {
        let error = LoadError::UnsupportedImports(vec![
            "acme:rogue/net@1.0.0".into(),
            "wasi:http/incoming-handler@0.2.0".into(),
        ]);
        let text = error.to_string();
        assert!(
            text.starts_with("the component imports `acme:rogue/net@1.0.0`, `wasi:http/incoming-handler@0.2.0`, which"),
            "{text}"
        );
    }

    #[test]
    fn says_what_a_non_task_exports() {
        let error = LoadError::NotATask {
            exports: vec!["wasi:cli/run@0.2.6".into()],
        };
        assert!(error.to_string().ends_with("it exports `wasi:cli/run@0.2.6`"));
        let error = LoadError::NotATask { exports: vec![] };
        assert!(error.to_string().ends_with("it exports nothing"));
    }
}
