//! Instance state for compiled modules, shared by the kernel and the host runner (pure Rust, no
//! OS). What differs per environment is behind two traits: [`CodeMemory`] (an executable copy
//! of [`CompiledModule::code`]) and [`LinearMemory`] (the bytes of linear memory;
//! [`VecMemory`] works everywhere).
//!
//! [`Instance::new`] sets up the VM context, globals, table, imports, applies element and data
//! segments and runs the start function; [`Instance::invoke`] checks the function index and
//! argument count, calls the function through the entry trampoline and returns its results or
//! an [`InvokeError`] (the [`TrapCode`] that ended it, or the bad call).

pub mod lanes;
pub mod libcalls;
mod shared;
mod state;

pub use shared::{Global, Memory, Table};
pub use state::{RefValue, StateError};

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::module::{ConstInit, FuncType, ImportDesc, ImportKind, Limits};
use crate::vmctx::{
    FuncRef, HostFunc, IMPORT_HOST, IMPORT_WASM, ImportEntry, MemoryDef, TableDef, TrapCode,
    VmContext,
};
use crate::{CompileError, CompiledModule, LIBCALL_COUNT};

/// Bytes per wasm page.
pub const PAGE_BYTES: usize = 65536;

/// Executable memory holding a module's code.
///
/// # Safety
/// [`CodeMemory::base`] must return the address of an executable (and not writable) copy of
/// exactly the `CompiledModule::code` the instance is built from, valid as long as `self`.
/// [`CodeMemory::func_cell`], when it returns a cell, must keep in it the address of an
/// executable copy of function `index` (relocated so it behaves exactly as the original),
/// valid while any thread may call it. [`CodeMemory::assemble_lazy`], when it returns `Ok`,
/// must have stored in function `index`'s cell the address of an executable copy of exactly the
/// code [`crate::lazy::assemble`] returns for it, valid as long as `self`.
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

    /// Assembles function `index` of `module` (a lazy stub there, see [`crate::lazy`]) unless
    /// that was done already, and stores the address of its code in its cell. Called by the
    /// stub at the function's first calls, from any thread of any instance sharing this code,
    /// possibly at the same time: the function is assembled at most once. The default refuses
    /// (the module must then be compiled without stubs).
    fn assemble_lazy(&self, module: &CompiledModule, index: u32) -> Result<(), CompileError> {
        let _ = (module, index);
        Err(CompileError::Unsupported(
            "this code memory does not assemble lazily".into(),
        ))
    }
}

/// Address space a guard-page memory reserves from its base: enough that `base + any u32
/// index + any u32 static offset + the widest access (16 bytes)` stays inside it, rounded up
/// to a 64 KiB boundary (8 GiB + 64 KiB).
pub const GUARD_RESERVE_BYTES: u64 = (1 << 33) + (64 << 10);

/// Linear memory bytes. Implementations may move the bytes when growing.
pub trait LinearMemory {
    /// Start of the bytes.
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// Current size in bytes.
    fn size_bytes(&self) -> usize;
    /// Grows to `new_size_bytes` (new bytes zeroed); `false` if that is not possible.
    fn grow_to(&mut self, new_size_bytes: usize) -> bool;
    /// Whether this memory may back code compiled with `Options::guard_pages`: its base never
    /// moves, [`GUARD_RESERVE_BYTES`] from its base are reserved for it, every byte from its
    /// size to the end of the reservation faults, and its embedder turns such a fault in
    /// generated code into `TrapCode::MemoryOutOfBounds`. Default: no.
    fn guard_reserved(&self) -> bool {
        false
    }
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
#[derive(Debug, Clone)]
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
    /// A global (shared with the instance that exports it).
    Global(Global),
    /// A linear memory (shared).
    Memory(Memory),
    /// A table (shared).
    Table(Table),
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
    /// A table is larger than the runtime allows.
    TableTooLarge,
}

impl fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Link(m) => write!(f, "link error: {m}"),
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::TableTooLarge => f.write_str("table too large"),
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
    /// The linear memory (defined or imported), if any.
    memory: Option<Memory>,
    /// What `memory_def` points at when there is no memory.
    no_memory: MemoryDef,
    globals: Vec<Global>,
    global_cells: Vec<*mut u64>,
    tables: Vec<Table>,
    table_defs: Vec<*mut TableDef>,
    imports: Vec<ImportEntry>,
    sig_ids: Vec<u32>,
    libcalls: [usize; LIBCALL_COUNT],
    counters: Vec<u64>,
    /// Code address of each function when the code memory keeps no cells of its own.
    code_cells: Box<[usize]>,
    /// The funcref of each function (`ref.func`, element segments).
    func_refs: Box<[FuncRef]>,
    /// Element segments' values (emptied when dropped).
    elems: Vec<Vec<u64>>,
    dropped_data: Vec<bool>,
    /// Stack bytes generated code may use below the caller of [`Instance::invoke`].
    pub stack_budget_bytes: usize,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("code_base", &self.code_base)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

fn link_error(import: &ImportDesc, why: &str) -> InstantiateError {
    InstantiateError::Link(alloc::format!(
        "import `{}.{}`: {why}",
        import.module,
        import.name
    ))
}

/// Whether an object with `actual` limits (its current size and declared maximum) may be
/// imported where `wanted` is declared.
fn limits_match(actual_size: u64, actual_max: Option<u64>, wanted: Limits) -> bool {
    actual_size >= wanted.min
        && match (wanted.max, actual_max) {
            (None, _) => true,
            (Some(w), Some(a)) => a <= w,
            (Some(_), None) => false,
        }
}

impl Instance {
    /// Builds an instance: `imports` in the module's import order; `memory` backs the memory
    /// the module defines (unused when it imports its memory or has none).
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
        if module.stubs.contains(&true) && code.func_cell(0).is_none() {
            return Err(InstantiateError::Link(
                "the module has lazy stubs but its code memory keeps no function cells".into(),
            ));
        }
        let mut globals = Vec::with_capacity(desc.globals.len());
        let mut tables = Vec::with_capacity(desc.tables.len());
        let mut shared_memory = None;
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
                (ImportKind::Global(ty, mutable), Extern::Global(g)) => {
                    if g.ty() != *ty || g.mutable() != *mutable {
                        return Err(link_error(
                            import,
                            &alloc::format!(
                                "incompatible import type: global {:?}{} wanted, {:?}{} given",
                                ty,
                                if *mutable { " (mut)" } else { "" },
                                g.ty(),
                                if g.mutable() { " (mut)" } else { "" },
                            ),
                        ));
                    }
                    globals.push(g.clone());
                }
                (ImportKind::Memory(limits), Extern::Memory(m)) => {
                    let max = Some(m.max_pages()).filter(|&p| p < 65536 || limits.max.is_none());
                    if !limits_match(m.pages(), max, *limits) {
                        return Err(link_error(
                            import,
                            "incompatible import type: memory limits do not match",
                        ));
                    }
                    shared_memory = Some(m.clone());
                }
                (ImportKind::Table(t), Extern::Table(table)) => {
                    if table.ty() != t.ty || !limits_match(table.len(), table.max(), t.limits) {
                        return Err(link_error(
                            import,
                            "incompatible import type: table type or limits do not match",
                        ));
                    }
                    tables.push(table.clone());
                }
                _ => {
                    return Err(link_error(
                        import,
                        "incompatible import type: wrong kind of import",
                    ));
                }
            }
        }
        let memory = match (shared_memory, desc.memory) {
            (Some(m), _) => Some(m),
            (None, Some(limits)) => {
                Some(Memory::new(memory, limits).ok_or(InstantiateError::OutOfMemory)?)
            }
            (None, None) => None,
        };
        // Code without bounds checks must never run over a memory the page tables do not
        // sandbox.
        if module.options.guard_pages && memory.as_ref().is_some_and(|m| !m.guard_reserved()) {
            return Err(InstantiateError::Link(
                "the code was compiled for guard pages but its memory has no guard reservation"
                    .into(),
            ));
        }
        let sig_ids: Vec<u32> = desc.types.iter().map(|t| sigs.intern(t)).collect();
        let nfuncs = desc.funcs.len();
        let counters = vec![0u64; module.counter_slots.len()];
        let mut inst = Box::new(Instance {
            vmctx: VmContext {
                memory_base: core::ptr::null_mut(),
                memory_size_bytes: 0,
                globals: core::ptr::null(),
                tables: core::ptr::null(),
                func_refs: core::ptr::null(),
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
                memory_def: core::ptr::null(),
            },
            _code: code,
            code_base,
            memory,
            no_memory: MemoryDef {
                base: core::ptr::null_mut(),
                size_bytes: 0,
            },
            globals: Vec::new(),
            global_cells: Vec::new(),
            tables: Vec::new(),
            table_defs: Vec::new(),
            imports: import_entries,
            sig_ids,
            libcalls: libcalls::table(),
            counters,
            code_cells: vec![0; nfuncs].into_boxed_slice(),
            func_refs: Box::new([]),
            elems: Vec::new(),
            dropped_data: vec![false; desc.datas.len()],
            stack_budget_bytes: 512 * 1024,
            module: module.clone(),
        });
        // Funcrefs first: globals, tables and segments may hold them.
        for f in 0..nfuncs as u32 {
            inst.code_cells[f as usize] = code_base + module.func_offsets[f as usize] as usize;
        }
        let vmctx: *mut VmContext = &mut inst.vmctx;
        inst.func_refs = (0..nfuncs as u32)
            .map(|f| {
                let ty = desc.funcs[f as usize];
                let code_cell = match inst._code.func_cell(f) {
                    Some(cell) => cell.as_ptr().cast_const(),
                    None => &raw const inst.code_cells[f as usize],
                };
                FuncRef {
                    code_cell,
                    sig_id: u64::from(inst.sig_ids[ty as usize]),
                    vmctx,
                }
            })
            .collect();
        inst.globals = globals;
        for g in &desc.globals[inst.globals.len()..] {
            let v = inst.const_value128(g.init);
            inst.globals.push(Global::new_v128(g.ty, g.mutable, v));
        }
        for t in &desc.tables[tables.len()..] {
            let init = inst.const_value(t.init);
            tables.push(Table::new(t.ty, t.limits, init).ok_or(InstantiateError::TableTooLarge)?);
        }
        inst.tables = tables;
        inst.global_cells = inst.globals.iter().map(Global::cell).collect();
        inst.table_defs = inst.tables.iter().map(Table::def).collect();
        inst.elems = desc
            .elems
            .iter()
            .map(|e| {
                if e.declared {
                    return Vec::new();
                }
                e.items.iter().map(|&i| inst.const_value(i)).collect()
            })
            .collect();
        inst.refresh();
        if let Err(code) = inst.initialize() {
            // Writes to imported tables stay, and may point at this instance's funcrefs.
            let imported = desc
                .imports
                .iter()
                .filter(|i| matches!(i.kind, ImportKind::Table(_)))
                .count();
            if let Some(table) = inst.tables[..imported].first().cloned() {
                table.retain(inst);
            }
            return Err(InstantiateError::Trap(code));
        }
        Ok(inst)
    }

    /// Applies the active segments in order (the first failure aborts; earlier writes stay)
    /// and runs the start function.
    fn initialize(&mut self) -> Result<(), TrapCode> {
        let module = self.module.clone();
        let desc = &module.desc;
        for (i, e) in desc.elems.iter().enumerate() {
            if let Some(offset) = e.offset {
                let at = self.const_value(offset) as u32;
                let n = e.items.len() as u32;
                self.table_init(i as u32, e.table, at, 0, n)?;
                self.drop_elem(i as u32);
            }
        }
        for (i, d) in desc.datas.iter().enumerate() {
            if let Some(offset) = d.offset {
                let at = self.const_value(offset) as u32;
                self.memory_init(i as u32, at, 0, d.bytes.len() as u32)
                    .map_err(|_| TrapCode::MemoryOutOfBounds)?;
                self.drop_data(i as u32);
            }
        }
        if let Some(start) = desc.start {
            // Validation guarantees a start function of type [] -> [].
            self.call(start, &[])?;
        }
        Ok(())
    }

    /// The value of a constant expression (globals and funcrefs must exist already).
    fn const_value(&self, init: ConstInit) -> u64 {
        self.const_value128(init) as u64
    }

    /// [`Self::const_value`] with all 128 bits (v128 globals).
    fn const_value128(&self, init: ConstInit) -> u128 {
        u128::from(match init {
            ConstInit::V128(v) => return v,
            ConstInit::Global(g) => return self.globals[g as usize].get_v128(),
            ConstInit::Value(v) => v,
            ConstInit::RefFunc(f) => self.func_ref_bits(f),
            ConstInit::RefNull => 0,
        })
    }

    /// The funcref of function `index` as a table value.
    fn func_ref_bits(&self, index: u32) -> u64 {
        &raw const self.func_refs[index as usize] as u64
    }

    /// Where function `index` is now (its cell, when the code memory moves functions).
    fn func_addr(&self, index: u32) -> usize {
        match self._code.func_cell(index) {
            Some(cell) => cell.load(Ordering::Acquire),
            None => self.code_base + self.module.func_offsets[index as usize] as usize,
        }
    }

    /// Copies the memory's current place and size into the VM context.
    fn sync_memory(&mut self) {
        self.vmctx.memory_def = match &self.memory {
            Some(m) => m.def(),
            None => &self.no_memory,
        };
        // SAFETY: `memory_def` points at a live MemoryDef (the shared memory's, kept alive by
        // `self.memory`, or `self.no_memory`).
        let def = unsafe { &*self.vmctx.memory_def };
        self.vmctx.memory_base = def.base;
        self.vmctx.memory_size_bytes = def.size_bytes;
    }

    /// Every code address this instance holds by value, as a raw slot: each import bound to
    /// another instance's function. (Funcrefs in tables, element segments and globals hold
    /// no code address: a [`FuncRef`] reads its function's code cell at every call.) Generated
    /// code reads an import's address only with the `call` that uses it (`call [entry]`), so a
    /// relocation engine that rewrites these slots while no thread of the instance is inside a
    /// runtime helper re-targets every such call.
    ///
    /// # Safety
    ///
    /// `this` points to a live instance that no other thread is using while `f` runs (its
    /// threads are stopped, none inside a runtime helper), and `f` writes only code addresses
    /// (or nothing) through the slots.
    pub unsafe fn visit_code_pointers(this: *mut Instance, f: &mut dyn FnMut(*mut usize)) {
        // SAFETY: by the contract above, nothing else touches the instance while we look at it.
        let inst = unsafe { &mut *this };
        for i in inst.imports.iter_mut().filter(|i| i.kind == IMPORT_WASM) {
            f(&mut i.code);
        }
    }

    /// Re-points the VM context at this instance's (possibly moved) parts.
    fn refresh(&mut self) {
        let this: *mut Instance = self;
        self.sync_memory();
        self.vmctx.globals = self.global_cells.as_ptr();
        self.vmctx.tables = self.table_defs.as_ptr();
        self.vmctx.func_refs = self.func_refs.as_ptr();
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
        self.globals[index as usize].get()
    }

    /// Global `index`, to import it into another instance.
    pub fn export_global(&self, index: u32) -> Option<Extern> {
        self.globals
            .get(index as usize)
            .cloned()
            .map(Extern::Global)
    }

    /// Table `index`, to import it into another instance.
    pub fn export_table(&self, index: u32) -> Option<Extern> {
        self.tables.get(index as usize).cloned().map(Extern::Table)
    }

    /// The memory, to import it into another instance.
    pub fn export_memory(&self) -> Option<Extern> {
        self.memory.clone().map(Extern::Memory)
    }

    /// This instance's export `name` as an [`Extern`] for an import of `kind` (types from
    /// `importer`): a function only when its signature is the one the import declares;
    /// globals, tables and memories of the import's kind (instantiation then checks their type,
    /// mutability and limits, and a link error names a mismatch). `None` when there is no such
    /// export of that kind.
    pub fn export_extern(
        &mut self,
        name: &str,
        kind: &ImportKind,
        importer: &crate::ModuleDesc,
    ) -> Option<Extern> {
        use wasmparser::ExternalKind;
        let module = self.module.clone();
        let desc = &module.desc;
        let export = desc.exports.iter().find(|e| e.name == name)?;
        match (kind, export.kind) {
            (ImportKind::Func(t), ExternalKind::Func) => {
                let want: &FuncType = importer.types.get(*t as usize)?;
                (desc.func_type(export.index) == want).then(|| self.func_ref(export.index))
            }
            (ImportKind::Global(..), ExternalKind::Global) => self.export_global(export.index),
            (ImportKind::Table(_), ExternalKind::Table) => self.export_table(export.index),
            (ImportKind::Memory(_), ExternalKind::Memory) => self.export_memory(),
            _ => None,
        }
    }

    /// Table `index`.
    pub fn table(&self, index: u32) -> Option<&Table> {
        self.tables.get(index as usize)
    }

    /// The linear memory.
    pub fn memory(&mut self) -> &mut [u8] {
        self.sync_memory();
        let len = self.vmctx.memory_size_bytes as usize;
        let ptr = self.vmctx.memory_base;
        if len == 0 {
            return &mut [];
        }
        // SAFETY: the memory owns `len` initialized bytes at `ptr` (just read from its
        // MemoryDef), borrowed via self; no generated code runs while the borrow lives.
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
        let expected = desc.func_type(index).param_slots();
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
        slots.truncate(ty.result_slots());
        // Only the low 4 bytes of an i32/f32 slot are defined.
        for (&at, t) in crate::module::slot_offsets(&ty.results)
            .iter()
            .zip(&ty.results)
        {
            if !t.is_wide() {
                slots[at] &= u64::from(u32::MAX);
            }
        }
        Ok(slots)
    }

    /// Has the code memory assemble function `index` (the `LazyAssemble` helper).
    pub(crate) fn assemble_lazy(&mut self, index: u32) -> Result<(), TrapCode> {
        self._code
            .assemble_lazy(&self.module, index)
            .map_err(|_| TrapCode::AssemblyFailed)
    }

    pub(crate) fn grow_memory(&mut self, delta_pages: u32) -> Option<u32> {
        let old = self.memory.as_ref()?.grow(u64::from(delta_pages))?;
        self.sync_memory();
        Some(old as u32)
    }

    fn mem_range(&self, at: u32, n: u32) -> Result<core::ops::Range<usize>, TrapCode> {
        let end = u64::from(at) + u64::from(n);
        if end > self.vmctx.memory_size_bytes {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        Ok(at as usize..end as usize)
    }

    pub(crate) fn memory_fill(&mut self, d: u32, v: u8, n: u32) -> Result<(), TrapCode> {
        self.sync_memory();
        let r = self.mem_range(d, n)?;
        self.memory()[r].fill(v);
        Ok(())
    }

    pub(crate) fn memory_copy(&mut self, d: u32, s: u32, n: u32) -> Result<(), TrapCode> {
        self.sync_memory();
        let dst = self.mem_range(d, n)?;
        let src = self.mem_range(s, n)?;
        self.memory().copy_within(src, dst.start);
        Ok(())
    }

    pub(crate) fn memory_init(&mut self, seg: u32, d: u32, s: u32, n: u32) -> Result<(), TrapCode> {
        self.sync_memory();
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

    pub(crate) fn table_init(
        &mut self,
        seg: u32,
        table: u32,
        d: u32,
        s: u32,
        n: u32,
    ) -> Result<(), TrapCode> {
        let elems = &self.elems[seg as usize];
        let src_end = u64::from(s) + u64::from(n);
        if src_end > elems.len() as u64 {
            return Err(TrapCode::TableAccessOutOfBounds);
        }
        let values = &elems[s as usize..src_end as usize];
        if !self.tables[table as usize].write(u64::from(d), values) {
            return Err(TrapCode::TableAccessOutOfBounds);
        }
        Ok(())
    }

    pub(crate) fn table_copy(
        &mut self,
        dst_table: u32,
        src_table: u32,
        d: u32,
        s: u32,
        n: u32,
    ) -> Result<(), TrapCode> {
        let dst = &self.tables[dst_table as usize];
        let src = &self.tables[src_table as usize];
        let values = src
            .read(u64::from(s), u64::from(n))
            .ok_or(TrapCode::TableAccessOutOfBounds)?;
        if !dst.write(u64::from(d), &values) {
            return Err(TrapCode::TableAccessOutOfBounds);
        }
        Ok(())
    }

    pub(crate) fn table_grow(&mut self, table: u32, init: u64, n: u32) -> Option<u32> {
        let old = self.tables[table as usize].grow(u64::from(n), init)?;
        Some(old as u32)
    }

    pub(crate) fn table_fill(
        &mut self,
        table: u32,
        at: u32,
        v: u64,
        n: u32,
    ) -> Result<(), TrapCode> {
        if self.tables[table as usize].fill(u64::from(at), v, u64::from(n)) {
            Ok(())
        } else {
            Err(TrapCode::TableAccessOutOfBounds)
        }
    }

    pub(crate) fn drop_elem(&mut self, seg: u32) {
        self.elems[seg as usize] = Vec::new();
    }
}
