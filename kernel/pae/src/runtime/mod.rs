//! Instance state for compiled modules, shared by the kernel and the host runner (pure Rust, no
//! OS). What differs per environment is behind two traits: [`CodeMemory`] (an executable copy
//! of [`CompiledModule::code`]) and [`LinearMemory`] (the bytes of linear memory;
//! [`VecMemory`] works everywhere).
//!
//! [`Instance::new`] sets up the VM context, globals, table, imports, applies element and data
//! segments and runs the start function; [`Instance::invoke`] checks the function index and
//! argument count, calls the function through the entry trampoline and returns its results or
//! an [`InvokeError`] (the [`TrapCode`] that ended it, or the bad call).

pub mod libcalls;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::module::{ConstInit, FuncType, ImportKind};
use crate::vmctx::{
    HostFunc, IMPORT_HOST, IMPORT_WASM, ImportEntry, TableEntry, TrapCode, VmContext,
};
use crate::{CompiledModule, LIBCALL_COUNT};

/// Bytes per wasm page.
pub const PAGE_BYTES: usize = 65536;

/// Executable memory holding a module's code.
///
/// # Safety
/// [`CodeMemory::base`] must return the address of an executable (and not writable) copy of
/// exactly the `CompiledModule::code` the instance is built from, valid as long as `self`.
/// [`CodeMemory::func_cell`], when it returns a cell, must keep in it the address of an
/// executable copy of function `index` (relocated so it behaves exactly as the original),
/// valid while any thread may call it.
pub unsafe trait CodeMemory {
    /// Address of the first code byte.
    fn base(&self) -> usize;

    /// Where the current address of function `index` is kept, when the embedder may move
    /// functions (the entry trampoline calls through the cell, reading it at the call; the
    /// embedder rewrites it only while no thread runs). `None` (the default): functions stay
    /// at `base() + CompiledModule::func_offsets[index]`.
    fn func_cell(&self, index: u32) -> Option<&AtomicUsize> {
        let _ = index;
        None
    }
}

/// Linear memory bytes. Implementations may move the bytes when growing.
pub trait LinearMemory {
    /// Start of the bytes.
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// Current size in bytes.
    fn size_bytes(&self) -> usize;
    /// Grows to `new_size_bytes` (new bytes zeroed); `false` if that is not possible.
    fn grow_to(&mut self, new_size_bytes: usize) -> bool;
}

/// Heap-backed linear memory.
#[derive(Debug, Default)]
pub struct VecMemory {
    bytes: Vec<u8>,
}

impl LinearMemory for VecMemory {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
    fn grow_to(&mut self, new_size_bytes: usize) -> bool {
        if self
            .bytes
            .try_reserve(new_size_bytes.saturating_sub(self.bytes.len()))
            .is_err()
        {
            return false;
        }
        self.bytes.resize(new_size_bytes, 0);
        true
    }
}

/// Interns signatures to the ids `call_indirect` compares (shared by linked instances).
#[derive(Debug, Default)]
pub struct SigRegistry {
    sigs: Vec<FuncType>,
}

impl SigRegistry {
    /// The id of `ty` (ids start at 1; 0 marks a null table entry).
    pub fn intern(&mut self, ty: &FuncType) -> u32 {
        if let Some(i) = self.sigs.iter().position(|s| s == ty) {
            return i as u32 + 1;
        }
        self.sigs.push(ty.clone());
        self.sigs.len() as u32
    }
}

/// A value provided for an import.
#[derive(Debug, Clone, Copy)]
pub enum Extern {
    /// A host function.
    Host {
        /// The function.
        func: HostFunc,
        /// Passed back to it.
        data: *mut c_void,
    },
    /// A function of another instance (see [`Instance::func_ref`]).
    Wasm {
        /// Code address.
        code: usize,
        /// That instance's VM context.
        vmctx: *mut VmContext,
    },
    /// A global's value (raw bits).
    Global(u64),
}

/// Why instantiation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstantiateError {
    /// Imports do not match the module.
    Link(String),
    /// Memory could not be allocated.
    OutOfMemory,
    /// A segment did not fit, or the start function trapped.
    Trap(TrapCode),
}

impl fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Link(m) => write!(f, "link error: {m}"),
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::Trap(t) => write!(f, "trap during instantiation: {t}"),
        }
    }
}

/// Why [`Instance::invoke`] returned no results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeError {
    /// The function ran and trapped.
    Trap(TrapCode),
    /// The module has no function with this index (nothing ran).
    UnknownFunction {
        /// The index asked for.
        index: u32,
        /// How many functions the module has (imports included).
        count: usize,
    },
    /// The number of arguments is not the function's parameter count (nothing ran).
    ArgCount {
        /// The function's index.
        index: u32,
        /// Its parameter count.
        expected: usize,
        /// The arguments given.
        got: usize,
    },
}

impl From<TrapCode> for InvokeError {
    fn from(code: TrapCode) -> Self {
        Self::Trap(code)
    }
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trap(t) => write!(f, "trap: {t}"),
            Self::UnknownFunction { index, count } => {
                write!(f, "no function {index} (the module has {count})")
            }
            Self::ArgCount {
                index,
                expected,
                got,
            } => write!(
                f,
                "function {index} takes {expected} argument(s), {got} given"
            ),
        }
    }
}

impl core::error::Error for InvokeError {}

type EntryFn = unsafe extern "C" fn(*mut VmContext, usize, *mut u64, u64) -> u32;

/// A running instance. Boxed, because the VM context points back at it.
pub struct Instance {
    pub(crate) vmctx: VmContext,
    module: Arc<CompiledModule>,
    _code: Box<dyn CodeMemory>,
    code_base: usize,
    memory: Box<dyn LinearMemory>,
    max_pages: u64,
    globals: Vec<u64>,
    table: Vec<TableEntry>,
    imports: Vec<ImportEntry>,
    sig_ids: Vec<u32>,
    libcalls: [usize; LIBCALL_COUNT],
    counters: Vec<u64>,
    elems: Vec<Vec<TableEntry>>,
    dropped_data: Vec<bool>,
    /// Stack bytes generated code may use below the caller of [`Instance::invoke`].
    pub stack_budget_bytes: usize,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("code_base", &self.code_base)
            .field("memory_bytes", &self.memory.size_bytes())
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// Builds an instance: `imports` in the module's import order.
    pub fn new(
        module: Arc<CompiledModule>,
        code: Box<dyn CodeMemory>,
        memory: Box<dyn LinearMemory>,
        imports: &[Extern],
        sigs: &mut SigRegistry,
    ) -> Result<Box<Instance>, InstantiateError> {
        let desc = &module.desc;
        if imports.len() != desc.imports.len() {
            return Err(InstantiateError::Link("wrong number of imports".into()));
        }
        let code_base = code.base();
        let mut globals = Vec::with_capacity(desc.globals.len());
        let mut import_entries = Vec::new();
        for (import, ext) in desc.imports.iter().zip(imports) {
            match (&import.kind, ext) {
                (ImportKind::Func(_), Extern::Host { func, data }) => {
                    import_entries.push(ImportEntry {
                        code: *func as usize,
                        data: *data,
                        kind: IMPORT_HOST,
                    })
                }
                (ImportKind::Func(_), Extern::Wasm { code, vmctx }) => {
                    import_entries.push(ImportEntry {
                        code: *code,
                        data: vmctx.cast(),
                        kind: IMPORT_WASM,
                    })
                }
                (ImportKind::Global(..), Extern::Global(v)) => globals.push(*v),
                (ImportKind::Memory | ImportKind::Table, _) => {
                    return Err(InstantiateError::Link(alloc::format!(
                        "importing a {} (`{}.{}`) is not supported",
                        if import.kind == ImportKind::Memory {
                            "memory"
                        } else {
                            "table"
                        },
                        import.module,
                        import.name
                    )));
                }
                _ => {
                    return Err(InstantiateError::Link(alloc::format!(
                        "import `{}.{}` has the wrong kind",
                        import.module,
                        import.name
                    )));
                }
            }
        }
        for g in &desc.globals[globals.len()..] {
            let v = match g.init {
                ConstInit::Value(v) => v,
                ConstInit::Global(i) => globals[i as usize],
                ConstInit::RefFunc(_) | ConstInit::RefNull => 0,
            };
            globals.push(v);
        }
        let sig_ids: Vec<u32> = desc.types.iter().map(|t| sigs.intern(t)).collect();
        let mut memory = memory;
        let (min_pages, max_pages) = desc
            .memory
            .map_or((0, 0), |m| (m.min, m.max.unwrap_or(65536).min(65536)));
        if !memory.grow_to(min_pages as usize * PAGE_BYTES) {
            return Err(InstantiateError::OutOfMemory);
        }
        let table_len = desc.table.map_or(0, |t| t.min as usize);
        let counters = vec![0u64; module.counter_slots.len()];
        let mut inst = Box::new(Instance {
            vmctx: VmContext {
                memory_base: core::ptr::null_mut(),
                memory_size_bytes: 0,
                globals: core::ptr::null_mut(),
                table_base: core::ptr::null_mut(),
                table_len: table_len as u64,
                imports: core::ptr::null(),
                sig_ids: core::ptr::null(),
                stack_limit: 0,
                entry_rsp: 0,
                trap_exit: (code_base + module.trap_exit_offset as usize) as u64,
                trap_code: 0,
                _pad: 0,
                libcalls: core::ptr::null(),
                instance: core::ptr::null_mut(),
                counters: core::ptr::null_mut(),
            },
            _code: code,
            code_base,
            memory,
            max_pages,
            globals,
            table: vec![TableEntry::default(); table_len],
            imports: import_entries,
            sig_ids,
            libcalls: libcalls::table(),
            counters,
            elems: Vec::new(),
            dropped_data: vec![false; desc.datas.len()],
            stack_budget_bytes: 512 * 1024,
            module: module.clone(),
        });
        inst.elems = desc
            .elems
            .iter()
            .map(|e| {
                if e.declared {
                    return Vec::new();
                }
                e.funcs
                    .iter()
                    .map(|f| f.map_or(TableEntry::default(), |f| inst.entry_for(f)))
                    .collect()
            })
            .collect();
        inst.refresh();
        // Active segments, in order; the first failure aborts (earlier writes stay).
        for (i, e) in desc.elems.iter().enumerate() {
            if let Some(offset) = e.offset {
                let at = inst.const_value(offset) as u32;
                let n = e.funcs.len() as u32;
                inst.table_init(i as u32, at, 0, n)
                    .map_err(InstantiateError::Trap)?;
                inst.drop_elem(i as u32);
            }
        }
        for (i, d) in desc.datas.iter().enumerate() {
            if let Some(offset) = d.offset {
                let at = inst.const_value(offset) as u32;
                inst.memory_init(i as u32, at, 0, d.bytes.len() as u32)
                    .map_err(|_| InstantiateError::Trap(TrapCode::MemoryOutOfBounds))?;
                inst.drop_data(i as u32);
            }
        }
        if let Some(start) = desc.start {
            // Validation guarantees a start function of type [] -> [].
            inst.call(start, &[]).map_err(InstantiateError::Trap)?;
        }
        Ok(inst)
    }

    fn const_value(&self, init: ConstInit) -> u64 {
        match init {
            ConstInit::Value(v) => v,
            ConstInit::Global(g) => self.globals[g as usize],
            ConstInit::RefFunc(_) | ConstInit::RefNull => 0,
        }
    }

    /// Where function `index` is now (its cell, when the code memory moves functions).
    fn func_addr(&self, index: u32) -> usize {
        match self._code.func_cell(index) {
            Some(cell) => cell.load(Ordering::Acquire),
            None => self.code_base + self.module.func_offsets[index as usize] as usize,
        }
    }

    fn entry_for(&self, func: u32) -> TableEntry {
        let ty = self.module.desc.funcs[func as usize];
        TableEntry {
            code: self.func_addr(func),
            sig_id: u64::from(self.sig_ids[ty as usize]),
        }
    }

    /// Every code address this instance holds by value, as a raw slot: each non-null table
    /// entry's, each passive element segment entry's, and each import bound to another
    /// instance's function. Generated code reads them only with the `call` that uses them
    /// (`call [entry]`), so a relocation engine that rewrites them while no thread of the
    /// instance is between instructions of a runtime helper re-targets every such call.
    ///
    /// # Safety
    ///
    /// `this` points to a live instance that no other thread is using while `f` runs (its
    /// threads are stopped, none inside a runtime helper that touches its tables), and `f`
    /// writes only code addresses (or nothing) through the slots.
    pub unsafe fn visit_code_pointers(this: *mut Instance, f: &mut dyn FnMut(*mut usize)) {
        // SAFETY: by the contract above, nothing else touches the instance while we look at it.
        let inst = unsafe { &mut *this };
        for e in inst.table.iter_mut().filter(|e| e.sig_id != 0) {
            f(&mut e.code);
        }
        for seg in &mut inst.elems {
            for e in seg.iter_mut().filter(|e| e.sig_id != 0) {
                f(&mut e.code);
            }
        }
        for i in inst.imports.iter_mut().filter(|i| i.kind == IMPORT_WASM) {
            f(&mut i.code);
        }
    }

    /// Re-points the VM context at this instance's (possibly moved) parts.
    fn refresh(&mut self) {
        let this: *mut Instance = self;
        self.vmctx.memory_base = self.memory.as_mut_ptr();
        self.vmctx.memory_size_bytes = self.memory.size_bytes() as u64;
        self.vmctx.globals = self.globals.as_mut_ptr();
        self.vmctx.table_base = self.table.as_mut_ptr();
        self.vmctx.table_len = self.table.len() as u64;
        self.vmctx.imports = self.imports.as_ptr();
        self.vmctx.sig_ids = self.sig_ids.as_ptr();
        self.vmctx.libcalls = self.libcalls.as_ptr();
        self.vmctx.counters = self.counters.as_mut_ptr();
        self.vmctx.instance = this.cast();
    }

    /// The compiled module.
    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.module
    }

    /// This instance's VM context (for linking another instance to its functions).
    pub fn vmctx_ptr(&mut self) -> *mut VmContext {
        &mut self.vmctx
    }

    /// An [`Extern`] for function `index`, to import it into another instance.
    pub fn func_ref(&mut self, index: u32) -> Extern {
        Extern::Wasm {
            code: self.func_addr(index),
            vmctx: self.vmctx_ptr(),
        }
    }

    /// Global `index` (raw bits).
    pub fn global(&self, index: u32) -> u64 {
        self.globals[index as usize]
    }

    /// The linear memory.
    pub fn memory(&mut self) -> &mut [u8] {
        let len = self.memory.size_bytes();
        let ptr = self.memory.as_mut_ptr();
        if len == 0 {
            return &mut [];
        }
        // SAFETY: the LinearMemory owns `len` initialized bytes at `ptr`, borrowed via self.
        unsafe { core::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Block execution counters (see `CompiledModule::counter_slots`).
    pub fn counters(&self) -> &[u64] {
        &self.counters
    }

    /// Calls function `index` with `args` (raw bits, i32/f32 zero-extended; exactly one per
    /// parameter) and returns its results, or why not: the trap that ended it, or a bad index or
    /// argument count (then nothing runs). Generated code runs on the current stack, using at
    /// most `stack_budget_bytes` below this call before trapping with `StackOverflow`.
    pub fn invoke(&mut self, index: u32, args: &[u64]) -> Result<Vec<u64>, InvokeError> {
        let desc = &self.module.desc;
        let count = desc.funcs.len();
        if index as usize >= count {
            return Err(InvokeError::UnknownFunction { index, count });
        }
        let expected = desc.func_type(index).params.len();
        if args.len() != expected {
            return Err(InvokeError::ArgCount {
                index,
                expected,
                got: args.len(),
            });
        }
        Ok(self.call(index, args)?)
    }

    /// [`Instance::invoke`] once `index` and `args` are known to fit.
    fn call(&mut self, index: u32, args: &[u64]) -> Result<Vec<u64>, TrapCode> {
        let ty = self.module.desc.func_type(index).clone();
        let mut slots = vec![0u64; ty.slots().max(1)];
        slots[..args.len()].copy_from_slice(args);
        let here = &slots as *const _ as usize;
        self.vmctx.stack_limit = here.saturating_sub(self.stack_budget_bytes) as u64;
        self.vmctx.trap_code = 0;
        self.refresh();
        let local = AtomicUsize::new(self.func_addr(index));
        let func_cell: *const AtomicUsize = self._code.func_cell(index).unwrap_or(&local);
        let entry = self.code_base + self.module.entry_offset as usize;
        // SAFETY: CodeMemory guarantees `code_base` maps this module's code, so `entry` is the
        // trampoline with the EntryFn signature, and that `func_cell` (the embedder's cell or
        // `local`, alive until the call returns) holds the address of function `index`; the VM context is fully initialized and
        // points at live parts of this instance; `slots` has room for params and results.
        let code = unsafe {
            let entry: EntryFn = core::mem::transmute::<usize, EntryFn>(entry);
            entry(
                &mut self.vmctx,
                func_cell as usize,
                slots.as_mut_ptr(),
                slots.len() as u64,
            )
        };
        if code != 0 {
            return Err(TrapCode::from_u32(code));
        }
        slots.truncate(ty.results.len());
        // Only the low 4 bytes of an i32/f32 slot are defined.
        for (slot, t) in slots.iter_mut().zip(&ty.results) {
            if !t.is_wide() {
                *slot &= u64::from(u32::MAX);
            }
        }
        Ok(slots)
    }

    pub(crate) fn grow_memory(&mut self, delta_pages: u32) -> Option<u32> {
        let old = (self.memory.size_bytes() / PAGE_BYTES) as u64;
        let new = old + u64::from(delta_pages);
        if self.module.desc.memory.is_none() || new > self.max_pages {
            return None;
        }
        if !self.memory.grow_to(new as usize * PAGE_BYTES) {
            return None;
        }
        self.refresh();
        Some(old as u32)
    }

    fn mem_range(&self, at: u32, n: u32) -> Result<core::ops::Range<usize>, TrapCode> {
        let end = u64::from(at) + u64::from(n);
        if end > self.memory.size_bytes() as u64 {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        Ok(at as usize..end as usize)
    }

    pub(crate) fn memory_fill(&mut self, d: u32, v: u8, n: u32) -> Result<(), TrapCode> {
        let r = self.mem_range(d, n)?;
        self.memory()[r].fill(v);
        Ok(())
    }

    pub(crate) fn memory_copy(&mut self, d: u32, s: u32, n: u32) -> Result<(), TrapCode> {
        let dst = self.mem_range(d, n)?;
        let src = self.mem_range(s, n)?;
        self.memory().copy_within(src, dst.start);
        Ok(())
    }

    pub(crate) fn memory_init(&mut self, seg: u32, d: u32, s: u32, n: u32) -> Result<(), TrapCode> {
        let module = self.module.clone();
        let data: &[u8] = if self.dropped_data[seg as usize] {
            &[]
        } else {
            &module.desc.datas[seg as usize].bytes
        };
        let src_end = u64::from(s) + u64::from(n);
        if src_end > data.len() as u64 {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        let dst = self.mem_range(d, n)?;
        self.memory()[dst].copy_from_slice(&data[s as usize..src_end as usize]);
        Ok(())
    }

    pub(crate) fn drop_data(&mut self, seg: u32) {
        self.dropped_data[seg as usize] = true;
    }

    pub(crate) fn table_init(&mut self, seg: u32, d: u32, s: u32, n: u32) -> Result<(), TrapCode> {
        let elems = &self.elems[seg as usize];
        let src_end = u64::from(s) + u64::from(n);
        let dst_end = u64::from(d) + u64::from(n);
        if src_end > elems.len() as u64 || dst_end > self.table.len() as u64 {
            return Err(TrapCode::TableAccessOutOfBounds);
        }
        let src: Vec<TableEntry> = elems[s as usize..src_end as usize].to_vec();
        self.table[d as usize..dst_end as usize].copy_from_slice(&src);
        Ok(())
    }

    pub(crate) fn table_copy(&mut self, d: u32, s: u32, n: u32) -> Result<(), TrapCode> {
        let len = self.table.len() as u64;
        if u64::from(s) + u64::from(n) > len || u64::from(d) + u64::from(n) > len {
            return Err(TrapCode::TableAccessOutOfBounds);
        }
        self.table
            .copy_within(s as usize..(s + n) as usize, d as usize);
        Ok(())
    }

    pub(crate) fn drop_elem(&mut self, seg: u32) {
        self.elems[seg as usize] = Vec::new();
    }
}
