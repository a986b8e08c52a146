//! Assembly from the request: a task (`chunk.export`) assembles, in its chunk and in every
//! provider chunk, only the functions the export can reach (`atoll_pae::reach`); the others
//! get lazy stubs and are assembled at their first call (`atoll_pae::lazy`), into 4 KiB code
//! pages of their own, registered as islands (so they are sampled and can be moved) before
//! their code cell is pointed at them.
//!
//! What is patched: only the function's code cell (an aligned `AtomicUsize`, release store),
//! never code. A core that read the cell before the store runs the stub, whose helper call
//! waits on the module's lazy lock and finds the function assembled: assembled once. A core
//! that reads it after calls the new code, written through the direct map and mapped
//! read-execute at a fresh virtual address before the store, so no core can have stale
//! translations or instruction bytes for it.
//!
//! Whole-module assembly stays the default (`lazy off`); `lazy on` makes `run` assemble from
//! the request. `lazy startup TASK` measures both in one run.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use atoll_pae::reach::{self, CallGraph, Linked};
use atoll_pae::{CompileError, CompiledModule, ModuleDesc};
use atoll_wasi::pae_link::WasiLink;

use super::{Assembled, KernelCode, PaeError};
use crate::chunks::{self, Loaded};
use crate::island::CodeRegion;
use crate::mem::frames;

/// Whether tasks assemble from the request (reachable functions first, the rest lazily).
static FROM_REQUEST: AtomicBool = AtomicBool::new(false);

/// Turns assembly from the request on or off (for chunks assembled from now on).
pub fn set_enabled(on: bool) {
    FROM_REQUEST.store(on, Ordering::Relaxed);
}

/// Whether tasks assemble from the request.
pub fn enabled() -> bool {
    FROM_REQUEST.load(Ordering::Relaxed)
}

/// What lazy assembly added to one module's code.
#[derive(Debug)]
pub struct LazyCode {
    done: Vec<bool>,
    regions: Vec<CodeRegion>,
    bytes: usize,
    cycles: u64,
}

impl LazyCode {
    /// Nothing assembled lazily yet, for a module of `funcs` functions.
    pub fn new(funcs: usize) -> Self {
        Self {
            done: alloc::vec![false; funcs],
            regions: Vec::new(),
            bytes: 0,
            cycles: 0,
        }
    }

    /// Code bytes assembled lazily.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of the pages mapped for them.
    pub fn pages_bytes(&self) -> u64 {
        self.regions.iter().map(CodeRegion::bytes).sum()
    }
}

impl Drop for LazyCode {
    fn drop(&mut self) {
        for r in self.regions.drain(..) {
            r.free();
        }
    }
}

/// Lazy assembly figures of one module: functions and code bytes assembled lazily, cycles.
#[derive(Debug, Clone, Copy, Default)]
pub struct LazyStats {
    /// Functions assembled lazily.
    pub functions: usize,
    /// Their code bytes.
    pub bytes: usize,
    /// TSC cycles spent assembling and mapping them.
    pub cycles: u64,
}

/// `code`'s lazy assembly figures.
pub fn stats(code: &KernelCode) -> LazyStats {
    let l = code.lazy.lock();
    LazyStats {
        functions: l.regions.len(),
        bytes: l.bytes,
        cycles: l.cycles,
    }
}

fn vm_error(e: crate::mem::vm::VmError) -> CompileError {
    CompileError::Unsupported(alloc::format!("mapping lazily assembled code: {e}"))
}

/// Assembles function `index` of `module` (whose code is `code`) unless done already: the
/// `CodeMemory::assemble_lazy` of kernel code.
pub fn assemble_function(
    code: &KernelCode,
    module: &CompiledModule,
    index: u32,
) -> Result<(), CompileError> {
    let mut lazy = code.lazy.lock();
    if lazy.done.get(index as usize).copied().unwrap_or(true) {
        return Ok(());
    }
    let cell = code
        .func_cell(index)
        .ok_or_else(|| CompileError::Unsupported("no code cell".into()))?;
    let start = crate::arch::cpu::rdtsc();
    let f = atoll_pae::lazy::assemble(module, index)?;
    let mut region = CodeRegion::reserve(f.code.len() as u64).map_err(vm_error)?;
    if let Err(e) = region.install(&f.code, frames::alloc) {
        region.free();
        return Err(vm_error(e));
    }
    if let Err(e) = crate::island::add_lazy(code.base(), region.base(), &f.code, &f.meta, cell) {
        log::warn!("lazily assembled function {index}: no island ({e:?})");
    }
    lazy.done[index as usize] = true;
    lazy.bytes += f.code.len();
    let pages = region.bytes();
    lazy.regions.push(region);
    lazy.cycles += crate::arch::cpu::rdtsc() - start;
    drop(lazy);
    // The chunk's cache entry grows by the new pages (outside the lazy lock: the cache may
    // evict other chunks, which takes the islands lock).
    super::cache::grew(code.base(), pages);
    Ok(())
}

/// One chunk of a task's dependency set, analyzed.
struct Analyzed {
    name: String,
    desc: ModuleDesc,
    graph: CallGraph,
}

/// One chunk of a plan: its name, which functions the export reaches, its description (the
/// module validated and parsed once, for `atoll_pae::compile_parsed`).
pub type Planned = (String, Vec<bool>, ModuleDesc);

/// For `task` (`chunk.export`): the chunks it needs (providers first) and, for each, which
/// functions the export reaches.
pub fn plan(task: &str) -> Result<Vec<Planned>, PaeError> {
    let (chunk, export) = task
        .split_once('.')
        .ok_or_else(|| PaeError::BadTaskName(task.into()))?;
    let order = super::dependency_order(chunk)?;
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage);
    };
    let analyzed = order
        .iter()
        .map(|name| {
            let view = image
                .chunk(name)
                .ok_or_else(|| PaeError::NoChunk(name.clone()))?;
            let (desc, graph) =
                reach::analyze(view.module).map_err(|e| PaeError::Compile(name.clone(), e))?;
            Ok(Analyzed {
                name: name.clone(),
                desc,
                graph,
            })
        })
        .collect::<Result<Vec<_>, PaeError>>()?;
    let main = analyzed.len() - 1;
    let root = analyzed[main]
        .desc
        .export_func(export)
        .ok_or_else(|| PaeError::NoExport(task.into()))?;
    let linked: Vec<Linked<'_>> = analyzed
        .iter()
        .map(|a| Linked {
            desc: &a.desc,
            graph: &a.graph,
        })
        .collect();
    let resolve = |_: usize, imp: &atoll_pae::module::ImportDesc| {
        let p = analyzed.iter().position(|a| a.name == imp.module)?;
        Some((p, analyzed[p].desc.export_func(&imp.name)?))
    };
    let sets = reach::reachable_across(&linked, main, root, &resolve);
    drop(linked);
    Ok(analyzed
        .into_iter()
        .zip(sets)
        .map(|(a, set)| (a.name, set, a.desc))
        .collect())
}

/// One way of preparing a task, measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Startup {
    /// TSC cycles from the request to instances ready to run the export (analysis, assembly,
    /// mapping, instantiation), the median of the rounds.
    pub cycles: u64,
    /// Defined functions assembled up front, over the task's chunks.
    pub functions: usize,
    /// Defined functions left as lazy stubs.
    pub stubs: usize,
    /// Code bytes mapped up front.
    pub code_bytes: usize,
}

/// Prepares `task` from nothing (nothing cached, registered or kept): whole modules, or from
/// the request. A command chunk's WASI imports bind to a fresh context made before the clock
/// starts.
fn prepare_fresh(task: &str, from_request: bool) -> Result<Startup, PaeError> {
    let (chunk, _) = task
        .split_once('.')
        .ok_or_else(|| PaeError::BadTaskName(task.into()))?;
    let mut wasi = crate::wasi::command_context(chunk, None, &[], crate::wasi::Stdin::Empty)
        .ok()
        .map(|(ctx, _)| WasiLink::new(ctx));
    let start = crate::arch::cpu::rdtsc();
    type Subset = Option<(Vec<bool>, ModuleDesc)>;
    let chunks: Vec<(String, Subset)> = if from_request {
        plan(task)?
            .into_iter()
            .map(|(n, e, d)| (n, Some((e, d))))
            .collect()
    } else {
        super::dependency_order(chunk)?
            .into_iter()
            .map(|n| (n, None))
            .collect()
    };
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage);
    };
    let options = super::options();
    let mut assembled = Vec::with_capacity(chunks.len());
    for (name, eager) in chunks {
        let view = image
            .chunk(&name)
            .ok_or_else(|| PaeError::NoChunk(name.clone()))?;
        let module = match eager {
            Some((eager, desc)) => {
                atoll_pae::compile_parsed(view.module, desc, &options, None, &eager)
            }
            None => atoll_pae::compile(view.module, &options),
        }
        .map_err(|e| PaeError::Compile(name.clone(), e))?;
        let code = KernelCode::new(&module.code, &module.func_offsets)?;
        let a = Assembled {
            chunk: name.clone(),
            module: Arc::new(module),
            code: Arc::new(code),
            assemble_cycles: 0,
            wasm_bytes: view.module.len(),
        };
        assembled.push((name, Arc::new(a)));
    }
    let mut instances = alloc::collections::BTreeMap::new();
    super::instantiate_into(
        &mut instances,
        &mut atoll_pae::runtime::SigRegistry::default(),
        &assembled,
        wasi.as_mut(),
        None,
    )?;
    let cycles = crate::arch::cpu::rdtsc() - start;
    drop(instances);
    let mut s = Startup {
        cycles,
        ..Startup::default()
    };
    for (_, a) in &assembled {
        let m = &a.module;
        let stubs = m.stub_count();
        s.stubs += stubs;
        s.functions += m.funcs.len() - m.desc.func_imports as usize - stubs;
        s.code_bytes += m.code.len();
    }
    Ok(s)
}

/// Prepares `task` from nothing `rounds` times each way, alternating whole-module assembly and
/// assembly from the request, in one run: `(whole, from_request)`, median cycles.
pub fn measure_startup(task: &str, rounds: usize) -> Result<(Startup, Startup), PaeError> {
    let rounds = rounds.clamp(1, 99);
    let mut runs: [Vec<Startup>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, from_request) in [false, true].into_iter().enumerate() {
            runs[i].push(prepare_fresh(task, from_request)?);
        }
    }
    let median = |v: &mut Vec<Startup>| {
        v.sort_unstable_by_key(|s| s.cycles);
        v[v.len() / 2]
    };
    Ok((median(&mut runs[0]), median(&mut runs[1])))
}
