//! Commands for cores and threads: threads, spawn, kill, suspend, resume, migrate, smi,
//! ipi-bench.

use alloc::vec::Vec;

use atoll_kcore::args::{ArgError, Args, parse_u64};
use atoll_kcore::json::Json;
use atoll_kcore::sched::SchedError;
use atoll_kcore::stats::Distribution;

use super::commands::{CmdError, CmdResult};
use crate::arch::cpu;
use crate::arch::trap::TrapFrame;
use crate::sched::{self, MAX_THREADS};
use crate::smi::{self, World};
use crate::smp::{self, ipi};
use crate::{println, time};

pub fn threads(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let selftest = args.positional();
    args.finish()?;
    match selftest.as_deref() {
        None => {}
        Some("selftest") => return threads_selftest(json),
        Some(other) => {
            return Err(ArgError::Invalid {
                what: "threads subcommand (selftest)",
                value: other.into(),
            }
            .into());
        }
    }
    let list = sched::list();
    if json {
        let mut j = Json::new();
        j.begin_object().array("threads");
        for t in &list {
            j.begin_object()
                .u64("id", t.id)
                .str("name", &t.name)
                .u64("core", t.core as u64)
                .str("state", t.state.name())
                .u64("cpu_cycles", t.cpu_cycles)
                .u64("counter", t.counter)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!("  id  name        core  state      cpu_cycles        counter");
    for t in &list {
        println!(
            "  {:<3} {:<11} {:<5} {:<10} {:<17} {}",
            t.id,
            t.name,
            t.core,
            t.state.name(),
            t.cpu_cycles,
            t.counter
        );
    }
    Ok(())
}

fn core_arg(value: u64) -> Result<usize, CmdError> {
    let core = value as usize;
    if !smp::is_online(core) {
        return Err(sched::ThreadError::Sched(SchedError::BadCore(core)).into());
    }
    Ok(core)
}

pub fn spawn(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let core = args.flag_u64("--core")?.map(core_arg).transpose()?;
    let kind = args.required("thread kind (counter, locker, initiator)")?;
    args.finish()?;
    let id = match kind.as_str() {
        "counter" => sched::spawn_counter(core)?,
        "locker" => sched::spawn_thread("locker", core, locker, 0)?,
        "initiator" => sched::spawn_thread("initiator", core, initiator, 0)?,
        _ => {
            return Err(ArgError::Invalid {
                what: "thread kind (counter, locker, initiator)",
                value: kind,
            }
            .into());
        }
    };
    if json {
        let mut j = Json::new();
        j.begin_object().u64("id", id).end_object();
        println!("{}", j.finish());
    } else {
        println!("spawned thread {id}");
    }
    Ok(())
}

fn thread_id(args: &mut Args) -> Result<u64, CmdError> {
    Ok(parse_u64(&args.required("thread id")?, "thread id")?)
}

pub fn kill(args: &mut Args) -> CmdResult {
    let id = thread_id(args)?;
    args.finish()?;
    sched::kill(id)?;
    println!("killed thread {id}");
    Ok(())
}

pub fn suspend(args: &mut Args) -> CmdResult {
    let id = thread_id(args)?;
    args.finish()?;
    sched::suspend(id)?;
    println!("suspended thread {id}");
    Ok(())
}

pub fn resume(args: &mut Args) -> CmdResult {
    let id = thread_id(args)?;
    args.finish()?;
    sched::resume(id)?;
    println!("resumed thread {id}");
    Ok(())
}

pub fn migrate(args: &mut Args) -> CmdResult {
    let id = thread_id(args)?;
    let core = parse_u64(&args.required("core")?, "core")?;
    args.finish()?;
    let core = core_arg(core)?;
    sched::migrate(id, core)?;
    println!("thread {id} moves to core {core}");
    Ok(())
}

fn dist_json(j: &mut Json, key: &str, d: &Distribution) {
    j.object(key)
        .u64("min", d.min)
        .u64("median", d.median)
        .u64("p99", d.p99)
        .u64("max", d.max)
        .end_object();
}

fn dist_text(what: &str, unit: &str, d: &Distribution) {
    println!(
        "{what:<22} min {} / median {} / p99 {} / max {} {unit}",
        d.min, d.median, d.p99, d.max
    );
}

/// Reads a context's RIP and writes it back unchanged.
fn rewrite_rip(frame: &mut TrapFrame) {
    let rip = frame.rip;
    frame.rip = core::hint::black_box(rip);
}

/// What the `smi` callback does with the world stopped: read every parked core's interrupted
/// context and every off-core thread's saved context, and write each back unchanged.
fn touch_world(world: &mut World, frames_seen: &mut u64, flush: bool) {
    if flush {
        world.request_flush(smi::rendezvous::flush::TLB | smi::rendezvous::flush::SERIALIZE);
    }
    let parked = world.parked_cores();
    for core in (0..smp::MAX_CORES).filter(|c| parked & (1 << c) != 0) {
        if world.with_parked_frame(core, rewrite_rip).is_some() {
            *frames_seen += 1;
        }
    }
    for slot in 0..MAX_THREADS {
        if world.with_thread_frame(slot, rewrite_rip).is_some() {
            *frames_seen += 1;
        }
    }
}

pub fn smi(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let count = args.flag_u64("--count")?.unwrap_or(1).clamp(1, 1_000_000) as usize;
    let flush = args.flag("--flush");
    let stray = args.flag("--stray");
    let timeout_us = args
        .flag_u64("--timeout-ms")?
        .map_or(smi::DEFAULT_TIMEOUT_US, |ms| ms.clamp(1, 60_000) * 1000);
    args.finish()?;
    // Figures go into memory allocated before any round.
    let mut rendezvous: Vec<u64> = Vec::with_capacity(count);
    let mut pause: Vec<u64> = Vec::with_capacity(count);
    let mut failures = 0u64;
    let mut first_error = None;
    let mut frames_seen = 0u64;
    let me = crate::arch::percpu::core_id() as usize;
    for round in 0..count {
        if stray && round % 10 == 0 {
            for core in smp::online_cores().filter(|c| *c != me) {
                smi::send_stray_nmi(core);
            }
        }
        match smi::stop_the_world(timeout_us, &mut |w| touch_world(w, &mut frames_seen, flush)) {
            Ok(f) => {
                rendezvous.push(f.rendezvous_cycles);
                pause.push(f.pause_cycles);
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let to_insn = time::cycles_to_instructions;
    let r_insn = Distribution::of_mapped(&rendezvous, to_insn);
    let p_insn = Distribution::of_mapped(&pause, to_insn);
    let r = Distribution::of(&mut rendezvous);
    let p = Distribution::of(&mut pause);
    let (unclaimed, late): (u64, u64) = smp::online_cores()
        .map(smi::nmi_counts)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("rounds", count as u64)
            .u64("failures", failures)
            .u64("cores", u64::from(smp::online_count()))
            .u64("timeout_us", timeout_us)
            .u64("frames_seen", frames_seen)
            .u64("unclaimed_nmis", unclaimed)
            .u64("late_arrivals", late);
        dist_json(&mut j, "rendezvous_cycles", &r);
        dist_json(&mut j, "pause_cycles", &p);
        if time::icount() {
            dist_json(&mut j, "rendezvous_instructions", &r_insn);
            dist_json(&mut j, "pause_instructions", &p_insn);
        }
        if let Some(e) = first_error {
            j.str("first_error", &alloc::format!("{e}"));
        }
        j.end_object();
        println!("{}", j.finish());
    } else {
        println!(
            "smi: {count} rounds, {failures} failures, {} cores, {frames_seen} contexts read and rewritten",
            smp::online_count()
        );
        dist_text("rendezvous", "cycles", &r);
        dist_text("pause", "cycles", &p);
        if time::icount() {
            dist_text("rendezvous", "guest instructions", &r_insn);
            dist_text("pause", "guest instructions", &p_insn);
        }
        println!("unclaimed NMIs: {unclaimed}, late arrivals: {late}");
        if let Some(e) = first_error {
            println!("first failure: {e}");
        }
    }
    Ok(())
}

fn noop(_: u64) {}

pub fn ipi_bench(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let count = args.flag_u64("--count")?.unwrap_or(1000).clamp(1, 100_000) as usize;
    args.finish()?;
    let me = crate::arch::percpu::core_id() as usize;
    let others: Vec<usize> = smp::online_cores().filter(|c| *c != me).collect();
    if others.is_empty() {
        return Err(CmdError::Unavailable("a second online core"));
    }
    let mut round_trip = Vec::with_capacity(count);
    let mut shootdown = Vec::with_capacity(count);
    let page = crate::mem::vm::map_new(
        atoll_kcore::addr::PageSize::Size4K,
        atoll_kcore::paging::Protection::READ_WRITE,
    )?;
    for i in 0..count {
        let target = others[i % others.len()];
        let t0 = cpu::rdtsc();
        ipi::call_on(target, noop, 0)?;
        round_trip.push(cpu::rdtsc() - t0);
        let t0 = cpu::rdtsc();
        ipi::call_others(cpu::invlpg, page.0.0)?;
        shootdown.push(cpu::rdtsc() - t0);
    }
    let _ = crate::mem::vm::unmap_free(page.0, atoll_kcore::addr::PageSize::Size4K);
    let rt = Distribution::of(&mut round_trip);
    let sd = Distribution::of(&mut shootdown);
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("rounds", count as u64)
            .u64("targets", others.len() as u64);
        dist_json(&mut j, "round_trip_cycles", &rt);
        dist_json(&mut j, "shootdown_cycles", &sd);
        j.end_object();
        println!("{}", j.finish());
    } else {
        println!("ipi-bench: {count} rounds, {} other cores", others.len());
        dist_text("call round trip", "cycles", &rt);
        dist_text("TLB shootdown (all)", "cycles", &sd);
    }
    Ok(())
}

static BLOCKER_DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn sleeper(us: u64) {
    sched::sleep_us(us);
}

fn blocker(_: u64) {
    while !BLOCKER_DONE.load(core::sync::atomic::Ordering::Acquire) {
        sched::block_unless(|| BLOCKER_DONE.load(core::sync::atomic::Ordering::Acquire));
    }
}

fn yielder(n: u64) {
    for _ in 0..n {
        sched::yield_now();
    }
}

/// Sleep, block/wake, yield, exit and join on real threads on every core.
fn threads_selftest(json: bool) -> CmdResult {
    use core::sync::atomic::Ordering;
    let cores: Vec<usize> = smp::online_cores().collect();
    let t0 = cpu::rdtsc();
    let mut ids = Vec::new();
    for (i, core) in cores.iter().enumerate() {
        ids.push(sched::spawn_thread(
            "sleeper",
            Some(*core),
            sleeper,
            10_000 + 1000 * i as u64,
        )?);
        ids.push(sched::spawn_thread("yielder", Some(*core), yielder, 100)?);
    }
    BLOCKER_DONE.store(false, Ordering::Release);
    let blocker_id = sched::spawn_thread("blocker", cores.last().copied(), blocker, 0)?;
    sched::sleep_us(20_000);
    BLOCKER_DONE.store(true, Ordering::Release);
    sched::wake_thread(blocker_id)?;
    ids.push(blocker_id);
    for id in &ids {
        sched::join(*id)?;
    }
    let slept_us = time::cycles_to_us(cpu::rdtsc() - t0);
    let states_ok = sched::list()
        .iter()
        .filter(|t| ids.contains(&t.id))
        .all(|t| t.state == atoll_kcore::sched::ThreadState::Dead);
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("threads", ids.len() as u64)
            .u64("elapsed_us", slept_us)
            .bool("all_dead", states_ok)
            .end_object();
        println!("{}", j.finish());
    } else {
        println!(
            "threads selftest: {} threads slept, blocked/woke, yielded and were joined in {} us",
            ids.len(),
            slept_us
        );
    }
    if !states_ok {
        return Err(CmdError::Failed("a joined thread is not dead".into()));
    }
    Ok(())
}

/// One lock that every `locker` thread fights over, so stop-the-world rounds often catch a core
/// holding it or spinning on it.
static CONTENDED: spin::Mutex<u64> = spin::Mutex::new(0);

fn locker(_: u64) {
    let slot = sched::current_slot();
    loop {
        cpu::without_interrupts(|| {
            let mut guard = CONTENDED.lock();
            for _ in 0..100 {
                *guard = core::hint::black_box(*guard + 1);
            }
        });
        sched::SLOTS[slot]
            .counter
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
}

pub fn regs(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let id = thread_id(args)?;
    args.finish()?;
    let frame = sched::with_suspended_frame(id, |f| f.clone())?;
    if json {
        let mut j = Json::new();
        j.begin_object().u64("id", id);
        for (name, value) in frame.named_registers() {
            j.u64(name, value);
        }
        j.u64("rip", frame.rip)
            .u64("rflags", frame.rflags)
            .end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "thread {id}: rip {:#018x}  rflags {:#x}",
        frame.rip, frame.rflags
    );
    for row in frame.named_registers().chunks(4) {
        let mut line = alloc::string::String::new();
        for (name, value) in row {
            use core::fmt::Write as _;
            let _ = write!(line, "{name:>3}={value:#018x}  ");
        }
        println!("{}", line.trim_end());
    }
    Ok(())
}

/// A second stop-the-world initiator: counts its successful rounds (and stops counting after a
/// failure), so a test can run two initiators at once.
fn initiator(_: u64) {
    let slot = sched::current_slot();
    loop {
        if smi::stop_the_world(smi::DEFAULT_TIMEOUT_US, &mut |_| {}).is_ok() {
            sched::SLOTS[slot]
                .counter
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        } else {
            sched::exit();
        }
        sched::sleep_us(1000);
    }
}
