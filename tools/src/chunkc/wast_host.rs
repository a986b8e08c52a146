//! Running atoll's generated code on the host: executable memory with `mmap`/`mprotect` (W^X:
//! written while read-write, then switched to read-execute, never both) and a helper that
//! compiles and instantiates a module with heap-backed linear memory.

use std::sync::Arc;

use atoll_pae::runtime::{CodeMemory, Extern, Instance, InstantiateError, SigRegistry, VecMemory};
use atoll_pae::{CompileError, CompiledModule, Options};

/// A private anonymous mapping holding one module's code, read-execute.
#[derive(Debug)]
pub struct HostCode {
    ptr: *mut libc::c_void,
    len: usize,
}

impl HostCode {
    /// Maps `code` executable.
    pub fn new(code: &[u8]) -> std::io::Result<Self> {
        let len = code.len().max(1).next_multiple_of(4096);
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the mapping is `len >= code.len()` writable bytes that nothing else uses.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), ptr.cast::<u8>(), code.len()) };
        // SAFETY: re-protects the mapping created above.
        if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            let err = std::io::Error::last_os_error();
            // SAFETY: unmaps the mapping created above.
            unsafe { libc::munmap(ptr, len) };
            return Err(err);
        }
        Ok(Self { ptr, len })
    }
}

impl Drop for HostCode {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` and is unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

// SAFETY: `base` is the read-execute copy of the code passed to `new`, alive until drop.
unsafe impl CodeMemory for HostCode {
    fn base(&self) -> usize {
        self.ptr as usize
    }
}

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
    let code = HostCode::new(&module.code).map_err(HostError::Map)?;
    Instance::new(
        module,
        Box::new(code),
        Box::<VecMemory>::default(),
        imports,
        sigs,
    )
    .map_err(HostError::Instantiate)
}
