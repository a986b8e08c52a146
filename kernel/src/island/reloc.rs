//! The relocation engine: moves one island, while it runs, to fresh 4 KiB pages, to a slot in a
//! 2 MiB page, to another NUMA node's memory, or to another core (whose threads follow it).
//!
//! Outside the pause (may allocate): reserve the new place (`place::Dest`), `prepare_move`
//! (re-encode for the new address), write the copy through the direct map (mapped read-execute),
//! translate every call site to patch (a [`CodeAlias`]), allocate the reference buffer. Inside
//! the pause (no allocation, no lock, no printing): walk every thread (`find_references`), and
//! only if no thread needs a retry, rewrite RIPs and return-address slots, patch call sites
//! through the aliases, re-point the entry cells, `commit_move`, request TLB flush and
//! serialization. A retry changes nothing; the round is run again (bounded, counted). After the
//! release: the old copy becomes `int3` (it shares its pages) or is unmapped (its own pages), so
//! a missed reference faults instead of running stale code; then the island's threads move to
//! its new home core, if the move named one.

use alloc::vec::Vec;
use core::fmt;

use atoll_island::{
    Environment, IslandError, IslandId, IslandSet, Location, MoveStats, PageSize, PreparedMove,
    PreparedReshape, RefKind, Reference, Relocation, RetryReason, ThreadContext, Translation, Walk,
    WalkEnd, find_references_to,
};

use super::memory::{self, CodeAlias, ThreadStack};
use super::place::{self, Dest, OldCopy, Target};
use super::{ISLANDS, KernelIslands};
use crate::arch::cpu;
use crate::arch::trap::TrapFrame;
use crate::mem::vm::VmError;
use crate::pae::KernelCode;
use crate::sched::{self, MAX_THREADS, SLOTS};
use crate::smi::rendezvous::flush;
use crate::smi::{self, SmiError, ThreadContext as SmiContext, World};
use crate::time;

/// Rounds a move may retry before it gives up.
pub const MAX_RETRIES: u32 = 1000;
/// Rendezvous timeouts a move sits out before it gives up (each costs the SMI deadline).
pub const MAX_TIMEOUTS: u32 = 5;
/// Frames one walk follows at most.
const MAX_FRAMES: usize = 4096;
/// References one round can hold (all threads together).
const REF_CAPACITY: usize = 16 * 1024;
/// Wait between a retried round and the next, for threads to leave their windows.
const RETRY_WAIT_US: u64 = 200;

/// Why a move did not happen. Nothing was changed in any case.
#[derive(Debug)]
pub enum RelocError {
    /// No island with this id.
    NoSuchIsland(u32),
    /// The island crate refused (layout, copy, patch, overlap).
    Island(IslandError),
    /// Pages for the copy could not be had.
    Vm(VmError),
    /// The island's code (or a call site) is not mapped.
    Unmapped(u64),
    /// The rendezvous failed.
    Smi(SmiError),
    /// Every round needed a retry; the last reason.
    TooManyRetries(RetryWhy),
    /// A call site does not hold the displacement the plan expects.
    CallSiteChanged(u64),
    /// The island has no old copy to probe (it never moved, or its old place is code again).
    NeverMoved(u32),
    /// `core N` names a core that is not online.
    NoSuchCore(u32),
    /// `node N` names a node the machine does not have.
    NoSuchNode(u32),
    /// A merge of an island with itself or with one of another module.
    NotOneModule(u32, u32),
    /// A split point that leaves a part empty: island, point, functions.
    BadSplit(u32, usize, usize),
    /// Both parts of a split asked for the 2 MiB page (one slot is handed out at a time).
    BothLarge,
}

impl From<IslandError> for RelocError {
    fn from(e: IslandError) -> Self {
        Self::Island(e)
    }
}

impl From<VmError> for RelocError {
    fn from(e: VmError) -> Self {
        Self::Vm(e)
    }
}

impl fmt::Display for RelocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchIsland(id) => write!(f, "no island {id}"),
            Self::Island(e) => write!(f, "island: {e:?}"),
            Self::Vm(e) => write!(f, "code pages: {e}"),
            Self::Unmapped(a) => write!(f, "code at {a:#x} is not mapped"),
            Self::Smi(e) => write!(f, "stop-the-world: {e}"),
            Self::TooManyRetries(why) => {
                write!(
                    f,
                    "gave up after {MAX_RETRIES} retried rounds (last: {why:?})"
                )
            }
            Self::CallSiteChanged(a) => write!(f, "call site at {a:#x} changed"),
            Self::NeverMoved(id) => write!(f, "island {id} has no old copy to probe"),
            Self::NoSuchCore(c) => write!(f, "core {c} is not online"),
            Self::NotOneModule(a, b) => {
                write!(f, "islands {a} and {b} are not two islands of one module")
            }
            Self::BadSplit(id, at, n) => write!(
                f,
                "island {id} has {n} functions: a split point must be 1..{}, not {at}",
                n.saturating_sub(1)
            ),
            Self::BothLarge => f.write_str("only one part of a split can go to the 2 MiB page"),
            Self::NoSuchNode(n) => {
                write!(f, "no NUMA node {n} (nodes: {})", place::numa_nodes())
            }
        }
    }
}

/// Why a round was retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryWhy {
    /// The walk of the thread in `slot` could not tell.
    Walk {
        /// Scheduler slot.
        slot: usize,
        /// The walk's reason.
        reason: RetryReason,
    },
    /// The thread's core was stopped in an interrupt handler (or with interrupts off): its
    /// own context is a trap frame further up, not walked yet.
    InHandler {
        /// Scheduler slot.
        slot: usize,
    },
    /// The thread is live but neither parked nor saved (a core is switching it).
    Unreachable {
        /// Scheduler slot.
        slot: usize,
    },
    /// The thread's stack bounds are unknown and it is in generated code.
    NoStack {
        /// Scheduler slot.
        slot: usize,
    },
    /// The thread is in foreign code called from generated code, where `rbp` is not trusted.
    InForeignCode {
        /// Scheduler slot.
        slot: usize,
    },
    /// Some core did not reach the rendezvous in time (under TCG a busy host can keep a vCPU
    /// off its host core for a second): the round changed nothing.
    Timeout,
}

impl RetryWhy {
    /// Index into [`RelocStats::retries_by_reason`].
    fn index(self) -> usize {
        match self {
            Self::Walk {
                reason: RetryReason::InDispatchWindow { .. },
                ..
            } => 6,
            Self::Walk { .. } => 0,
            Self::InHandler { .. } => 1,
            Self::Unreachable { .. } => 2,
            Self::NoStack { .. } => 3,
            Self::Timeout => 4,
            Self::InForeignCode { .. } => 5,
        }
    }
}

/// Names of the retry reasons, in [`RelocStats::retries_by_reason`] order.
pub const RETRY_REASONS: [&str; 7] = [
    "walk",
    "in_handler",
    "unreachable",
    "no_stack",
    "rendezvous_timeout",
    "in_foreign_code",
    // A thread between a jump table's `lea rax, [rip + ..]` and its `jmp rax` (the walk's
    // `InDispatchWindow`; counted apart from `walk` so the tests can see it happen).
    "dispatch_window",
];

/// What one move did.
#[derive(Debug, Clone, Copy)]
pub struct MoveReport {
    /// The island.
    pub island: u32,
    /// Old first byte.
    pub from: u64,
    /// New first byte.
    pub to: u64,
    /// Page size of the new copy.
    pub page_bytes: u64,
    /// Home core after the move.
    pub core: Option<u32>,
    /// NUMA node of the new copy's memory, when placed on one.
    pub node: Option<u32>,
    /// Threads moved to the home core after the release.
    pub threads_migrated: u32,
    /// Bytes of the new copy.
    pub bytes: u32,
    /// Bytes written to make it: all of them in fresh memory, only those that differ when the
    /// island's kept copy at that environment was reused (differential copy).
    pub bytes_written: u32,
    /// The island's kept copy at that environment was reused.
    pub reused_copy: bool,
    /// Threads whose saved RIP was inside and was rewritten.
    pub rips_rewritten: u32,
    /// Return-address slots rewritten.
    pub return_addresses_rewritten: u32,
    /// `call rel32` sites in other islands re-targeted.
    pub call_sites_patched: u32,
    /// Entry cells re-pointed.
    pub cells_retargeted: u32,
    /// Code addresses held by instances (table entries, imports) re-pointed.
    pub code_pointers_retargeted: u32,
    /// Threads walked in the successful round.
    pub threads_walked: u32,
    /// Stack frames their walks followed.
    pub frames_walked: u32,
    /// Rounds retried before it.
    pub retries: u32,
    /// First retry reason, if any.
    pub first_retry: Option<RetryWhy>,
    /// Trigger to all cores resumed, in TSC cycles (0 if the round's figures were lost).
    pub pause_cycles: u64,
    /// Trigger to all cores parked (part of the pause).
    pub rendezvous_cycles: u64,
    /// Cycles the callback itself took (walks, rewrites, commit).
    pub callback_cycles: u64,
    /// The part of it spent finding references (every thread walked, call sites checked).
    pub walk_cycles: u64,
    /// What became of the old copy.
    pub old_copy: OldCopy,
}

/// Figures over every move, for `reloc-stats`.
#[derive(Debug, Clone, Default)]
pub struct RelocStats {
    /// Moves completed.
    pub count: u64,
    /// Moves refused or failed.
    pub failures: u64,
    /// Rounds retried (completed and failed moves).
    pub retries: u64,
    /// The same, by reason ([`RETRY_REASONS`]).
    pub retries_by_reason: [u64; 7],
    /// Threads moved to an island's new home core.
    pub threads_migrated: u64,
    /// Moves into a 2 MiB page.
    pub to_large: u64,
    /// Moves into 4 KiB pages.
    pub to_small: u64,
    /// Saved RIPs rewritten.
    pub rips_rewritten: u64,
    /// Return addresses rewritten.
    pub return_addresses_rewritten: u64,
    /// Call sites patched.
    pub call_sites_patched: u64,
    /// Code addresses held by instances re-pointed.
    pub code_pointers_retargeted: u64,
    /// Bytes of code moved.
    pub bytes_moved: u64,
    /// Bytes actually written for them (differential copies write fewer).
    pub bytes_written: u64,
    /// Moves that reused the island's kept copy.
    pub reused_copies: u64,
    /// Pause of every completed move, in TSC cycles.
    pub pause_cycles: Vec<u64>,
}

/// A snapshot of the figures, and how many instances are registered now.
pub fn stats() -> (RelocStats, usize) {
    super::with(|k| (k.stats.clone(), k.instances.len()))
}

/// Moves island `island` to `target` while it runs.
pub fn relocate(island: u32, target: Target) -> Result<MoveReport, RelocError> {
    let mut guard = ISLANDS.lock();
    let k = guard.get_or_insert_with(KernelIslands::default);
    let mut retries = Retries::default();
    let result = relocate_locked(k, IslandId(island), target, &mut retries);
    drop(guard);
    // The island's threads follow it to its new home core (outside the lock: migrating
    // kicks other cores and may wait).
    let result = result.map(|(mut report, threads)| {
        if let Some(core) = report.core.filter(|_| threads.migrate) {
            for &id in &threads.ids[..threads.count] {
                report.threads_migrated += u32::from(sched::migrate(id, core as usize).is_ok());
            }
        }
        report
    });
    super::with(|k| {
        record_retries(&mut k.stats, &retries);
        record(&mut k.stats, &result);
    });
    result
}

/// Retried rounds of one move.
#[derive(Debug, Default)]
pub(super) struct Retries {
    pub(super) total: u32,
    by_reason: [u32; 7],
}

/// The threads a move found in the island, to migrate after the release.
#[derive(Debug)]
pub(super) struct Followers {
    pub(super) migrate: bool,
    pub(super) ids: [u64; MAX_FOLLOWERS],
    pub(super) count: usize,
}

impl Followers {
    /// The threads `plan`'s successful round found inside the moved code.
    pub(super) fn of(plan: &Plan<'_>, migrate: bool) -> Self {
        let mut f = Self {
            migrate,
            ids: [0; MAX_FOLLOWERS],
            count: 0,
        };
        for tr in plan.threads.iter().take(MAX_FOLLOWERS) {
            let tid = SLOTS[tr.slot]
                .id
                .load(core::sync::atomic::Ordering::Acquire);
            if tid != 0 {
                f.ids[f.count] = tid;
                f.count += 1;
            }
        }
        f
    }
}

/// Threads a move migrates at most (the rest stay where they are).
const MAX_FOLLOWERS: usize = 64;

pub(super) fn record_retries(s: &mut RelocStats, retries: &Retries) {
    s.retries += u64::from(retries.total);
    for (all, n) in s.retries_by_reason.iter_mut().zip(retries.by_reason) {
        *all += u64::from(n);
    }
}

fn record(s: &mut RelocStats, result: &Result<MoveReport, RelocError>) {
    match result {
        Ok(r) => {
            s.count += 1;
            s.threads_migrated += u64::from(r.threads_migrated);
            if r.page_bytes == PageSize::Size2M.bytes() {
                s.to_large += 1;
            } else {
                s.to_small += 1;
            }
            s.rips_rewritten += u64::from(r.rips_rewritten);
            s.return_addresses_rewritten += u64::from(r.return_addresses_rewritten);
            s.call_sites_patched += u64::from(r.call_sites_patched);
            s.code_pointers_retargeted += u64::from(r.code_pointers_retargeted);
            s.bytes_moved += u64::from(r.bytes);
            s.bytes_written += u64::from(r.bytes_written);
            s.reused_copies += u64::from(r.reused_copy);
            s.pause_cycles.push(r.pause_cycles);
        }
        // Asking for an island, core or node that does not exist is bad input, not a failed
        // move.
        Err(
            RelocError::NoSuchIsland(_) | RelocError::NoSuchCore(_) | RelocError::NoSuchNode(_),
        ) => {}
        Err(_) => s.failures += 1,
    }
}

/// What one round's callback decided.
#[derive(Debug, Clone, Copy)]
enum Pause {
    NotRun,
    Retry(RetryWhy),
    Abort(u64),
    Done(Counts),
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    pub(super) rips: u32,
    pub(super) return_addresses: u32,
    pub(super) call_sites: u32,
    pub(super) cells: u32,
    code_pointers: u32,
    pub(super) threads: u32,
    frames: u32,
    callback_cycles: u64,
    walk_cycles: u64,
}

/// The references of one thread in the shared buffer.
#[derive(Debug, Clone, Copy)]
struct ThreadRefs {
    slot: usize,
    start: usize,
    count: usize,
    stack: ThreadStack,
}

/// A move, or a merge or split, prepared.
pub(super) enum Prepared {
    Move(PreparedMove),
    Reshape(PreparedReshape),
}

impl Prepared {
    fn rel(&self) -> &dyn Relocation {
        match self {
            Self::Move(p) => p,
            Self::Reshape(p) => p,
        }
    }

    fn translate(&self, addr: u64) -> Translation {
        self.rel().translate(addr)
    }

    fn commit(&mut self, set: &mut IslandSet, stats: MoveStats) -> Result<(), IslandError> {
        match self {
            Self::Move(p) => set.commit_move(p, stats),
            Self::Reshape(p) => set.commit_reshape(p, stats),
        }
    }
}

/// What the pause works on, all prepared before it.
pub(super) struct Plan<'a> {
    pub(super) prep: Prepared,
    code: &'a KernelCode,
    funcs: Vec<u32>,
    patches: Vec<(i32, i32, CodeAlias)>,
    refs: Vec<Reference>,
    threads: Vec<ThreadRefs>,
    me: usize,
}

impl<'a> Plan<'a> {
    /// A plan for `prep`: the entry cells of `funcs` (in `code`) and the call sites of
    /// `calls` are re-pointed.
    pub(super) fn new(
        prep: Prepared,
        code: &'a KernelCode,
        funcs: Vec<u32>,
        calls: &[atoll_island::patch::CallPatch],
    ) -> Result<Self, RelocError> {
        let patches = calls
            .iter()
            .map(|c| {
                CodeAlias::new(c.disp_addr, 4)
                    .map(|a| (c.old_rel32, c.new_rel32, a))
                    .ok_or(RelocError::Unmapped(c.disp_addr))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            prep,
            code,
            funcs,
            patches,
            refs: alloc::vec![Reference::EMPTY; REF_CAPACITY],
            threads: Vec::with_capacity(MAX_THREADS),
            me: sched::current_slot(),
        })
    }
}

/// What the successful round did.
pub(super) struct Rounds {
    pub(super) counts: Counts,
    pub(super) pause_cycles: u64,
    pub(super) rendezvous_cycles: u64,
    pub(super) first_retry: Option<RetryWhy>,
}

/// Stops the world until a round completes `plan` (retries bounded). On an error nothing
/// changed; the caller gives back the new place.
pub(super) fn run_rounds(
    k: &mut KernelIslands,
    plan: &mut Plan<'_>,
    retries: &mut Retries,
) -> Result<Rounds, RelocError> {
    let mut first_retry = None;
    loop {
        let mut outcome = Pause::NotRun;
        let (set, instances) = (&mut k.set, &k.instances);
        let figures = smi::stop_the_world(smi::DEFAULT_TIMEOUT_US, &mut |world| {
            outcome = pause(world, set, instances, plan);
        });
        match (outcome, figures) {
            (Pause::Done(counts), f) => {
                let (pause_cycles, rendezvous_cycles) =
                    f.map_or((0, 0), |f| (f.pause_cycles, f.rendezvous_cycles));
                return Ok(Rounds {
                    counts,
                    pause_cycles,
                    rendezvous_cycles,
                    first_retry,
                });
            }
            (Pause::Retry(why), _) => {
                first_retry.get_or_insert(why);
                retries.total += 1;
                retries.by_reason[why.index()] += 1;
                if retries.total >= MAX_RETRIES {
                    return Err(RelocError::TooManyRetries(why));
                }
                sched::sleep_us(RETRY_WAIT_US);
            }
            (Pause::Abort(addr), _) => return Err(RelocError::CallSiteChanged(addr)),
            // A core did not arrive: the callback did not run, nothing changed; try again a
            // few times (the late core counts itself late and leaves).
            (Pause::NotRun, Err(e @ SmiError::NotArrived(..))) => {
                first_retry.get_or_insert(RetryWhy::Timeout);
                retries.total += 1;
                retries.by_reason[RetryWhy::Timeout.index()] += 1;
                if retries.by_reason[RetryWhy::Timeout.index()] >= MAX_TIMEOUTS {
                    return Err(RelocError::Smi(e));
                }
            }
            (Pause::NotRun, Err(e)) => return Err(RelocError::Smi(e)),
            (Pause::NotRun, Ok(_)) => unreachable!("a round that succeeded ran its callback"),
        }
    }
}

fn relocate_locked(
    k: &mut KernelIslands,
    id: IslandId,
    target: Target,
    retries: &mut Retries,
) -> Result<(MoveReport, Followers), RelocError> {
    let island = k.set.island(id).ok_or(RelocError::NoSuchIsland(id.0))?;
    let module = &k.modules[island.module.0 as usize];
    let resolved = place::resolve(target, &island.env)?;
    let assembled = module
        .assembled
        .clone()
        .ok_or(RelocError::NoSuchIsland(id.0))?;
    let (old_base, old_len) = (island.base(), island.layout.len as usize);
    let funcs: Vec<u32> = island.func_indices().collect();
    let code = memory::read_code(old_base, old_len).ok_or(RelocError::Unmapped(old_base))?;
    // Re-encoding may lengthen branches; twice the size (and a little) always suffices.
    let old_node = island.env.numa_node;
    let mut dest = Dest::reserve(k, &resolved, old_len as u64 * 2 + 64, id.0)?;
    let reused_copy = matches!(dest, Dest::Reused { .. });
    let mut bytes_written = 0u64;
    let to = Environment {
        core: resolved.core,
        page_size: resolved.page,
        address: dest.address(),
        numa_node: resolved.node,
    };
    let prepared = k
        .set
        .prepare_move(id, &code, to)
        .map_err(RelocError::from)
        .and_then(|p| {
            dest.install(k, resolved.node, &p.code)
                .map(|written| {
                    bytes_written = written;
                    p
                })
                .map_err(RelocError::from)
        })
        .and_then(|p| {
            let calls = p.calls.clone();
            Plan::new(Prepared::Move(p), &assembled.code, funcs, &calls)
        });
    let mut plan = match prepared {
        Ok(x) => x,
        Err(e) => {
            dest.abandon(k);
            return Err(e);
        }
    };
    let rounds = match run_rounds(k, &mut plan, retries) {
        Ok(r) => r,
        Err(e) => {
            dest.abandon(k);
            return Err(e);
        }
    };
    let Rounds {
        counts,
        pause_cycles,
        rendezvous_cycles,
        first_retry,
    } = rounds;
    cpu::serialize();
    // Nothing refers to the old copy any more: make it fault if something still jumps there.
    let new_base = dest.address();
    let old_place = k.places.remove(&id);
    if let Some(place) = dest.into_place() {
        k.places.insert(id, place);
    }
    let old_copy = place::retire(k, old_place, old_base, old_len, Some((id.0, old_node)));
    let followers = Followers::of(&plan, resolved.migrate);
    let bytes = match &plan.prep {
        Prepared::Move(p) => p.code.len() as u32,
        Prepared::Reshape(_) => 0,
    };
    let report = MoveReport {
        island: id.0,
        from: old_base,
        to: new_base,
        page_bytes: resolved.page.bytes(),
        core: resolved.core,
        node: resolved.node,
        threads_migrated: 0,
        bytes,
        bytes_written: bytes_written as u32,
        reused_copy,
        rips_rewritten: counts.rips,
        return_addresses_rewritten: counts.return_addresses,
        call_sites_patched: counts.call_sites,
        cells_retargeted: counts.cells,
        code_pointers_retargeted: counts.code_pointers,
        threads_walked: counts.threads,
        frames_walked: counts.frames,
        retries: retries.total,
        first_retry,
        pause_cycles,
        rendezvous_cycles,
        callback_cycles: counts.callback_cycles,
        walk_cycles: counts.walk_cycles,
        old_copy,
    };
    Ok((report, followers))
}

/// Runs `f` on the context of the thread in `slot` (`World::with_thread_context`), with whether
/// it is the thread's own context: a saved frame always is; a parked frame is when interrupts
/// were on (else an interrupt handler was running on the thread's stack).
fn with_context<R>(
    world: &mut World,
    slot: usize,
    f: impl FnOnce(&mut TrapFrame, bool) -> R,
) -> Option<R> {
    world.with_thread_context(slot, |context| match context {
        SmiContext::Saved(frame) => f(frame, true),
        SmiContext::Parked { frame, .. } => {
            let own = frame.interrupts_were_enabled();
            f(frame, own)
        }
    })
}

/// The stop-the-world callback: no allocation, no lock, no printing.
fn pause(
    world: &mut World,
    set: &mut IslandSet,
    instances: &[(u64, usize)],
    plan: &mut Plan<'_>,
) -> Pause {
    let t0 = cpu::rdtsc();
    plan.threads.clear();
    let mut used = 0;
    let mut walked = 0;
    let mut frames_walked = 0u32;
    // Step 4: every thread's references, before anything is written.
    for (slot, t) in SLOTS.iter().enumerate() {
        if slot == plan.me || t.id.load(core::sync::atomic::Ordering::Acquire) == 0 {
            continue;
        }
        let bounds = t.stack_bounds();
        // Only a thread inside a call into generated code can hold references into an island.
        let in_generated = t.in_generated.load(core::sync::atomic::Ordering::Acquire);
        let (prep, refs) = (plan.prep.rel(), &mut plan.refs[used..]);
        let found = with_context(world, slot, |frame, own| {
            if !in_generated {
                return Ok((0, 0, None));
            }
            if !own {
                return Err(RetryWhy::InHandler { slot });
            }
            let ctx = ThreadContext {
                rip: frame.rip,
                rsp: frame.rsp,
                rbp: frame.rbp,
            };
            // In foreign code (a libcall, a host function, the kernel around the trampoline)
            // `rbp` is only as good as that code: precompiled `core` routines may use it as a
            // plain register. Nothing read through it is trusted: the thread leaves within the
            // call, and the round is retried.
            if matches!(set.locate(ctx.rip), Location::Foreign) {
                return Err(RetryWhy::InForeignCode { slot });
            }
            let Some((bottom, top)) = bounds else {
                return Err(RetryWhy::NoStack { slot });
            };
            let stack = ThreadStack { bottom, top };
            // Generated code is entered once per stack (through `invoke`; host functions never
            // call back into it), so the walk ends at the trampoline's frame: the kernel frames
            // older than it hold no reference into an island.
            match find_references_to(set, prep, ctx, &stack, MAX_FRAMES, refs, WalkEnd::Entry) {
                Walk::Complete { found, frames } => Ok((found, frames, Some(stack))),
                Walk::Retry(reason) => Err(RetryWhy::Walk { slot, reason }),
            }
        });
        match found {
            Some(Ok((count, frames, stack))) => {
                walked += 1;
                frames_walked += frames as u32;
                if let (true, Some(stack)) = (count > 0, stack) {
                    plan.threads.push(ThreadRefs {
                        slot,
                        start: used,
                        count,
                        stack,
                    });
                    used += count;
                }
            }
            Some(Err(why)) => return Pause::Retry(why),
            // Live, not parked, not saved: a core is in the middle of switching it.
            None if t.on_cpu.load(core::sync::atomic::Ordering::Acquire) != 0 => {
                return Pause::Retry(RetryWhy::Unreachable { slot });
            }
            // Dead: its frame was withdrawn and it will never run again.
            None => {}
        }
    }
    for (old, _, alias) in &plan.patches {
        let mut now = [0u8; 4];
        for (i, b) in now.iter_mut().enumerate() {
            *b = alias.read(i).unwrap_or(0);
        }
        if i32::from_le_bytes(now) != *old {
            return Pause::Abort(alias_addr(alias));
        }
    }
    for &f in &plan.funcs {
        if let Some(cell) = plan.code.func_cell(f) {
            let addr = cell.load(core::sync::atomic::Ordering::Acquire) as u64;
            if plan.prep.translate(addr) == Translation::OffBoundary {
                return Pause::Abort(addr);
            }
        }
    }
    // Code addresses held by value in instances: every one into the island must be an
    // instruction start (a function's), or nothing is written.
    let mut off_boundary = None;
    for &(_, inst) in instances {
        memory::retarget_instance(inst, &mut |addr| {
            if plan.prep.translate(addr) == Translation::OffBoundary {
                off_boundary.get_or_insert(addr);
            }
            None
        });
    }
    if let Some(addr) = off_boundary {
        return Pause::Abort(addr);
    }
    // Steps 5 and 6: nothing can fail from here on.
    let mut c = Counts {
        threads: walked,
        frames: frames_walked,
        walk_cycles: cpu::rdtsc() - t0,
        ..Counts::default()
    };
    for tr in &plan.threads {
        for r in &plan.refs[tr.start..tr.start + tr.count] {
            match r.kind {
                RefKind::Rip => {
                    let done = with_context(world, tr.slot, |frame, _| {
                        let hit = frame.rip == r.old_addr;
                        if hit {
                            frame.rip = r.new_addr;
                        }
                        hit
                    });
                    c.rips += u32::from(done == Some(true));
                }
                RefKind::ReturnAddress { slot_addr } => {
                    c.return_addresses += u32::from(tr.stack.write_u64(slot_addr, r.new_addr));
                }
            }
        }
    }
    for (_, new, alias) in &plan.patches {
        c.call_sites += u32::from(alias.write(0, &new.to_le_bytes()));
    }
    for &f in &plan.funcs {
        if let Some(cell) = plan.code.func_cell(f) {
            let addr = cell.load(core::sync::atomic::Ordering::Acquire) as u64;
            if let Translation::Moved(n) = plan.prep.translate(addr) {
                cell.store(n as usize, core::sync::atomic::Ordering::Release);
                c.cells += 1;
            }
        }
    }
    for &(_, inst) in instances {
        memory::retarget_instance(inst, &mut |addr| match plan.prep.translate(addr) {
            Translation::Moved(n) => {
                c.code_pointers += 1;
                Some(n)
            }
            _ => None,
        });
    }
    c.callback_cycles = cpu::rdtsc() - t0;
    let stats = MoveStats {
        rips_rewritten: c.rips,
        return_addresses_rewritten: c.return_addresses,
        pause_cycles: c.callback_cycles,
    };
    // The set was locked since the plan was made, so it cannot be stale.
    let _ = plan.prep.commit(set, stats);
    // Step 8: every parked core drops its TLB and serializes before it resumes.
    world.request_flush(flush::TLB | flush::SERIALIZE);
    Pause::Done(c)
}

fn alias_addr(alias: &CodeAlias) -> u64 {
    alias.addr()
}

/// Guest instructions for a cycle count, under `-icount` (else `None`).
pub fn instructions(cycles: u64) -> Option<u64> {
    time::icount().then(|| time::cycles_to_instructions(cycles))
}
