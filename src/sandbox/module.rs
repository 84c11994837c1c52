//! Loading a task component: check what it is, compile it once, and keep
//! it ready to instantiate.

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

use super::error::LoadError;
use super::host::{HostState, TaskPre};
use crate::digest::Digest;

/// A validated, compiled task component, ready to run many attempts.
pub struct Module {
    digest: Digest,
    imports: Vec<String>,
    pub(crate) pre: TaskPre<HostState>,
}

impl Module {
    /// The SHA-256 of the component's bytes: its identity.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The interfaces it imports, e.g. `weft:task/kv@0.1.0`.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("digest", &self.digest)
            .field("imports", &self.imports)
            .finish_non_exhaustive()
    }
}

/// WASI 0.2 packages the host links, with nothing granted.
const WASI_PACKAGES: [&str; 6] = [
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
];

/// Whether the host provides an imported interface, judged by its name.
/// Type mismatches within a provided interface are caught by the linker.
fn provided(import: &str) -> bool {
    let Some((path, version)) = import.rsplit_once('@') else {
        return false;
    };
    let Some((package, interface)) = path.split_once('/') else {
        return false;
    };
    match package {
        "weft:task" => version.starts_with("0.1."),
        // The client side of wasi:http only: a task makes requests, it is
        // never a server.
        "wasi:http" => version.starts_with("0.2.") && matches!(interface, "types" | "outgoing-handler"),
        _ if WASI_PACKAGES.contains(&package) => version.starts_with("0.2."),
        _ => false,
    }
}

/// Checks that `bytes` are a component and compiles them.
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(LoadError::CoreModule);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(LoadError::NotWasm);
    }
    Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))
}

/// Checks a compiled component (of `size` bytes) as a weft task: what it
/// imports and exports, and that the host can link it.
pub(crate) fn prepare(
    engine: &Engine,
    linker: &Linker<HostState>,
    component: Component,
    digest: Digest,
) -> Result<Module, LoadError> {
    let ty = component.component_type();

    let imports: Vec<String> = ty.imports(engine).map(|(name, _)| name.to_string()).collect();
    let unsupported: Vec<String> = imports.iter().filter(|name| !provided(name)).cloned().collect();
    if !unsupported.is_empty() {
        return Err(LoadError::UnsupportedImports(unsupported));
    }
    let exports_run = ty
        .exports(engine)
        .any(|(name, item)| name == "run" && matches!(item.ty, ComponentItem::ComponentFunc(_)));
    if !exports_run {
        let exports = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
        return Err(LoadError::NotATask { exports });
    }

    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
    let pre = TaskPre::new(instance_pre).map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
    Ok(Module { digest, imports, pre })
}

#[cfg(test)]
mod tests {
    use super::provided;

    #[test]
    fn provides_weft_and_wasi_p2_only() {
        for name in [
            "weft:task/kv@0.1.0",
            "weft:task/types@0.1.3",
            "wasi:cli/environment@0.2.0",
            "wasi:io/streams@0.2.6",
            "wasi:sockets/tcp@0.2.3",
            "wasi:http/types@0.2.4",
            "wasi:http/outgoing-handler@0.2.0",
        ] {
            assert!(provided(name), "{name}");
        }
        for name in [
            "acme:rogue/net@1.0.0",
            "weft:task/kv@0.2.0",
            "wasi:http/incoming-handler@0.2.0",
            "wasi:http/types@0.3.0",
            "wasi:cli/environment@0.3.0",
            "wasi:cli/environment",
            "run",
        ] {
            assert!(!provided(name), "{name}");
        }
    }
}
