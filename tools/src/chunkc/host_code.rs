//! Executable memory for generated code on the host (`mmap`/`mprotect`, W^X: written while
//! read-write, then switched to read-execute, never both), with a code cell per function and
//! lazy assembly (`atoll_pae::lazy`): a function compiled as a stub is assembled at its first
//! call into a mapping of its own and its cell re-pointed there, once, under a lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use atoll_pae::runtime::CodeMemory;
use atoll_pae::{CompileError, CompiledModule};

/// Functions assembled lazily by every [`HostCode`] of this process (for tests and figures).
static LAZILY_ASSEMBLED: AtomicU64 = AtomicU64::new(0);

/// How many functions every [`HostCode`] of this process assembled lazily so far.
pub fn lazily_assembled() -> u64 {
    LAZILY_ASSEMBLED.load(Ordering::Relaxed)
}

/// One private anonymous mapping, read-execute.
#[derive(Debug)]
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    /// Its slot in the guard-page handler's registry of generated code.
    guard_slot: Option<usize>,
}

impl Mapping {
    /// Maps `code` executable.
    fn new(code: &[u8]) -> std::io::Result<Self> {
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
        let guard_slot = super::guard_host::register_code(ptr as usize, len);
        Ok(Self {
            ptr,
            len,
            guard_slot,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Some(slot) = self.guard_slot {
            super::guard_host::unregister_code(slot);
        }
        // SAFETY: the mapping was created in `new` and is unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// What lazy assembly added.
#[derive(Debug, Default)]
struct Lazy {
    /// By function index: assembled lazily.
    done: Vec<bool>,
    /// The lazily assembled functions' mappings (kept as long as the code).
    maps: Vec<Mapping>,
    /// Their code bytes.
    bytes: usize,
}

/// A module's code, read-execute, with one cell per function holding its current address.
#[derive(Debug)]
pub struct HostCode {
    main: Mapping,
    code_len: usize,
    cells: Box<[AtomicUsize]>,
    lazy: Mutex<Lazy>,
}

// SAFETY: the mappings are owned and only unmapped on drop; the cells are atomics and the
// lazy state is behind a mutex, so sharing between threads is sound.
unsafe impl Send for HostCode {}
// SAFETY: as above.
unsafe impl Sync for HostCode {}

impl HostCode {
    /// Maps `code` executable (no function cells: functions stay where they are).
    pub fn new(code: &[u8]) -> std::io::Result<Self> {
        Ok(Self {
            main: Mapping::new(code)?,
            code_len: code.len(),
            cells: Box::new([]),
            lazy: Mutex::default(),
        })
    }

    /// Maps `module`'s code executable, with a cell per function (lazy stubs supported).
    pub fn for_module(module: &CompiledModule) -> std::io::Result<Self> {
        let main = Mapping::new(&module.code)?;
        let base = main.ptr as usize;
        Ok(Self {
            cells: module
                .func_offsets
                .iter()
                .map(|&o| AtomicUsize::new(base + o as usize))
                .collect(),
            main,
            code_len: module.code.len(),
            lazy: Mutex::new(Lazy {
                done: vec![false; module.func_offsets.len()],
                ..Lazy::default()
            }),
        })
    }

    /// Code bytes: the module's, plus every lazily assembled function's.
    pub fn code_bytes(&self) -> usize {
        self.code_len + self.lock().bytes
    }

    /// Lazy assemblies done so far (one per function, unless a bug assembles one twice).
    pub fn lazy_count(&self) -> usize {
        self.lock().maps.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lazy> {
        self.lazy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// SAFETY: `base` is the read-execute copy of the module's code (`for_module`/`new`), alive
// until drop. A cell starts at its function in that copy and is re-pointed only by
// `assemble_lazy`, to a read-execute mapping holding exactly `atoll_pae::lazy::assemble`'s code
// for that function, kept until drop.
unsafe impl CodeMemory for HostCode {
    fn base(&self) -> usize {
        self.main.ptr as usize
    }

    fn func_cell(&self, index: u32) -> Option<&AtomicUsize> {
        self.cells.get(index as usize)
    }

    fn assemble_lazy(&self, module: &CompiledModule, index: u32) -> Result<(), CompileError> {
        let cell = self
            .cells
            .get(index as usize)
            .ok_or_else(|| CompileError::Unsupported(format!("no function {index}")))?;
        let mut lazy = self.lock();
        if lazy.done[index as usize] {
            return Ok(());
        }
        let f = atoll_pae::lazy::assemble(module, index)?;
        let map = Mapping::new(&f.code)
            .map_err(|e| CompileError::Unsupported(format!("mapping code: {e}")))?;
        // The code is complete and executable before any thread can read its address.
        cell.store(map.ptr as usize, Ordering::Release);
        lazy.bytes += f.code.len();
        lazy.maps.push(map);
        lazy.done[index as usize] = true;
        LAZILY_ASSEMBLED.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A [`HostCode`] shared by several instances (of one module), e.g. on several threads.
#[derive(Debug, Clone)]
pub struct SharedHostCode(pub Arc<HostCode>);

// SAFETY: forwards to the shared `HostCode`, which the Arc keeps alive as long as any holder.
unsafe impl CodeMemory for SharedHostCode {
    fn base(&self) -> usize {
        self.0.base()
    }

    fn func_cell(&self, index: u32) -> Option<&AtomicUsize> {
        self.0.func_cell(index)
    }

    fn assemble_lazy(&self, module: &CompiledModule, index: u32) -> Result<(), CompileError> {
        self.0.assemble_lazy(module, index)
    }
}
