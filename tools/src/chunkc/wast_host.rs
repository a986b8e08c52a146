//! Running atoll's generated code on the host: executable memory with `mmap`/`mprotect` (W^X:
//! written while read-write, then switched to read-execute, never both) and a helper that
//! compiles and instantiates a module with heap-backed linear memory.

use std::sync::Arc;

use atoll_pae::runtime::{
    Extern, Instance, InstantiateError, LinearMemory, SigRegistry, VecMemory,
};
use atoll_pae::{CompileError, CompiledModule, Options};

pub use super::host_code::{HostCode, SharedHostCode, lazily_assembled};

/// Why a module could not be set up on the host.
#[derive(Debug)]
pub enum HostError {
    /// Compilation failed.
    Compile(CompileError),
    /// Mapping code failed.
    Map(std::io::Error),
    /// Instantiation failed.
    Instantiate(InstantiateError),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Compile(e) => write!(f, "{e}"),
            Self::Map(e) => write!(f, "mapping code: {e}"),
            Self::Instantiate(e) => write!(f, "{e}"),
        }
    }
}

/// Linear memory for code compiled with `options`: a guard-page reservation when the code
/// has no bounds checks (`Options::guard_pages`), else heap memory.
pub fn memory_for(options: &Options) -> std::io::Result<Box<dyn LinearMemory>> {
    Ok(if options.guard_pages {
        Box::new(super::guard_host::GuardMemory::new()?)
    } else {
        Box::<VecMemory>::default()
    })
}

/// Compiles `bytes` with `options`.
pub fn compile(bytes: &[u8], options: &Options) -> Result<Arc<CompiledModule>, HostError> {
    atoll_pae::compile(bytes, options)
        .map(Arc::new)
        .map_err(HostError::Compile)
}

/// Instantiates a compiled module with imports in import order.
pub fn instantiate(
    module: Arc<CompiledModule>,
    imports: &[Extern],
    sigs: &mut SigRegistry,
) -> Result<Box<Instance>, HostError> {
    let code = HostCode::for_module(&module).map_err(HostError::Map)?;
    let memory = memory_for(&module.options).map_err(HostError::Map)?;
    Instance::new(module, Box::new(code), memory, imports, sigs).map_err(HostError::Instantiate)
}
