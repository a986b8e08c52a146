//! Commands for cores and threads: threads, spawn, kill, suspend, resume, migrate, smi,
//! ipi-bench.

use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use atoll_kcore::args::{ArgError, Args, parse_u64};
use atoll_kcore::json::Json;
use atoll_kcore::sched::SchedError;
use atoll_kcore::stats::Distribution;

use super::commands::{CmdError, CmdResult};
use crate::arch::cpu;
use crate::arch::trap::TrapFrame;
use crate::sched::{self, MAX_THREADS};
use crate::smi::{self, ThreadContext, World};
use crate::smp::{self, ipi};
use crate::{println, testload, time};

pub fn threads(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let rounds = args.flag_u64("--rounds")?;
    let sub = args.positional();
    args.finish()?;
    match sub.as_deref() {
        None => {}
        Some("selftest") => return threads_selftest(json),
        Some("churn") => return threads_churn(rounds.unwrap_or(200).clamp(1, 100_000), json),
        Some(other) => {
            return Err(ArgError::Invalid {
                what: "threads subcommand (selftest, churn)",
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
        "counter" => testload::spawn_counter(core)?,
        "locker" => testload::spawn_locker(core)?,
        "initiator" => testload::spawn_initiator(core)?,
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

/// What one `smi` round's callback saw.
#[derive(Debug, Default)]
struct RoundCheck {
    /// Contexts read and written back (parked cores' and off-core threads').
    frames_seen: u64,
    /// Threads found running on a parked core whose counter was compared.
    threads_checked: u64,
    /// Of those, threads whose counter moved while the world was stopped.
    counters_moved: u64,
}

/// Reads a context's RIP and writes it back unchanged.
fn rewrite_rip(frame: &mut TrapFrame) {
    let rip = frame.rip;
    frame.rip = core::hint::black_box(rip);
}

/// What the `smi` callback does with the world stopped: note the counter of the thread on every
/// parked core, read every parked core's interrupted context and every off-core thread's saved
/// context and write each back unchanged, hold the world for `hold_us`, and check that no
/// parked thread's counter moved meanwhile (it would if a core had not really stopped).
fn touch_world(world: &mut World, check: &mut RoundCheck, flush: bool, hold_us: u64) {
    let t0 = cpu::rdtsc();
    if flush {
        world.request_flush(smi::rendezvous::flush::TLB | smi::rendezvous::flush::SERIALIZE);
    }
    let parked = world.parked_cores();
    let mut before = [(usize::MAX, 0u64); smp::MAX_CORES];
    for core in (0..smp::MAX_CORES).filter(|c| parked & (1 << c) != 0) {
        if let Some(slot) = world.parked_thread(core) {
            before[core] = (slot, sched::SLOTS[slot].counter.load(Relaxed));
        }
        if world.with_parked_frame(core, rewrite_rip).is_some() {
            check.frames_seen += 1;
        }
    }
    for slot in 0..MAX_THREADS {
        if world.with_thread_frame(slot, rewrite_rip).is_some() {
            check.frames_seen += 1;
        }
    }
    let hold_cycles = time::us_to_cycles(hold_us);
    while cpu::rdtsc() - t0 < hold_cycles {
        core::hint::spin_loop();
    }
    for (slot, count) in before.iter().filter(|(slot, _)| *slot < MAX_THREADS) {
        check.threads_checked += 1;
        if sched::SLOTS[*slot].counter.load(Relaxed) != *count {
            check.counters_moved += 1;
        }
    }
}

pub fn smi(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let count = args.flag_u64("--count")?;
    let flush = args.flag("--flush");
    let stray = args.flag("--stray");
    let hold_us = args.flag_u64("--hold-us")?.unwrap_or(0).min(1_000_000);
    let timeout_us = args
        .flag_u64("--timeout-ms")?
        .map_or(smi::DEFAULT_TIMEOUT_US, |ms| ms.clamp(1, 60_000) * 1000);
    let sub = args.positional();
    match sub.as_deref() {
        None => {}
        Some("mark") => {
            let id = thread_id(args)?;
            args.finish()?;
            let tries = count.unwrap_or(100).clamp(1, 10_000);
            return smi_mark(id, tries, timeout_us, json);
        }
        Some(other) => {
            return Err(ArgError::Invalid {
                what: "smi subcommand (mark)",
                value: other.into(),
            }
            .into());
        }
    }
    args.finish()?;
    let count = count.unwrap_or(1).clamp(1, 1_000_000) as usize;
    // Figures go into memory allocated before any round.
    let mut rendezvous: Vec<u64> = Vec::with_capacity(count);
    let mut pause: Vec<u64> = Vec::with_capacity(count);
    let mut failures = 0u64;
    let mut first_error = None;
    let mut check = RoundCheck::default();
    let flushes_before = smi::flush_count();
    let me = crate::arch::percpu::core_id() as usize;
    for round in 0..count {
        if stray && round % 10 == 0 {
            for core in smp::online_cores().filter(|c| *c != me) {
                smi::send_stray_nmi(core);
            }
        }
        match smi::stop_the_world(timeout_us, &mut |w| {
            touch_world(w, &mut check, flush, hold_us)
        }) {
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
    let flushes = smi::flush_count() - flushes_before;
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
            .u64("frames_seen", check.frames_seen)
            .u64("hold_us", hold_us)
            .u64("threads_checked", check.threads_checked)
            .u64("counters_moved", check.counters_moved)
            .u64("flushes", flushes)
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
            "smi: {count} rounds, {failures} failures, {} cores, {} contexts read and rewritten",
            smp::online_count(),
            check.frames_seen
        );
        println!(
            "stopped: {} parked threads checked over {hold_us} us holds, {} counters moved; {flushes} core flushes",
            check.threads_checked, check.counters_moved
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

/// `smi mark <id>`: stops the world and redirects thread `id` to [`testload::marked_counter`]
/// by rewriting its context: the interrupted frame if it runs on a parked core, its saved frame
/// if it is off-core. A parked frame that is an interrupt handler's (interrupts were off) is
/// left alone and the round retried, up to `tries` rounds. The thread's counter jumping by
/// [`testload::MARK`] after release shows the rewrite reached the real context.
fn smi_mark(id: u64, tries: u64, timeout_us: u64, json: bool) -> CmdResult {
    // Only a counter may be sent elsewhere: redirecting any other thread would lose its work.
    let name = sched::list()
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| t.name);
    match name.as_deref() {
        None => return Err(sched::ThreadError::Sched(SchedError::NoSuchThread(id)).into()),
        Some("counter") => {}
        Some(other) => {
            return Err(CmdError::Failed(alloc::format!(
                "thread {id} is a {other} thread: smi mark redirects only counter threads"
            )));
        }
    }
    let slot = sched::slot_of(id)?;
    // Where the context was found: "parked" (with the core) or "saved".
    let mut place: Option<(&'static str, Option<usize>)> = None;
    let mut rounds = 0;
    let mut first_error = None;
    while place.is_none() && rounds < tries {
        rounds += 1;
        let result = smi::stop_the_world(timeout_us, &mut |w| {
            place = w
                .with_thread_context(slot, |context| match context {
                    ThreadContext::Parked { core, frame } if frame.interrupts_were_enabled() => {
                        frame.redirect_to(testload::marked_counter);
                        Some(("parked", Some(core)))
                    }
                    ThreadContext::Saved(frame) => {
                        frame.redirect_to(testload::marked_counter);
                        Some(("saved", None))
                    }
                    ThreadContext::Parked { .. } => None,
                })
                .flatten();
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    let Some((place, core)) = place else {
        return Err(CmdError::Failed(alloc::format!(
            "thread {id} was not caught in its own code in {rounds} rounds{}",
            first_error.map_or(alloc::string::String::new(), |e| alloc::format!(" ({e})"))
        )));
    };
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("thread", id)
            .str("context", place)
            .u64("rounds", rounds);
        if let Some(core) = core {
            j.u64("core", core as u64);
        }
        j.end_object();
        println!("{}", j.finish());
    } else {
        let on = core.map_or(alloc::string::String::new(), |c| {
            alloc::format!(" on core {c}")
        });
        println!("smi mark: thread {id}'s {place} context{on} redirected after {rounds} rounds");
    }
    Ok(())
}

/// `threads churn`: spawn and reap on every core at once (see [`testload::churn`]).
fn threads_churn(rounds: u64, json: bool) -> CmdResult {
    let r = testload::churn(rounds)?;
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("cores", r.cores)
            .u64("rounds", rounds)
            .u64("ran", r.ran)
            .u64("clobbered", r.clobbered)
            .bool("failed", r.failed)
            .u64("live_before", r.live_before)
            .u64("live_after", r.live_after)
            .u64("pages_4k_before", r.pages_4k_before)
            .u64("pages_4k_after", r.pages_4k_after)
            .end_object();
        println!("{}", j.finish());
    } else {
        println!(
            "threads churn: {} cores x {rounds} rounds, {} threads ran, {} slots clobbered, live threads {} -> {}, 4K pages {} -> {}",
            r.cores,
            r.ran,
            r.clobbered,
            r.live_before,
            r.live_after,
            r.pages_4k_before,
            r.pages_4k_after
        );
    }
    if r.failed {
        return Err(CmdError::Failed(
            "a churner's spawn, join or reap failed".into(),
        ));
    }
    Ok(())
}
