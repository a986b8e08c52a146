//! Code islands in the kernel: every assembled chunk's functions are registered as islands
//! (one per function) in one kernel-wide [`IslandSet`], fed with block counters (when a task
//! ends) and timer-tick RIP samples, and moved by the relocation engine ([`reloc`]).
//!
//! The set sits behind one lock. The timer tick only `try_lock`s it (a sample is dropped when
//! the lock is busy), so a holder never needs interrupts off; the relocation engine holds the
//! lock from preparing a move to releasing the world, so the stop-the-world callback reaches
//! the set without taking a lock a parked core could hold. Protocol: `docs/relocation.md`.

#[allow(unsafe_code)]
mod memory;
pub mod observe;
pub mod place;
pub mod regroup;
pub mod reloc;
pub mod stress;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_island::{Grouping, IslandError, IslandId, IslandSet, ModuleId};
use spin::Mutex;

use crate::pae::Assembled;
use crate::smp::MAX_CORES;

pub use memory::CodeRegion;

/// One registered chunk module.
#[derive(Debug)]
struct ModuleInfo {
    chunk: String,
    /// `None` once the module is unregistered (its chunk evicted): dropping this may be what
    /// unmaps its code.
    assembled: Option<Arc<Assembled>>,
    /// Block counters summed over every finished task's instance.
    counters: Vec<u64>,
}

/// The kernel's islands and the relocation engine's state.
#[derive(Debug, Default)]
struct KernelIslands {
    set: IslandSet,
    modules: Vec<ModuleInfo>,
    /// Where islands that have moved out of their module's pages live, by island.
    places: BTreeMap<IslandId, place::Place>,
    /// 2 MiB code pages (with the node their frame is on); `None` once freed, so indices in
    /// `places` stay valid.
    large: Vec<Option<(Option<u32>, memory::LargePage)>>,
    stats: reloc::RelocStats,
    regroup: regroup::RegroupStats,
    /// Counters of instances running now (their tasks have not ended).
    live: Vec<LiveCounters>,
    /// TSC when the profile's measurement window last closed.
    window_start: u64,
    /// Every instance alive (from instantiation to drop), by key: the code addresses they
    /// hold by value (tables, element segments, imports bound to other instances) are
    /// re-targeted when an island moves.
    instances: Vec<(u64, usize)>,
    /// Copies islands left in pages of their own, kept for a move back, by island and node.
    kept: BTreeMap<place::KeptKey, memory::KeptRegion>,
    /// Their keys, oldest first (for the bound).
    kept_order: alloc::collections::VecDeque<place::KeptKey>,
}

/// The block counters of one running instance: `len` `u64`s at `addr`, written by its
/// generated code. Registered when its task starts and removed (under the islands lock) when it
/// ends, before the instance can be dropped, so they are readable while registered.
#[derive(Debug)]
struct LiveCounters {
    key: u64,
    module: usize,
    addr: usize,
    len: usize,
}

static NEXT_LIVE_KEY: AtomicU64 = AtomicU64::new(1);

/// Registers instances while no move can be in progress (see [`instantiating`]).
#[derive(Debug)]
pub struct Registrar<'a> {
    k: &'a mut KernelIslands,
}

impl Registrar<'_> {
    /// Registers the instance at `addr` (a `pae::runtime::Instance` in a `Box`, alive until
    /// [`unregister_instances`] is called with the returned key).
    pub fn register_instance(&mut self, addr: usize) -> u64 {
        let key = NEXT_LIVE_KEY.fetch_add(1, Ordering::Relaxed);
        self.k.instances.push((key, addr));
        key
    }
}

/// Runs `f` (instantiating modules and registering the instances) with the islands lock held:
/// no move is in progress or starts meanwhile, so the entry cells `f` reads stay current until
/// its instances are registered, and later moves re-target what they hold. `f` must not call
/// any other function of this module.
pub fn instantiating<R>(f: impl FnOnce(&mut Registrar<'_>) -> R) -> R {
    with(|k| f(&mut Registrar { k }))
}

/// The instances registered under `keys` are about to be dropped.
pub fn unregister_instances(keys: &[u64]) {
    if keys.is_empty() {
        return;
    }
    with(|k| k.instances.retain(|(key, _)| !keys.contains(key)));
}

impl KernelIslands {
    fn large_page(&mut self, index: usize) -> Option<&mut memory::LargePage> {
        self.large.get_mut(index)?.as_mut().map(|(_, page)| page)
    }
}

static ISLANDS: Mutex<Option<KernelIslands>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut KernelIslands) -> R) -> R {
    let mut guard = ISLANDS.lock();
    f(guard.get_or_insert_with(KernelIslands::default))
}

/// Registers an assembled chunk's functions as islands (one per function).
pub fn register(assembled: &Arc<Assembled>) -> Result<ModuleId, IslandError> {
    with(|k| {
        let id = k.set.add_module(
            &assembled.module,
            assembled.code.base(),
            Grouping::PerFunction,
        )?;
        k.modules.push(ModuleInfo {
            chunk: assembled.chunk.clone(),
            assembled: Some(assembled.clone()),
            counters: alloc::vec![0; assembled.module.counter_slots.len()],
        });
        Ok(id)
    })
}

/// The block counters of `chunk`'s resident module, summed over its finished tasks, with
/// what each counts (`None` if it is not assembled).
pub fn block_counts(chunk: &str) -> Option<(Vec<u64>, Vec<atoll_pae::CounterSlot>)> {
    with(|k| {
        let m = k
            .modules
            .iter()
            .find(|m| m.assembled.is_some() && m.chunk == chunk)?;
        let slots = m.assembled.as_ref()?.module.counter_slots.clone();
        Some((m.counters.clone(), slots))
    })
}

/// Drops `module` (its chunk was evicted from the cache): its islands are retired, copies of
/// them outside the module's pages are freed, and the registry lets go of its `Assembled`, so
/// its code is unmapped once no one else holds it. The caller guarantees that no thread runs
/// or can return into the module (the cache evicts only unpinned chunks, and every task pins
/// its chunks while it runs).
pub fn unregister(module: ModuleId) {
    let dropped = with(|k| {
        let gone = k.set.retire_module(module);
        for (id, base, len) in gone {
            if let Some(p) = k.places.remove(&id) {
                place::retire(k, Some(p), base, len as usize, None);
            }
            place::forget_kept(k, id.0);
        }
        k.live.retain(|l| l.module != module.0 as usize);
        let m = k.modules.get_mut(module.0 as usize)?;
        m.counters = Vec::new();
        m.assembled.take()
    });
    // Outside the islands lock: unmapping the code shoots down other cores' TLBs.
    drop(dropped);
}

/// Function `meta.index` of the module whose code starts at `module_base` was assembled
/// lazily into `code`, mapped at `addr`: with the islands lock held, registers it as an island
/// of its own (when the module has islands) and then points `cell` (the function's code cell) at
/// it. Holding the lock orders the store with moves: a move of the function's stub, which
/// re-points the cell too, is either complete before or starts after (and then leaves the cell
/// alone: it no longer points into the stub). The cell is stored even when registering fails
/// (the error says why the function has no island).
pub fn add_lazy(
    module_base: u64,
    addr: u64,
    code: &[u8],
    meta: &atoll_pae::FunctionMeta,
    cell: &core::sync::atomic::AtomicUsize,
) -> Result<Option<IslandId>, IslandError> {
    with(|k| {
        let module = (0..k.modules.len() as u32).map(ModuleId).find(|&m| {
            // A retired module's range may have been reused by a newer one.
            k.modules[m.0 as usize].assembled.is_some()
                && k.set.module_code(m).is_some_and(|(b, _)| b == module_base)
        });
        let island = module
            .map(|m| k.set.add_lazy_function(m, code, addr, meta))
            .transpose();
        cell.store(addr as usize, Ordering::Release);
        island
    })
}

/// A task is about to run an instance of `chunk` whose block counters are `counters`: they are
/// read live (by `islands`) until [`end_counters`] with the returned key. The caller keeps the
/// counters where they are (the instance alive, its counter vector unchanged in size) until then.
pub fn begin_counters(chunk: &str, counters: &[u64]) -> Option<u64> {
    with(|k| {
        let module = k
            .modules
            .iter()
            .position(|m| m.assembled.is_some() && m.chunk == chunk)?;
        let key = NEXT_LIVE_KEY.fetch_add(1, Ordering::Relaxed);
        k.live.push(LiveCounters {
            key,
            module,
            addr: counters.as_ptr() as usize,
            len: counters.len(),
        });
        Some(key)
    })
}

/// The task's instance of `chunk` is done: its final `counters` join the module's totals and
/// stop being read live (`key` from [`begin_counters`], if it had one), in one step, so a
/// reader never counts them twice or not at all.
pub fn end_counters(key: Option<u64>, chunk: &str, counters: &[u64]) {
    with(|k| {
        if let Some(key) = key {
            k.live.retain(|l| l.key != key);
        }
        let Some(m) = k
            .modules
            .iter()
            .position(|m| m.assembled.is_some() && m.chunk == chunk)
        else {
            return;
        };
        let info = &mut k.modules[m];
        for (total, c) in info.counters.iter_mut().zip(counters) {
            *total = total.wrapping_add(*c);
        }
        k.set.feed_counters(ModuleId(m as u32), &info.counters);
    })
}

/// Module `m`'s block counters: its finished tasks' totals plus its running instances'
/// counters as they are now.
fn module_counters(k: &KernelIslands, m: usize) -> Vec<u64> {
    let mut sum = k.modules[m].counters.clone();
    for l in k.live.iter().filter(|l| l.module == m) {
        for (i, total) in sum.iter_mut().enumerate().take(l.len) {
            *total = total.wrapping_add(memory::read_counter(l.addr, i));
        }
    }
    sum
}

/// Feeds every module's islands with its finished tasks' totals plus its running instances'
/// counters as they are now.
fn feed_live(k: &mut KernelIslands) {
    for m in 0..k.modules.len() {
        if k.modules[m].assembled.is_none() {
            continue;
        }
        let sum = module_counters(k, m);
        k.set.feed_counters(ModuleId(m as u32), &sum);
    }
}

static LAST_TICK_TSC: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static SAMPLES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// The timer tick on `core` interrupted code at `rip` at TSC `now`: the cycles since the
/// previous tick go to the island holding `rip`. Never waits: a busy set drops the sample.
pub fn sample_tick(core: usize, rip: u64, now: u64) {
    let Some(last) = LAST_TICK_TSC.get(core) else {
        return;
    };
    let prev = last.swap(now, Ordering::Relaxed);
    if prev == 0 {
        return;
    }
    match ISLANDS.try_lock() {
        Some(mut guard) => {
            if let Some(k) = guard.as_mut() {
                let cycles = now.saturating_sub(prev);
                if let Some(id) = k.set.record_sample(rip, cycles) {
                    observe::note_core_sample(core, id, cycles);
                }
            }
        }
        None => {
            SAMPLES_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One island as `islands` shows it.
#[derive(Debug, Clone)]
pub struct IslandView {
    /// Its id.
    pub id: u32,
    /// Its chunk.
    pub chunk: String,
    /// Its function(s).
    pub function: String,
    /// Its first byte.
    pub address: u64,
    /// Its length.
    pub size_bytes: u32,
    /// Page size of its code, from the page tables.
    pub page_bytes: u64,
    /// Home core, when it has one.
    pub core: Option<u32>,
    /// Calls (entry counters, from finished tasks).
    pub calls: u64,
    /// Block executions.
    pub blocks: u64,
    /// Cycles attributed by timer samples.
    pub sampled_cycles: u64,
    /// Moves committed.
    pub moves: u64,
    /// Page size its environment records (the page tables' answer is `page_bytes`).
    pub env_page_bytes: u64,
    /// NUMA node its environment records, when placed on one.
    pub node: Option<u32>,
    /// NUMA node of the memory its first byte is in, from the page tables and the SRAT.
    pub memory_node: Option<u32>,
    /// Calls per second over the last closed window.
    pub calls_per_second: u64,
    /// Sampled cycles per second over the last closed window.
    pub cycles_per_second: u64,
    /// Sampled cycles per call.
    pub cycles_per_call: Option<u64>,
    /// Relocation priority (`Profile::priority`).
    pub priority: u64,
    /// Islands it calls directly.
    pub calls_islands: Vec<u32>,
    /// Islands that call it directly.
    pub called_by: Vec<u32>,
    /// Imports it calls (kernel functions or other chunks' exports), by import index.
    pub imports: Vec<u32>,
    /// Runtime helpers it calls.
    pub libcalls: u32,
    /// Whether it makes `call_indirect` calls.
    pub indirect_calls: bool,
    /// Its last moves, oldest first: (from, to, page bytes after, core after, pause cycles).
    pub history: Vec<(u64, u64, u64, Option<u32>, u64)>,
}

/// Every island (of `chunk`, if given).
pub fn views(chunk: Option<&str>) -> Vec<IslandView> {
    with(|k| {
        feed_live(k);
        // Rates cover the time since the last window closed, at least a second.
        let now = crate::arch::cpu::rdtsc();
        let hz = crate::time::tsc_hz();
        if k.window_start == 0 {
            k.window_start = now;
        } else if now.saturating_sub(k.window_start) >= hz {
            k.set.close_window(now - k.window_start, hz);
            k.window_start = now;
        }
        k.set
            .live_islands()
            .filter_map(|i| {
                let m = &k.modules[i.module.0 as usize];
                if chunk.is_some_and(|c| c != m.chunk) {
                    return None;
                }
                let function = i
                    .func_indices()
                    .map(|f| func_name(m, f))
                    .collect::<Vec<_>>()
                    .join("+");
                let translation =
                    crate::arch::physmem::translate(atoll_kcore::addr::VirtAddr(i.base()));
                let page_bytes = translation.map_or(0, |t| t.page_bytes);
                let memory_node = translation.and_then(|t| crate::mem::numa::node_of_addr(t.phys));
                Some(IslandView {
                    id: i.id.0,
                    chunk: m.chunk.clone(),
                    function,
                    address: i.base(),
                    size_bytes: i.layout.len,
                    page_bytes,
                    core: i.env.core,
                    calls: i.profile.calls,
                    blocks: i.profile.block_count,
                    sampled_cycles: i.profile.sampled_cycles,
                    moves: i.history.total(),
                    env_page_bytes: i.env.page_size.bytes(),
                    node: i.env.numa_node,
                    memory_node,
                    calls_per_second: i.profile.calls_per_second,
                    cycles_per_second: i.profile.cycles_per_second,
                    cycles_per_call: i.profile.cycles_per_call(),
                    priority: i.profile.priority(),
                    calls_islands: i.deps.calls.iter().map(|d| d.0).collect(),
                    called_by: i.deps.called_by.iter().map(|d| d.0).collect(),
                    imports: i.deps.imports.clone(),
                    libcalls: i.deps.libcalls.count_ones(),
                    indirect_calls: i.deps.indirect_calls,
                    history: i
                        .history
                        .iter()
                        .map(|h| {
                            (
                                h.from.address,
                                h.to.address,
                                h.to.page_size.bytes(),
                                h.to.core,
                                h.pause_cycles,
                            )
                        })
                        .collect(),
                })
            })
            .collect()
    })
}

fn func_name(m: &ModuleInfo, index: u32) -> String {
    let Some(assembled) = &m.assembled else {
        return alloc::format!("func{index}");
    };
    let module = &assembled.module;
    if let Some(name) = module
        .funcs
        .get(index as usize)
        .and_then(|f| f.name.clone())
    {
        return name;
    }
    module
        .desc
        .exports
        .iter()
        .find(|e| e.index == index && e.kind == atoll_pae::module::ExternalKind::Func)
        .map_or_else(|| alloc::format!("func{index}"), |e| e.name.clone())
}

/// If `addr` lies in code an island has left, prints a line naming the island and returns
/// `true` (for fault reports). Never waits for the lock and allocates nothing: a fault may come
/// while either is held.
pub fn report_stale(addr: u64) -> bool {
    let Some(guard) = ISLANDS.try_lock() else {
        return false;
    };
    let Some(k) = guard.as_ref() else {
        return false;
    };
    let Some(island) = k.set.vacated_by(addr).and_then(|id| k.set.island(id)) else {
        return false;
    };
    let m = &k.modules[island.module.0 as usize];
    let Some(assembled) = m.assembled.as_ref() else {
        return false;
    };
    let func = island.layout.funcs.first().map_or(0, |f| f.index);
    let name = assembled
        .module
        .funcs
        .get(func as usize)
        .and_then(|f| f.name.as_deref())
        .or_else(|| {
            assembled
                .module
                .desc
                .exports
                .iter()
                .find(|e| e.index == func && e.kind == atoll_pae::module::ExternalKind::Func)
                .map(|e| e.name.as_str())
        })
        .unwrap_or("?");
    crate::eprintln!(
        "*** STALE CODE: {addr:#x} was left by island {} ({}.{name}, function {func}), now at {:#x}",
        island.id.0,
        m.chunk,
        island.base()
    );
    true
}

/// Jumps into the copy island `id` left last (debug: a stale reference must fault, and the
/// report must name the island). Returns only if there is no such copy.
pub fn probe_old(id: u32) -> Result<core::convert::Infallible, reloc::RelocError> {
    let addr = with(|k| {
        let island = k
            .set
            .island(IslandId(id))
            .ok_or(reloc::RelocError::NoSuchIsland(id))?;
        let from = island
            .history
            .iter()
            .last()
            .map(|m| m.from.address)
            .ok_or(reloc::RelocError::NeverMoved(id))?;
        match (k.set.locate(from), k.set.vacated_by(from)) {
            (atoll_island::Location::Foreign, Some(_)) => Ok(from),
            _ => Err(reloc::RelocError::NeverMoved(id)),
        }
    })?;
    crate::println!("jumping into the old copy of island {id} at {addr:#x}");
    memory::execute_stale(addr)
}

/// Page size of island `id`'s environment (0 if there is no such island).
pub fn page_bytes_of(id: u32) -> u64 {
    with(|k| {
        k.set
            .island(IslandId(id))
            .map_or(0, |i| i.env.page_size.bytes())
    })
}
