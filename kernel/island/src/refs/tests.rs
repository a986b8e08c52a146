//! The walk against simulated stacks of real compiled code. The simulation pushes return
//! addresses and frame records exactly as the generated code and the trampoline do and records
//! where every live return address is: that record, not the walker, is the oracle.

use std::collections::BTreeSet;
use std::vec::Vec;

use atoll_pae::{CallTarget, CompiledModule};
use iced_x86::Code;

use super::*;
use crate::env::Environment;
use crate::island::{Grouping, IslandId, IslandSet, ModuleId, MoveStats, PreparedMove};
use crate::testutil::{FIB, LOOP, SWITCH, Sim, compile, compile_with, decode, find};

const BASE: u64 = 0x4000_0000;
const OTHER_BASE: u64 = 0x4800_0000;
const NEW: u64 = 0x5000_0000;
const TOP: u64 = 0x7fff_0000;
/// Foreign (kernel) code: the thread entry, `invoke`, a libcall, a host function.
const ENTRY: u64 = 0x9000_0000;
const INVOKE: u64 = 0x9000_1000;
const LIBCALL: u64 = 0x9000_2000;
const FRAMELESS: u64 = 0x9000_3000;

struct World {
    m: CompiledModule,
    set: IslandSet,
    module: ModuleId,
}

impl World {
    fn new(wat: &str) -> Self {
        Self::with(compile(wat))
    }

    fn with(m: CompiledModule) -> Self {
        let mut set = IslandSet::new();
        let module = set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
        Self { m, set, module }
    }

    fn start(&self, func: u32) -> u64 {
        BASE + u64::from(self.m.funcs[func as usize].code_range.start)
    }

    fn island(&self, func: u32) -> IslandId {
        self.set.island_of(self.module, func).unwrap()
    }

    /// Return address of the `n`th call site of `func` calling `target`.
    fn ret_of(&self, func: u32, target: CallTarget, n: usize) -> u64 {
        let c = self.m.funcs[func as usize]
            .call_sites
            .iter()
            .filter(|c| c.target == target)
            .nth(n)
            .expect("call site");
        BASE + u64::from(c.return_offset)
    }

    /// Address of the `k`th instruction of `func` (decoded independently of the layout).
    fn insn(&self, func: u32, k: usize) -> u64 {
        let r = &self.m.funcs[func as usize].code_range;
        decode(
            &self.m.code[r.start as usize..r.end as usize],
            BASE + u64::from(r.start),
        )[k]
            .ip()
    }

    fn frame_bytes(&self, func: u32) -> u64 {
        u64::from(self.m.funcs[func as usize].frame.frame_bytes)
    }

    /// `ret` instructions of `func`, found by decoding (independently of the layout).
    fn rets(&self, func: u32) -> Vec<u64> {
        let r = &self.m.funcs[func as usize].code_range;
        find(
            &self.m.code[r.start as usize..r.end as usize],
            BASE + u64::from(r.start),
            Code::Retnq,
        )
    }

    /// A thread inside `invoke` that called the trampoline, which called `func`: the RIP is
    /// at `func`'s first instruction.
    fn thread_calling(&self, func: u32) -> Sim {
        let mut s = Sim::new(TOP, ENTRY);
        s.call(ENTRY + 0x10, INVOKE);
        s.frame(64);
        let entry = BASE + u64::from(self.m.entry_offset);
        s.call(INVOKE + 0x20, entry);
        // The trampoline: push rbp; mov rbp, rsp; 10 pushes; outgoing area; `call rax`.
        s.frame(80 + 16);
        let anchor =
            &self.m.code[self.m.entry_offset as usize..self.m.funcs[0].code_range.start as usize];
        let calls = find(anchor, entry, Code::Call_rm64);
        assert_eq!(calls.len(), 1, "the trampoline makes one call");
        let call = decode(anchor, entry)
            .into_iter()
            .find(|i| i.ip() == calls[0])
            .unwrap();
        s.call(call.next_ip(), self.start(func));
        s
    }

    fn prepare(&self, id: IslandId, to: u64) -> PreparedMove {
        let island = self.set.island(id).unwrap();
        let r = island.range();
        let code = &self.m.code[(r.start - BASE) as usize..(r.end - BASE) as usize];
        self.set
            .prepare_move(id, code, Environment::at(to))
            .unwrap()
    }
}

fn walk(set: &IslandSet, prep: &PreparedMove, s: &Sim) -> (Walk, Vec<Reference>) {
    let mut buf = [Reference::EMPTY; 512];
    let w = find_references(set, prep, s.ctx(), s, 10_000, &mut buf);
    let n = match w {
        Walk::Complete { found, .. } => found,
        Walk::Retry(_) => 0,
    };
    (w, buf[..n].to_vec())
}

/// Checks the references against the simulation's own record, rewrites them, and checks that
/// each new value is the same instruction (by index) in the copy and nothing else changed.
fn check_and_rewrite(w: &World, prep: &PreparedMove, s: &mut Sim) -> usize {
    let (walk_result, refs) = walk(&w.set, prep, s);
    assert!(
        matches!(walk_result, Walk::Complete { .. }),
        "{walk_result:?}"
    );
    let in_island = |a: u64| prep.in_old(a);
    let want: BTreeSet<u64> = s
        .ret_slots
        .iter()
        .copied()
        .filter(|slot| in_island(s.mem[slot]))
        .collect();
    let got: BTreeSet<u64> = refs
        .iter()
        .filter_map(|r| match r.kind {
            RefKind::ReturnAddress { slot_addr } => Some(slot_addr),
            RefKind::Rip => None,
        })
        .collect();
    assert_eq!(got, want, "return-address slots");
    let rips = refs.iter().filter(|r| r.kind == RefKind::Rip).count();
    assert_eq!(
        rips,
        usize::from(in_island(s.rip)),
        "RIP reported iff in the island"
    );
    let old_code = &w.m.code[(prep.old_base - BASE) as usize..][..prep.old_len as usize];
    let old = decode(old_code, prep.old_base);
    let new = decode(&prep.code, prep.new_base());
    let before = s.mem.clone();
    for r in &refs {
        let k = old
            .iter()
            .position(|i| i.ip() == r.old_addr)
            .expect("old boundary");
        assert_eq!(new[k].ip(), r.new_addr, "same instruction in the copy");
        match r.kind {
            RefKind::Rip => {
                assert_eq!(s.rip, r.old_addr);
                s.rip = r.new_addr;
            }
            RefKind::ReturnAddress { slot_addr } => {
                assert_eq!(s.mem[&slot_addr], r.old_addr);
                s.mem.insert(slot_addr, r.new_addr);
            }
        }
    }
    let changed: BTreeSet<u64> = s
        .mem
        .iter()
        .filter(|(a, v)| before[a] != **v)
        .map(|(a, _)| *a)
        .collect();
    assert!(
        changed.is_subset(&want),
        "nothing outside the island touched"
    );
    refs.len()
}

/// Commits `prep` and checks the rewritten thread walks cleanly against the moved island,
/// finding the same number of references, now in the new copy.
fn commit_and_rewalk(w: &mut World, mut prep: PreparedMove, s: &Sim, count: usize) {
    w.set.commit_move(&mut prep, MoveStats::default()).unwrap();
    let id = prep.island;
    let island = w.set.island(id).unwrap();
    assert_eq!(island.base(), NEW);
    let again = w
        .set
        .prepare_move(id, &prep.code, Environment::at(NEW + 0x10_0000))
        .unwrap();
    let (result, refs) = walk(&w.set, &again, s);
    assert!(matches!(result, Walk::Complete { .. }), "{result:?}");
    assert_eq!(refs.len(), count);
    assert!(refs.iter().all(|r| island.range().contains(&r.old_addr)));
}

/// A thread `depth` calls deep into `fib`, stopped in the youngest call's body.
fn deep_fib(w: &World, depth: usize) -> Sim {
    let mut s = w.thread_calling(0);
    let ret = w.ret_of(0, CallTarget::Func(0), 1);
    for _ in 0..depth {
        s.frame(w.frame_bytes(0));
        s.call(ret, w.start(0));
    }
    s
}

#[test]
fn deep_recursion_every_frame_found_and_rewritten() {
    let mut w = World::new(FIB);
    let mut s = deep_fib(&w, 60);
    s.frame(w.frame_bytes(0));
    s.rip = w.insn(0, 3); // in the body, past `sub rsp`
    let prep = w.prepare(w.island(0), NEW);
    let n = check_and_rewrite(&w, &prep, &mut s);
    assert_eq!(n, 61, "the RIP and 60 return addresses into fib");
    commit_and_rewalk(&mut w, prep, &s, n);
}

/// Scheduled code (`Options::schedule`): a thread stopped at any instruction of `fib`'s body,
/// between instructions the scheduler reordered or not, is found and rewritten exactly.
#[test]
fn scheduled_code_deep_recursion_found_and_rewritten_at_every_body_instruction() {
    let scheduled = atoll_pae::Options {
        schedule: true,
        ..atoll_pae::Options::default()
    };
    let probe = World::with(compile_with(FIB, &scheduled));
    let r = &probe.m.funcs[0].code_range;
    let body = decode(
        &probe.m.code[r.start as usize..r.end as usize],
        BASE + u64::from(r.start),
    );
    let leave = body
        .iter()
        .position(|i| i.code() == Code::Leaveq)
        .expect("an epilogue");
    assert!(leave > 4);
    // The scheduler really reordered `fib`, or this proves nothing new.
    let plain = compile(FIB);
    let pr = &plain.funcs[0].code_range;
    assert_ne!(
        &plain.code[pr.start as usize..pr.end as usize],
        &probe.m.code[r.start as usize..r.end as usize]
    );
    for k in 3..leave {
        let mut w = World::with(compile_with(FIB, &scheduled));
        let mut s = deep_fib(&w, 20);
        s.frame(w.frame_bytes(0));
        s.rip = w.insn(0, k);
        let prep = w.prepare(w.island(0), NEW);
        let n = check_and_rewrite(&w, &prep, &mut s);
        assert_eq!(
            n, 21,
            "instruction {k}: the RIP and 20 return addresses into fib"
        );
        commit_and_rewalk(&mut w, prep, &s, n);
    }
}

#[test]
fn prologue_and_epilogue_windows_are_exact() {
    let w = World::new(FIB);
    let rets = w.rets(0);
    assert!(!rets.is_empty());
    // Entry: at `push rbp`, the return address is at [rsp].
    let entry = deep_fib(&w, 5);
    // After push: at `mov rbp, rsp`.
    let mut after_push = deep_fib(&w, 5);
    after_push.push_rbp();
    // At `ret` after `leave`.
    let mut at_ret = deep_fib(&w, 5);
    at_ret.frame(w.frame_bytes(0));
    at_ret.leave(rets[0]);
    for (name, mut s) in [
        ("entry", entry),
        ("after push", after_push),
        ("at ret", at_ret),
    ] {
        let mut w = World::new(FIB);
        let prep = w.prepare(w.island(0), NEW);
        let n = check_and_rewrite(&w, &prep, &mut s);
        assert_eq!(n, 6, "{name}: RIP and 5 return addresses");
        commit_and_rewalk(&mut w, prep, &s, n);
        // And the thread really goes on in the copy: its `ret`s reach call sites there.
        if name == "at ret" {
            s.ret();
            assert!(w.set.island(w.island(0)).unwrap().range().contains(&s.rip));
        }
    }
}

#[test]
fn a_window_misread_as_body_would_be_caught() {
    // At `push rbp`, rbp is still the caller's: a walk that read [rbp+8] there would start
    // one frame too high and miss the return address at [rsp]. It must be reported, with the
    // slot [rsp] itself.
    let w = World::new(FIB);
    let s = deep_fib(&w, 3);
    let prep = w.prepare(w.island(0), NEW);
    let (_, refs) = walk(&w.set, &prep, &s);
    assert!(refs.contains(&Reference {
        kind: RefKind::ReturnAddress { slot_addr: s.rsp },
        old_addr: s.mem[&s.rsp],
        new_addr: match prep.translate(s.mem[&s.rsp]) {
            Translation::Moved(n) => n,
            t => panic!("{t:?}"),
        },
    }));
}

#[test]
fn moving_another_island_touches_nothing() {
    let w = World::new(LOOP);
    // main (3) -> helper (1), stopped in helper's body.
    let mut s = w.thread_calling(3);
    s.frame(w.frame_bytes(3));
    s.call(w.ret_of(3, CallTarget::Func(1), 0), w.start(1));
    s.frame(w.frame_bytes(1));
    s.rip = w.rets(1)[0] - 1; // the `leave`
    for other in [0, 2] {
        let prep = w.prepare(w.island(other), NEW);
        let (result, refs) = walk(&w.set, &prep, &s);
        assert!(
            matches!(result, Walk::Complete { found: 0, .. }),
            "island {other}: {result:?}"
        );
        assert!(refs.is_empty());
    }
    for (island, count) in [(1, 1), (3, 1)] {
        let prep = w.prepare(w.island(island), NEW);
        let mut s = s.clone();
        assert_eq!(check_and_rewrite(&w, &prep, &mut s), count);
    }
}

#[test]
fn libcall_with_a_frame_is_walked_through() {
    let mut w = World::new(LOOP);
    let ceil = atoll_pae::Libcall::F64Ceil;
    let mut s = w.thread_calling(3);
    s.frame(w.frame_bytes(3));
    s.call(w.ret_of(3, CallTarget::Libcall(ceil), 0), LIBCALL);
    s.frame(48);
    s.rip = LIBCALL + 0x10;
    let mut deeper = s.clone();
    // The libcall calls a frameless routine (like memcpy): still found.
    deeper.call(LIBCALL + 0x20, FRAMELESS);
    let prep = w.prepare(w.island(3), NEW);
    assert_eq!(check_and_rewrite(&w, &prep, &mut deeper.clone()), 1);
    assert_eq!(check_and_rewrite(&w, &prep, &mut s), 1);
    commit_and_rewalk(&mut w, prep, &s, 1);
}

#[test]
fn libcall_in_its_prologue_or_frameless_is_a_retry() {
    let w = World::new(LOOP);
    let ceil = atoll_pae::Libcall::F64Ceil;
    let mut s = w.thread_calling(3);
    s.frame(w.frame_bytes(3));
    s.call(w.ret_of(3, CallTarget::Libcall(ceil), 0), LIBCALL);
    let slot = s.rsp;
    let prep = w.prepare(w.island(3), NEW);
    let mut pushed = s.clone();
    pushed.push_rbp();
    for t in [s, pushed] {
        // The chain's first record is main's own: its return address was pushed by a call to
        // generated code, but the frame runs foreign code.
        let (result, _) = walk(&w.set, &prep, &t);
        assert!(
            matches!(result, Walk::Retry(RetryReason::ForeignFrameWithoutRecord { slot_addr }) if slot_addr > slot),
            "{result:?}"
        );
    }
}

#[test]
fn host_import_and_other_instance_calls() {
    let mut w = World::new(LOOP);
    let fib = compile(FIB);
    let _ = &mut w;
    let fib_module = w
        .set
        .add_module(&fib, OTHER_BASE, Grouping::PerFunction)
        .unwrap();
    // main -> thunk of `log` (function 0) -> host function with a frame.
    let mut s = w.thread_calling(3);
    s.frame(w.frame_bytes(3));
    s.call(w.ret_of(3, CallTarget::Func(0), 0), w.start(0));
    s.frame(w.frame_bytes(0));
    let mut host = s.clone();
    host.call(w.ret_of(0, CallTarget::Import(0), 0), LIBCALL);
    host.frame(32);
    host.rip = LIBCALL + 8;
    // The same thunk bound to another instance's fib, stopped in fib's body.
    let mut wasm = s.clone();
    let fib_start = OTHER_BASE + u64::from(fib.funcs[0].code_range.start);
    wasm.call(w.ret_of(0, CallTarget::ImportWasm(0), 0), fib_start);
    wasm.frame(u64::from(fib.funcs[0].frame.frame_bytes));
    wasm.rip = fib_start + 11; // past push rbp, mov rbp, rsp, sub rsp, imm32
    for (name, s) in [("host", host), ("wasm", wasm)] {
        for (island, count) in [(0, 1), (3, 1)] {
            let prep = w.prepare(w.island(island), NEW);
            assert_eq!(
                check_and_rewrite(&w, &prep, &mut s.clone()),
                count,
                "{name}"
            );
        }
    }
    // Moving the other instance's fib finds the thread's RIP there.
    let fib_island = w.set.island_of(fib_module, 0).unwrap();
    let island = w.set.island(fib_island).unwrap();
    let r = island.range();
    let code = &fib.code[(r.start - OTHER_BASE) as usize..(r.end - OTHER_BASE) as usize];
    let prep = w
        .set
        .prepare_move(fib_island, code, Environment::at(NEW))
        .unwrap();
    let (result, refs) = walk(&w.set, &prep, &wasm_thread(&w, &fib));
    assert!(
        matches!(result, Walk::Complete { found: 1, .. }),
        "{result:?}"
    );
    assert_eq!(refs[0].kind, RefKind::Rip);
}

fn wasm_thread(w: &World, fib: &CompiledModule) -> Sim {
    let mut s = w.thread_calling(3);
    s.frame(w.frame_bytes(3));
    s.call(w.ret_of(3, CallTarget::Func(0), 0), w.start(0));
    s.frame(w.frame_bytes(0));
    let fib_start = OTHER_BASE + u64::from(fib.funcs[0].code_range.start);
    s.call(w.ret_of(0, CallTarget::ImportWasm(0), 0), fib_start);
    s.frame(u64::from(fib.funcs[0].frame.frame_bytes));
    s.rip = fib_start + 11;
    s
}

/// A `br_table` jump table: a thread stopped between a `lea rax, [rip + ..]` and its
/// `jmp rax` holds an address of the code in `rax`, so the walk asks for a retry there, and
/// only there; everywhere else in the body it walks as usual.
#[test]
fn jump_table_dispatch_windows_are_retries_and_nothing_else() {
    let w = World::new(SWITCH);
    let r = &w.m.funcs[0].code_range;
    let body = decode(
        &w.m.code[r.start as usize..r.end as usize],
        BASE + u64::from(r.start),
    );
    // The windows, found independently of the layout: after each rip-relative `lea` up to
    // the `jmp rax`.
    let mut in_window = std::vec![false; body.len()];
    let mut windows = 0;
    let mut open = false;
    for (k, i) in body.iter().enumerate() {
        if open {
            in_window[k] = true;
            if i.code() == Code::Jmp_rm64 {
                open = false;
            }
        } else if i.code() == Code::Lea_r64_m && i.is_ip_rel_memory_operand() {
            open = true;
            windows += 1;
        }
    }
    assert_eq!(
        windows,
        1 + 9,
        "the dispatch and one per entry (9 targets + default)"
    );
    let island = w.set.island(w.island(0)).unwrap();
    assert_eq!(island.layout.funcs[0].dispatch.len(), windows);
    let leave = body.iter().position(|i| i.code() == Code::Leaveq).unwrap();
    let (mut retries, mut walked) = (0, 0);
    for k in 3..leave {
        let mut s = w.thread_calling(0);
        s.frame(w.frame_bytes(0));
        s.rip = body[k].ip();
        let prep = w.prepare(w.island(0), NEW);
        match walk(&w.set, &prep, &s).0 {
            Walk::Retry(RetryReason::InDispatchWindow { addr }) => {
                assert!(in_window[k], "instruction {k} is not in a window");
                assert_eq!(addr, s.rip);
                retries += 1;
            }
            Walk::Complete { found, .. } => {
                assert!(!in_window[k], "instruction {k} is in a window");
                assert!(found >= 1, "the RIP itself");
                walked += 1;
            }
            other => panic!("instruction {k}: {other:?}"),
        }
    }
    assert_eq!(retries, in_window.iter().filter(|&&b| b).count());
    assert!(walked > 10);
}

#[test]
fn broken_states_are_retries_not_guesses() {
    let mut w = World::new(FIB);
    let s = deep_fib(&w, 10);
    let prep = w.prepare(w.island(0), NEW);
    // A dead frame pointer: rbp below rsp (the trap exit restored rsp first).
    let mut dead = s.clone();
    dead.rip = BASE + u64::from(w.m.trap_exit_offset);
    dead.rbp = dead.rsp - 0x40;
    assert!(matches!(
        walk(&w.set, &prep, &dead).0,
        Walk::Retry(RetryReason::FramePointerBelowStack { .. })
    ));
    // A return address into fib that does not follow a call.
    let mut bad = s.clone();
    let slot = bad.rsp;
    bad.mem.insert(slot, w.insn(0, 3));
    assert_eq!(
        walk(&w.set, &prep, &bad).0,
        Walk::Retry(RetryReason::ReturnAddressNotAfterCall { slot_addr: slot })
    );
    // A saved RIP in the middle of an instruction.
    let mut mid = s.clone();
    mid.rip = w.start(0) + 2;
    assert!(matches!(
        walk(&w.set, &prep, &mid).0,
        Walk::Retry(RetryReason::NotAtInstructionBoundary { .. })
    ));
    // Bounds: depth and buffer.
    let mut small = [Reference::EMPTY; 4];
    assert_eq!(
        find_references(&w.set, &prep, s.ctx(), &s, 1000, &mut small),
        Walk::Retry(RetryReason::BufferFull)
    );
    let mut buf = [Reference::EMPTY; 64];
    assert_eq!(
        find_references(&w.set, &prep, s.ctx(), &s, 5, &mut buf),
        Walk::Retry(RetryReason::TooDeep)
    );
    // A stack that ends early.
    let mut cut = s.clone();
    let top_frame = *cut.ret_slots.first().unwrap();
    cut.mem.retain(|&a, _| a < top_frame - 8);
    assert!(matches!(
        walk(&w.set, &prep, &cut).0,
        Walk::Retry(RetryReason::Unreadable { .. })
    ));
    // A plan from before another commit.
    let mut other = World::new(LOOP);
    let mut p1 = other.prepare(other.island(1), NEW);
    let p2 = other.prepare(other.island(2), NEW + 0x1000);
    other
        .set
        .commit_move(&mut p1, MoveStats::default())
        .unwrap();
    let t = other.thread_calling(2);
    assert_eq!(
        walk(&other.set, &p2, &t).0,
        Walk::Retry(RetryReason::StalePlan)
    );
    let mut p2 = p2;
    assert_eq!(
        other.set.commit_move(&mut p2, MoveStats::default()),
        Err(crate::island::IslandError::Stale)
    );
    let _ = &mut w;
}

/// Ending at the entry trampoline finds the same references as walking to the first frame,
/// in fewer frames, and does not read the frames below the trampoline: a thread whose kernel
/// frames below it are unreadable still completes.
#[test]
fn a_walk_can_end_at_the_entry_trampoline() {
    let w = World::new(FIB);
    let mut s = deep_fib(&w, 20);
    s.frame(w.frame_bytes(0));
    s.rip = w.insn(0, 3);
    let prep = w.prepare(w.island(0), NEW);
    let mut all = vec![Reference::EMPTY; 256];
    let mut to_entry = vec![Reference::EMPTY; 256];
    let full = find_references(&w.set, &prep, s.ctx(), &s, 1000, &mut all);
    let short = find_references_to(
        &w.set,
        &prep,
        s.ctx(),
        &s,
        1000,
        &mut to_entry,
        WalkEnd::Entry,
    );
    let (
        Walk::Complete {
            found: n,
            frames: f,
        },
        Walk::Complete {
            found: m,
            frames: g,
        },
    ) = (full, short)
    else {
        panic!("{full:?} {short:?}");
    };
    assert_eq!((n, &all[..n]), (m, &to_entry[..m]), "the same references");
    assert!(g < f, "fewer frames: {g} vs {f}");
    // Break the chain below the trampoline (the kernel frames): the full walk cannot tell,
    // the walk that ends at the entry never reads there.
    let mut broken = s.clone();
    let mut fp = broken.rbp;
    while broken.mem[&(fp + 8)] != INVOKE + 0x20 {
        fp = broken.mem[&fp];
    }
    let invoke_fp = broken.mem[&fp];
    broken.mem.insert(invoke_fp, 3);
    assert!(matches!(
        find_references(&w.set, &prep, broken.ctx(), &broken, 1000, &mut all),
        Walk::Retry(_)
    ));
    assert_eq!(
        find_references_to(
            &w.set,
            &prep,
            broken.ctx(),
            &broken,
            1000,
            &mut to_entry,
            WalkEnd::Entry
        ),
        short
    );
}
