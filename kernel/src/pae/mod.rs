//! The Predictive Assembly Engine in the kernel: assembles chunks from the chunk image into
//! executable pages with `atoll-pae`, links them (to each other and to the kernel's `atoll`
//! imports), and runs exports.
//!
//! Assembled code is cached per chunk (compiled once, mapped read-execute once, shared by every
//! instance). Each task gets fresh instances of its chunk and of every chunk it imports from,
//! providers first, so tasks never see each other's linear memory; except chunks of a linked
//! group (they share memories, tables or globals), which keep one instance each from task to
//! task (`group`).

pub mod cache;
// May use `unsafe`: the group's instances move between threads with it (see `main.rs`).
#[allow(unsafe_code)]
pub mod group;
// These three may use `unsafe` (each says why; the list is in `main.rs`).
#[allow(unsafe_code)]
mod code;
#[allow(unsafe_code)]
mod imports;
pub mod lazy;
pub mod specialize;
#[allow(unsafe_code)]
mod task;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use atoll_island::ModuleId;
use atoll_pae::runtime::{
    Extern, Instance, InstantiateError, InvokeError, LinearMemory, SigRegistry, VecMemory,
};
use atoll_pae::{CompileError, CompiledModule, Options, Ty};
use atoll_wasi::WasiCtx;
use atoll_wasi::pae_link::WasiLink;
use chunk_image::{ValType, Value};

pub use code::KernelCode;
use code::SharedCode;
pub use task::{Started, TaskOutcome, run_keeping, run_on_thread, start_on_thread};

use crate::chunks::{self, Loaded};
use crate::mem::vm::VmError;

/// Why a task could not be prepared or run.
#[derive(Debug)]
pub enum PaeError {
    /// No valid chunk image was loaded.
    NoImage,
    /// The task is not `chunk.export`.
    BadTaskName(String),
    /// No chunk of that name.
    NoChunk(String),
    /// The chunk failed validation at boot.
    Rejected(String),
    /// The chunk has no such exported function.
    NoExport(String),
    /// Wrong number or kind of arguments.
    BadArgs(String),
    /// The code generator refused the module.
    Compile(String, CompileError),
    /// Code pages could not be mapped.
    Vm(VmError),
    /// Linking or instantiation failed.
    Instantiate(String, InstantiateError),
    /// The dependency graph is deeper than the image checks allow (a cycle).
    DependencyCycle(String),
    /// The chunk cache could not hold the chunk (pinned chunks fill it).
    NoRoom(String),
    /// The chunk is in no linked group.
    NotInGroup(String),
    /// Linear memory could not be set up.
    Memory(String),
}

impl fmt::Display for PaeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoImage => write!(f, "no valid chunk image is loaded"),
            Self::BadTaskName(t) => write!(f, "`{t}` is not CHUNK.EXPORT"),
            Self::NoChunk(c) => write!(f, "no chunk named `{c}`"),
            Self::Rejected(c) => write!(f, "chunk `{c}` was rejected by validation at boot"),
            Self::NoExport(t) => write!(f, "no exported function `{t}`"),
            Self::BadArgs(m) => write!(f, "{m}"),
            Self::Compile(c, e) => write!(f, "assembling `{c}`: {e}"),
            Self::Vm(e) => write!(f, "mapping code: {e}"),
            Self::Instantiate(c, e) => write!(f, "instantiating `{c}`: {e}"),
            Self::DependencyCycle(c) => write!(f, "dependency cycle through `{c}`"),
            Self::NoRoom(c) => write!(
                f,
                "the chunk cache has no room for `{c}` (running tasks pin the rest)"
            ),
            Self::NotInGroup(c) => write!(
                f,
                "chunk `{c}` shares no memory, table or global with other chunks (it is in no group)"
            ),
            Self::Memory(m) => write!(f, "{m}"),
        }
    }
}

impl From<VmError> for PaeError {
    fn from(e: VmError) -> Self {
        Self::Vm(e)
    }
}

/// One chunk's assembled code.
#[derive(Debug)]
pub struct Assembled {
    /// Chunk name.
    pub chunk: String,
    /// The code generator's output (metadata included).
    pub module: Arc<CompiledModule>,
    /// The code, mapped read-execute.
    pub code: Arc<KernelCode>,
    /// TSC cycles spent compiling and mapping (per function: `FunctionMeta::lower_ticks`;
    /// the module's encoding: `CompiledModule::encode_ticks`).
    pub assemble_cycles: u64,
    /// Size of the WebAssembly module.
    pub wasm_bytes: usize,
}

impl Assembled {
    /// Code bytes in all: the module's plus every function assembled lazily since.
    pub fn code_bytes(&self) -> usize {
        self.code.code_bytes()
    }
}

/// Every chunk resident in the cache.
pub fn assembled() -> Vec<Arc<Assembled>> {
    cache::assembled()
}

/// The code generator's options for chunks. Block counters on: they feed the islands' call and
/// block counts.
fn options() -> Options {
    Options {
        block_counters: true,
        guard_pages: crate::guard::enabled(),
        ..Options::default()
    }
}

/// Linear memory for code compiled with `options`: heap memory for explicit bounds checks, a
/// paged guard reservation for code without them (`crate::guard`).
fn memory_for(options: &Options) -> Result<Box<dyn LinearMemory>, PaeError> {
    if options.guard_pages {
        crate::snap::paged::PagedMemory::eager()
            .map(|m| Box::new(m) as Box<dyn LinearMemory>)
            .map_err(|e| PaeError::Memory(alloc::format!("guard-page memory: {e}")))
    } else {
        Ok(Box::new(VecMemory::default()))
    }
}

/// A subset of a module's functions to assemble up front (the rest lazily), with the module's
/// description from `atoll_pae::reach::analyze`.
pub type Subset = (Vec<bool>, atoll_pae::ModuleDesc);

/// The assembled code of `chunk` (for inspection: `pae CHUNK`, `asm`), assembling it now if
/// needed; it is cached like a predicted chunk (no pin is kept). Returns an error if it
/// could not be cached, as its code would be gone when this returns.
pub fn assemble(chunk: &str) -> Result<Arc<Assembled>, PaeError> {
    let (a, how) = cache::obtain(chunk, true, || compile_chunk(chunk, None))?;
    if let cache::Obtained::Uncached(m) = how {
        cache::drop_uncached(m);
        return Err(PaeError::NoRoom(chunk.into()));
    }
    Ok(a)
}

/// Assembles `chunk` for the pre-assembly worker: cached unpinned, no use recorded.
pub fn preassemble(chunk: &str) -> Result<cache::Obtained, PaeError> {
    let (_, how) = cache::obtain(chunk, true, || compile_chunk(chunk, None))?;
    if let cache::Obtained::Uncached(m) = how {
        cache::drop_uncached(m);
    }
    Ok(how)
}

/// Compiles and maps `chunk` (whole, or `subset` up front and the rest lazily) and registers
/// its islands (no cache involved).
fn compile_chunk(
    chunk: &str,
    subset: Option<Subset>,
) -> Result<(Arc<Assembled>, Option<ModuleId>), PaeError> {
    let Loaded::Ready { image, rejected } = chunks::loaded() else {
        return Err(PaeError::NoImage);
    };
    let view = image
        .chunk(chunk)
        .ok_or_else(|| PaeError::NoChunk(chunk.into()))?;
    if rejected.iter().any(|(n, _)| n == chunk) {
        return Err(PaeError::Rejected(chunk.into()));
    }
    let start = crate::arch::cpu::rdtsc();
    let clock = || crate::arch::cpu::rdtsc();
    let options = options();
    let specs = if subset.is_none() {
        specialize::constants_of(chunk)
    } else {
        Vec::new()
    };
    let module = match subset {
        Some((eager, desc)) => {
            atoll_pae::compile_parsed(view.module, desc, &options, Some(&clock), &eager)
        }
        None if !specs.is_empty() => {
            let options = Options {
                specialize: true,
                ..options
            };
            atoll_pae::compile_specialized(view.module, &options, &specs)
        }
        None => atoll_pae::compile_timed(view.module, &options, Some(&clock)),
    }
    .map_err(|e| PaeError::Compile(chunk.into(), e))?;
    specialize::note_assembled(chunk, &specs);
    let code = KernelCode::new(&module.code, &module.func_offsets)?;
    let assembled = Arc::new(Assembled {
        chunk: chunk.into(),
        module: Arc::new(module),
        code: Arc::new(code),
        assemble_cycles: crate::arch::cpu::rdtsc() - start,
        wasm_bytes: view.module.len(),
    });
    let module = match crate::island::register(&assembled) {
        Ok(m) => Some(m),
        Err(e) => {
            log::warn!("chunk {chunk}: no islands ({e:?}); its code cannot be relocated");
            None
        }
    };
    Ok((assembled, module))
}

/// The chunks `chunk` needs, providers before their users, `chunk` last.
pub fn dependency_order(chunk: &str) -> Result<Vec<String>, PaeError> {
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage);
    };
    let mut order = Vec::new();
    fn visit(
        image: &chunk_image::Image<'_>,
        name: &str,
        depth: usize,
        order: &mut Vec<String>,
    ) -> Result<(), PaeError> {
        if order.iter().any(|n| n == name) {
            return Ok(());
        }
        if depth > 64 {
            return Err(PaeError::DependencyCycle(name.into()));
        }
        let view = image
            .chunk(name)
            .ok_or_else(|| PaeError::NoChunk(name.into()))?;
        for dep in view.manifest.chunk_dependencies() {
            visit(image, dep, depth + 1, order)?;
        }
        order.push(name.into());
        Ok(())
    }
    visit(image, chunk, 0, &mut order)?;
    Ok(order)
}

/// The console's type for a parameter or result; `None` for references and vectors, which it
/// cannot show or pass.
fn val_type(ty: Ty) -> Option<ValType> {
    match ty {
        Ty::I32 => Some(ValType::I32),
        Ty::I64 => Some(ValType::I64),
        Ty::F32 => Some(ValType::F32),
        Ty::F64 => Some(ValType::F64),
        Ty::FuncRef | Ty::ExternRef | Ty::V128 => None,
    }
}

fn console_types(task: &str, tys: &[Ty]) -> Result<Vec<ValType>, PaeError> {
    tys.iter()
        .map(|&t| {
            val_type(t).ok_or_else(|| {
                PaeError::BadArgs(alloc::format!(
                    "`{task}` has a vector or reference parameter or result, which a console task \
                     cannot take or return (other chunks can call it)"
                ))
            })
        })
        .collect()
}

/// A task ready to run: instances of the chunk and its providers, and the export to call.
#[derive(Debug)]
pub struct Prepared {
    /// `chunk.export`.
    pub task: String,
    /// Instances by chunk name (providers are referenced by their users' import tables).
    instances: BTreeMap<String, Box<Instance>>,
    /// Their keys in the islands' instance registry (unregistered before they are dropped).
    registered: Vec<u64>,
    /// A command's WASI context, which its WASI imports point into (declared after the
    /// instances, so it is dropped after them).
    wasi: Option<WasiLink>,
    chunk: String,
    func: u32,
    params: Vec<ValType>,
    results: Vec<ValType>,
    /// Native stack the chunk's manifest asks for.
    stack_bytes: u64,
    /// The cache pins and uncached code it holds (released after the instances are dropped).
    held: Held,
    /// The linked group whose instances the task runs in (then `instances` is empty).
    group: Option<Arc<group::Group>>,
    /// After a run in a group: what the run added to each group instance's block counters.
    group_counts: Vec<(String, Vec<u64>)>,
    /// Exports of the chunk (with their arguments) run before the task's own, in order: the
    /// path a request re-runs when no snapshot covers it (`docs/snapshots.md`).
    path: Vec<(u32, Vec<u64>)>,
    /// TSC cycles the path took in the last `invoke`.
    path_cycles: u64,
}

/// What a task holds of the cache: pins on its chunks, and code assembled for it alone.
#[derive(Debug, Default)]
pub struct Held {
    pinned: Vec<String>,
    uncached: Vec<Option<ModuleId>>,
    /// Chunks found resident (or being assembled, then waited for).
    pub hits: u32,
    /// Chunks assembled for this request.
    pub misses: u32,
}

impl Held {
    /// Takes over `other`'s pins, uncached code and counts.
    fn absorb(&mut self, mut other: Held) {
        self.pinned.append(&mut other.pinned);
        self.uncached.append(&mut other.uncached);
        self.hits += other.hits;
        self.misses += other.misses;
    }

    fn note(&mut self, chunk: &str, how: cache::Obtained) {
        match how {
            cache::Obtained::Hit | cache::Obtained::Waited => {
                self.hits += 1;
                self.pinned.push(chunk.into());
            }
            cache::Obtained::Assembled => {
                self.misses += 1;
                self.pinned.push(chunk.into());
            }
            cache::Obtained::Uncached(m) => {
                self.misses += 1;
                self.uncached.push(m);
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for c in &self.pinned {
            cache::unpin(c);
        }
        for m in self.uncached.drain(..) {
            cache::drop_uncached(m);
        }
    }
}

/// Assembles what is missing and instantiates `task` (`chunk.export`) and its providers.
pub fn prepare(task: &str) -> Result<Prepared, PaeError> {
    prepare_with(task, None, None)
}

/// Like [`prepare`], the task's own chunk instantiated over `memory` (a snapshot restore's
/// page-backed memory).
pub fn prepare_with_memory(
    task: &str,
    memory: Box<dyn LinearMemory>,
) -> Result<Prepared, PaeError> {
    prepare_with(task, None, Some(memory))
}

/// Like [`prepare`] for a command chunk's `_start`, its WASI imports bound to `ctx`.
pub fn prepare_command(chunk: &str, ctx: WasiCtx) -> Result<Prepared, PaeError> {
    prepare_with(
        &alloc::format!("{chunk}._start"),
        Some(WasiLink::new(ctx)),
        None,
    )
}

fn prepare_with(
    task: &str,
    mut wasi: Option<WasiLink>,
    mut main_memory: Option<Box<dyn LinearMemory>>,
) -> Result<Prepared, PaeError> {
    let (chunk, export) = task
        .split_once('.')
        .ok_or_else(|| PaeError::BadTaskName(task.into()))?;
    let order = dependency_order(chunk)?;
    // Assemble first (that registers islands), then check what can fail without instances,
    // then instantiate and register the instances with the islands locked: no move happens
    // between reading entry cells and registering the instances that copied them, every later
    // move re-targets what they hold, and nothing returns early once they are registered.
    let mut held = Held::default();
    let mut assembled = Vec::new();
    // With `lazy on`, only what the export reaches is assembled up front (a chunk already in
    // the cache is used as it is, whole or not).
    let plan: Vec<(String, Option<Subset>)> = if lazy::enabled() {
        lazy::plan(task)?
            .into_iter()
            .map(|(n, e, d)| (n, Some((e, d))))
            .collect()
    } else {
        order.iter().map(|n| (n.clone(), None)).collect()
    };
    for (name, subset) in plan {
        let (a, how) = cache::obtain(&name, false, || compile_chunk(&name, subset))?;
        held.note(&name, how);
        assembled.push((name, a));
    }
    let main = assembled
        .iter()
        .find(|(name, _)| name == chunk)
        .map(|(_, a)| a.clone())
        .ok_or_else(|| PaeError::NoChunk(chunk.into()))?;
    let func = main
        .module
        .desc
        .export_func(export)
        .ok_or_else(|| PaeError::NoExport(task.into()))?;
    let ty = main.module.desc.func_type(func).clone();
    let params = console_types(task, &ty.params)?;
    let results = console_types(task, &ty.results)?;
    let stack_bytes = match chunks::loaded() {
        Loaded::Ready { image, .. } => image
            .chunk(chunk)
            .map_or(0, |c| u64::from(c.manifest.resources.stack_bytes)),
        _ => 0,
    };
    let group = group::of(chunk)?;
    let (instances, registered) = match &group {
        Some(g) => {
            if wasi.is_some() || main_memory.is_some() {
                return Err(PaeError::BadArgs(alloc::format!(
                    "`{chunk}` shares state with other chunks (group `{}`): it runs in the \
                     group's instances, not as a WASI command or from a snapshot",
                    g.name
                )));
            }
            let mut state = g.enter();
            g.instantiate_missing(&mut state, &assembled)?;
            (BTreeMap::new(), Vec::new())
        }
        None => crate::island::instantiating(|reg| {
            let mut instances = BTreeMap::new();
            instantiate_into(
                &mut instances,
                &mut SigRegistry::default(),
                &assembled,
                wasi.as_mut(),
                main_memory.take().map(|m| (chunk, m)),
            )?;
            let keys = instances
                .values_mut()
                .map(|inst| reg.register_instance(core::ptr::from_mut::<Instance>(inst) as usize))
                .collect::<Vec<u64>>();
            Ok::<_, PaeError>((instances, keys))
        })?,
    };
    Ok(Prepared {
        group,
        group_counts: Vec::new(),
        held,
        stack_bytes,
        task: task.into(),
        instances,
        registered,
        wasi,
        chunk: chunk.into(),
        func,
        params,
        results,
        path: Vec::new(),
        path_cycles: 0,
    })
}

/// Instantiates `assembled` (providers before their users) into `instances`, linking each to
/// the instances already there (functions, and shared memories, tables and globals); a
/// command's WASI imports bind to `wasi`; `main_memory` is `(chunk, memory)` to instantiate
/// that chunk over (a snapshot restore's page-backed memory), the others get heap memory.
fn instantiate_into(
    instances: &mut BTreeMap<String, Box<Instance>>,
    sigs: &mut SigRegistry,
    assembled: &[(String, Arc<Assembled>)],
    mut wasi: Option<&mut WasiLink>,
    mut main_memory: Option<(&str, Box<dyn LinearMemory>)>,
) -> Result<(), PaeError> {
    for (name, assembled) in assembled {
        if instances.contains_key(name) {
            continue;
        }
        let mut externs = Vec::new();
        for import in &assembled.module.desc.imports {
            let ext = if import.module == chunk_image::KERNEL_MODULE {
                let func = imports::lookup(&import.name).ok_or_else(|| {
                    PaeError::Instantiate(
                        name.clone(),
                        InstantiateError::Link(alloc::format!(
                            "no kernel function `{}`",
                            import.name
                        )),
                    )
                })?;
                Extern::Host {
                    func,
                    data: core::ptr::null_mut(),
                }
            } else if import.module == chunk_image::WASI_MODULE {
                let Some(link) = wasi.as_deref_mut() else {
                    return Err(PaeError::Instantiate(
                        name.clone(),
                        InstantiateError::Link(alloc::format!(
                            "it imports WASI functions: run it as a command (`run {name}`)"
                        )),
                    ));
                };
                link.extern_for(&import.name).ok_or_else(|| {
                    PaeError::Instantiate(
                        name.clone(),
                        InstantiateError::Link(alloc::format!(
                            "no WASI function `{}`",
                            import.name
                        )),
                    )
                })?
            } else {
                let provider = instances.get_mut(&import.module).ok_or_else(|| {
                    PaeError::Instantiate(
                        name.clone(),
                        InstantiateError::Link(alloc::format!(
                            "provider `{}` missing",
                            import.module
                        )),
                    )
                })?;
                provider
                    .export_extern(&import.name, &import.kind, &assembled.module.desc)
                    .ok_or_else(|| {
                        PaeError::Instantiate(
                            name.clone(),
                            InstantiateError::Link(alloc::format!(
                                "`{}.{}` is not exported as the kind and type imported",
                                import.module,
                                import.name
                            )),
                        )
                    })?
            };
            externs.push(ext);
        }
        let instance = Instance::new(
            assembled.module.clone(),
            Box::new(SharedCode(assembled.code.clone())),
            match main_memory.take_if(|(main, _)| main == name) {
                Some((_, memory)) => memory,
                None => memory_for(&assembled.module.options)?,
            },
            &externs,
            sigs,
        )
        .map_err(|e| PaeError::Instantiate(name.clone(), e))?;
        instances.insert(name.clone(), instance);
    }
    Ok(())
}

impl Drop for Prepared {
    fn drop(&mut self) {
        crate::island::unregister_instances(&self.registered);
    }
}

impl Prepared {
    /// How many of its chunks were resident and how many were assembled for it.
    pub fn cache_use(&self) -> (u32, u32) {
        (self.held.hits, self.held.misses)
    }

    /// Parses console arguments by the export's parameter types.
    pub fn parse_args(&self, words: &[String]) -> Result<Vec<u64>, PaeError> {
        if words.len() != self.params.len() {
            return Err(PaeError::BadArgs(alloc::format!(
                "{} takes {} argument(s), {} given",
                self.task,
                self.params.len(),
                words.len()
            )));
        }
        words
            .iter()
            .zip(&self.params)
            .map(|(w, ty)| {
                Value::parse(w, *ty)
                    .map(Value::to_bits)
                    .ok_or_else(|| PaeError::BadArgs(alloc::format!("`{w}` is not a valid {ty:?}")))
            })
            .collect()
    }

    /// The code a command passed to `proc_exit`, if it did.
    pub fn wasi_exit_code(&mut self) -> Option<u32> {
        self.wasi.as_mut().and_then(|w| w.ctx().exit_code())
    }

    /// The task's own chunk's instance (for snapshots: capture and restore).
    /// `None` for a task of a linked group: it runs in the group's instances.
    pub fn main_instance(&mut self) -> Option<&mut Instance> {
        self.instances.get_mut(&self.chunk).map(|b| &mut **b)
    }

    /// Has `invoke` run these exports (function index, raw arguments) first.
    pub fn set_path(&mut self, funcs: Vec<(u32, Vec<u64>)>) {
        self.path = funcs;
    }

    /// TSC cycles the path took in the last run.
    pub fn path_cycles(&self) -> u64 {
        self.path_cycles
    }

    /// Each instance's block counters, by chunk name: the task's own instances' (live while it
    /// runs), then, after a run in a linked group, what the run added to the group's.
    pub fn counters(&self) -> impl Iterator<Item = (&str, &[u64])> {
        self.instances
            .iter()
            .map(|(name, inst)| (name.as_str(), inst.counters()))
            .chain(
                self.group_counts
                    .iter()
                    .map(|(name, c)| (name.as_str(), c.as_slice())),
            )
    }

    /// The linked group the task runs in, if any: the caller holds it (`Group::enter`) around
    /// [`Prepared::invoke`], outside the time it counts as running generated code.
    pub fn group(&self) -> Option<Arc<group::Group>> {
        self.group.clone()
    }

    /// Runs the export on the current stack, allowing generated code `stack_budget_bytes`;
    /// for a task of a linked group, `held` is the group's state (see [`Prepared::group`]).
    pub fn invoke(
        &mut self,
        args: &[u64],
        stack_budget_bytes: usize,
        held: Option<&mut group::State>,
    ) -> Result<Vec<Value>, InvokeError> {
        specialize::record(&self.chunk, self.func, args);
        let raw = match held {
            Some(state) => self.invoke_in_group(state, args, stack_budget_bytes)?,
            None => {
                let instance = self
                    .instances
                    .get_mut(&self.chunk)
                    .expect("prepared chunk instance");
                instance.stack_budget_bytes = stack_budget_bytes;
                // The path first (snapshots: what a request re-runs when no snapshot covers it).
                let start = crate::arch::cpu::rdtsc();
                for (f, args) in &self.path {
                    instance.invoke(*f, args)?;
                }
                self.path_cycles = crate::arch::cpu::rdtsc() - start;
                instance.invoke(self.func, args)?
            }
        };
        Ok(raw
            .iter()
            .zip(&self.results)
            .filter_map(|(bits, ty)| Value::from_bits(*bits, *ty))
            .collect())
    }
}

impl Prepared {
    /// Runs the export in the group's instance of the chunk (the caller holds the group) and
    /// keeps what the run added to each group instance's block counters.
    fn invoke_in_group(
        &mut self,
        state: &mut group::State,
        args: &[u64],
        stack_budget_bytes: usize,
    ) -> Result<Vec<u64>, InvokeError> {
        let before: Vec<(String, Vec<u64>)> = state
            .instances
            .iter()
            .map(|(n, i)| (n.clone(), i.counters().to_vec()))
            .collect();
        let instance = state
            .instances
            .get_mut(&self.chunk)
            .ok_or(InvokeError::Trap(atoll_pae::TrapCode::HostError))?;
        instance.stack_budget_bytes = stack_budget_bytes;
        let result = instance.invoke(self.func, args);
        self.group_counts = before
            .into_iter()
            .filter_map(|(name, old)| {
                let now = state.instances.get(&name)?.counters();
                let added = now
                    .iter()
                    .zip(&old)
                    .map(|(n, o)| n.wrapping_sub(*o))
                    .collect();
                Some((name, added))
            })
            .collect();
        result
    }
}

/// Formats results as `chunkc run` does: space-separated.
pub fn format_results(values: &[Value]) -> String {
    let texts: Vec<String> = values.iter().map(ToString::to_string).collect();
    texts.join(" ")
}

/// What `atoll.yield` does: gives up the rest of the thread's time slice.
pub fn yield_hook() {
    crate::sched::yield_now();
}
