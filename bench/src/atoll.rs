//! atoll's code generator (`atoll-pae`) on the host: code mapped read-execute with
//! mmap/mprotect, heap-backed linear memory with explicit bounds checks, or (`atoll-guard`)
//! guard-page memory whose faults the host's `SIGSEGV` handler turns into the wasm trap
//! (`tools::chunkc::guard_host`, as `chunkc wast --guard` runs the spec scripts), the runtime's
//! entry trampoline.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use atoll_pae::runtime::{CodeMemory, Extern, Instance, LinearMemory, SigRegistry, VecMemory};
use atoll_pae::vmctx::VmContext;
use atoll_pae::{CompiledModule, Options};
use chunk_image::{Image, Value};
use tools::chunkc::guard_host::GuardMemory;
use tools::chunkc::host_code::HostCode;

use crate::engine::{Call, Engine, World, rdtsc};

/// One module's code in a private anonymous mapping, read-execute (never writable and
/// executable at the same time).
pub(crate) struct ExecMap {
    ptr: *mut c_void,
    len: usize,
}

impl ExecMap {
    pub(crate) fn new(code: &[u8]) -> Result<Self, String> {
        let len = code.len().max(1).next_multiple_of(4096);
        // SAFETY: a fresh anonymous private mapping; the result is checked below.
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
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let map = Self { ptr, len };
        // SAFETY: the mapping holds `len >= code.len()` writable bytes nobody else uses.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), ptr.cast::<u8>(), code.len()) };
        // SAFETY: changes the protection of the mapping created above.
        if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            return Err(format!("mprotect: {}", std::io::Error::last_os_error()));
        }
        Ok(map)
    }
}

impl Drop for ExecMap {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping created in `new`, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

// SAFETY: `base` is the read-execute copy of the module's code, valid until drop.
unsafe impl CodeMemory for ExecMap {
    fn base(&self) -> usize {
        self.ptr as usize
    }
}

/// `code` mapped read-execute: with guard pages, registered with the host's `SIGSEGV`
/// handler (a fault in it past a memory's end becomes the out-of-bounds trap).
pub(crate) fn map_code(code: &[u8], guard_pages: bool) -> Result<Box<dyn CodeMemory>, String> {
    Ok(if guard_pages {
        Box::new(HostCode::new(code).map_err(|e| format!("mapping code: {e}"))?)
    } else {
        Box::new(ExecMap::new(code)?)
    })
}

/// A fresh linear memory: in a guard-page reservation, or on the heap.
pub(crate) fn new_memory(guard_pages: bool) -> Result<Box<dyn LinearMemory>, String> {
    Ok(if guard_pages {
        Box::new(GuardMemory::new().map_err(|e| format!("reserving memory: {e}"))?)
    } else {
        Box::<VecMemory>::default()
    })
}

/// `atoll.print`: discarded.
unsafe extern "C" fn print(_: *mut VmContext, _: *mut c_void, _: *mut u64) -> u32 {
    0
}

/// `atoll.cycles`: the time-stamp counter.
unsafe extern "C" fn cycles(_: *mut VmContext, _: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: generated code passes one slot for the i64 result.
    unsafe { *slots = rdtsc() };
    0
}

/// `atoll.yield`: nothing to yield to.
unsafe extern "C" fn yield_now(_: *mut VmContext, _: *mut c_void, _: *mut u64) -> u32 {
    0
}

/// atoll's generator: `atoll` with the default optimizations (`Options::default()`),
/// `atoll-sched` the same plus instruction scheduling (`Options::schedule`),
/// `atoll-no-reg-locals` without locals in registers and `br_table` trees (the generator before
/// them, measured in the same run), `atoll-guard` the defaults plus guard pages (no bounds
/// checks; Wasmtime's default sandboxing on Linux), `atoll-guard-trees` that without jump
/// tables (`br_table` as compare trees), `atoll-guard-no-fuse` that without the instruction
/// selection over pinned locals and flags (`Options::fuse`), `atoll-guard-no-inline` that
/// without inlining (`Options::inline`), each measured in the same run.
#[derive(Debug)]
pub struct Atoll {
    pub(crate) name: &'static str,
    pub(crate) options: Options,
}

impl Atoll {
    pub(crate) fn new(name: &'static str) -> Self {
        let options = match name {
            "atoll-sched" => Options {
                schedule: true,
                ..Options::default()
            },
            "atoll-no-reg-locals" => Options {
                reg_locals: false,
                br_tree: false,
                ..Options::default()
            },
            "atoll-guard" => Options {
                guard_pages: true,
                ..Options::default()
            },
            "atoll-guard-trees" => Options {
                guard_pages: true,
                jump_table: false,
                ..Options::default()
            },
            "atoll-guard-no-fuse" => Options {
                guard_pages: true,
                fuse: false,
                ..Options::default()
            },
            "atoll-guard-no-inline" => Options {
                guard_pages: true,
                inline: false,
                ..Options::default()
            },
            _ => Options::default(),
        };
        Self { name, options }
    }
}

impl Engine for Atoll {
    fn name(&self) -> &'static str {
        self.name
    }

    fn compile(&self, wasm: &[u8]) -> Result<(), String> {
        let module = atoll_pae::compile(wasm, &self.options).map_err(|e| e.to_string())?;
        let code = map_code(&module.code, self.options.guard_pages)?;
        std::hint::black_box((&module, &code));
        Ok(())
    }

    fn command(&self, wasm: &[u8]) -> Result<Box<dyn crate::engine::Command>, String> {
        self.wasi_command(wasm)
    }

    fn load(&self, image: &Image<'_>, chunks: &[&str]) -> Result<Box<dyn World>, String> {
        let mut world = AtollWorld {
            instances: HashMap::new(),
            sigs: SigRegistry::default(),
        };
        for &name in chunks {
            let chunk = image.chunk(name).ok_or(format!("no chunk `{name}`"))?;
            let module = Arc::new(
                atoll_pae::compile(chunk.module, &self.options)
                    .map_err(|e| format!("{name}: {e}"))?,
            );
            world.instantiate(name, module)?;
        }
        Ok(Box::new(world))
    }
}

struct AtollWorld {
    /// Boxed: other instances hold pointers to their VM contexts.
    instances: HashMap<String, Box<Instance>>,
    sigs: SigRegistry,
}

impl AtollWorld {
    fn instantiate(&mut self, name: &str, module: Arc<CompiledModule>) -> Result<(), String> {
        let mut imports = Vec::new();
        for import in &module.desc.imports {
            let ext = if import.module == "atoll" {
                let func = match import.name.as_str() {
                    "print" => print,
                    "cycles" => cycles,
                    "yield" => yield_now,
                    other => return Err(format!("{name}: unknown kernel import `{other}`")),
                };
                Extern::Host {
                    func,
                    data: std::ptr::null_mut(),
                }
            } else {
                let provider = self
                    .instances
                    .get_mut(&import.module)
                    .ok_or(format!("{name}: provider `{}` not loaded", import.module))?;
                let index = provider
                    .module()
                    .desc
                    .export_func(&import.name)
                    .ok_or(format!(
                        "{name}: `{}.{}` missing",
                        import.module, import.name
                    ))?;
                provider.func_ref(index)
            };
            imports.push(ext);
        }
        let guard_pages = module.options.guard_pages;
        let code = map_code(&module.code, guard_pages)?;
        let inst = Instance::new(
            module,
            code,
            new_memory(guard_pages)?,
            &imports,
            &mut self.sigs,
        )
        .map_err(|e| format!("{name}: {e}"))?;
        self.instances.insert(name.to_string(), inst);
        Ok(())
    }
}

impl World for AtollWorld {
    fn prepare<'a>(
        &'a mut self,
        chunk: &str,
        export: &str,
        args: &[Value],
    ) -> Result<Call<'a>, String> {
        let inst = self
            .instances
            .get_mut(chunk)
            .ok_or(format!("chunk `{chunk}` not loaded"))?;
        let index = inst
            .module()
            .desc
            .export_func(export)
            .ok_or(format!("no export `{chunk}.{export}`"))?;
        let raw: Vec<u64> = args.iter().map(|v| v.to_bits()).collect();
        Ok(Box::new(move || {
            // `trap: <message>` for a trap, as the other engines report it.
            inst.invoke(index, &raw).map_err(|e| e.to_string())
        }))
    }
}
