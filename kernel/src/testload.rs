//! Test workloads the QEMU suite drives through the console (`spawn counter|locker|initiator`,
//! `threads churn`, `smi mark`). They are here, not beside the production commands, so the
//! console files only parse and print.
//!
//! Each workload reports through its thread slot's `counter`, which other cores and the
//! stop-the-world callback read without locks.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use alloc::vec::Vec;

use crate::arch::cpu;
use crate::mem::vm;
use crate::sched::{self, SLOTS, ThreadError};
use crate::smi;
use crate::smp;

/// What a marked counter adds to its counter when it starts (`smi mark`): far above anything a
/// counter reaches by counting, so the jump is unmistakable.
pub const MARK: u64 = 1 << 48;

fn counter_entry(_: u64) {
    count_forever(sched::current_slot())
}

fn count_forever(slot: usize) -> ! {
    loop {
        SLOTS[slot].counter.fetch_add(1, Ordering::Relaxed);
        core::hint::spin_loop();
    }
}

/// Spawns a thread that counts forever; returns its id.
pub fn spawn_counter(core: Option<usize>) -> Result<u64, ThreadError> {
    sched::spawn_thread("counter", core, counter_entry, 0)
}

/// Where `smi mark` sends a thread: adds [`MARK`] to its counter, then counts forever. Reached
/// only by rewriting a stopped thread's saved RIP, so seeing the mark proves the rewrite took.
pub extern "C" fn marked_counter() -> ! {
    let slot = sched::current_slot();
    SLOTS[slot].counter.fetch_add(MARK, Ordering::Relaxed);
    count_forever(slot)
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
        SLOTS[slot].counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Spawns a thread that fights over a lock with interrupts off; returns its id.
pub fn spawn_locker(core: Option<usize>) -> Result<u64, ThreadError> {
    sched::spawn_thread("locker", core, locker, 0)
}

/// A second stop-the-world initiator: counts its successful rounds (and stops counting after a
/// failure), so a test can run two initiators at once.
fn initiator(_: u64) {
    let slot = sched::current_slot();
    loop {
        if smi::stop_the_world(smi::DEFAULT_TIMEOUT_US, &mut |_| {}).is_ok() {
            SLOTS[slot].counter.fetch_add(1, Ordering::Relaxed);
        } else {
            sched::exit();
        }
        sched::sleep_us(1000);
    }
}

/// Spawns a second stop-the-world initiator; returns its id.
pub fn spawn_initiator(core: Option<usize>) -> Result<u64, ThreadError> {
    sched::spawn_thread("initiator", core, initiator, 0)
}

/// Short threads of `churn` that found their own slot unpublished (a reaper cleared it).
static CHURN_CLOBBERED: AtomicU64 = AtomicU64::new(0);
/// Short threads of `churn` that ran.
static CHURN_RAN: AtomicU64 = AtomicU64::new(0);
/// Set when any churner's spawn, join or reap failed.
static CHURN_FAILED: AtomicBool = AtomicBool::new(false);

fn churn_child(_: u64) {
    if SLOTS[sched::current_slot()].id.load(Ordering::Acquire) == 0 {
        CHURN_CLOBBERED.fetch_add(1, Ordering::Relaxed);
    }
    CHURN_RAN.fetch_add(1, Ordering::Relaxed);
}

/// Children a churner spawns per round before joining them: several dead slots at once, so
/// reapers on different cores often find the same ones.
const CHURN_BATCH: usize = 4;

/// One churner: `rounds` times, spawn a batch of short threads on its own core, join them,
/// reap.
fn churner(rounds: u64) {
    let core = Some(crate::arch::percpu::core_id() as usize);
    for _ in 0..rounds {
        let mut batch = [0u64; CHURN_BATCH];
        for id in &mut batch {
            match sched::spawn_thread("churn", core, churn_child, 0) {
                Ok(spawned) => *id = spawned,
                Err(_) => CHURN_FAILED.store(true, Ordering::Relaxed),
            }
        }
        for id in batch.into_iter().filter(|id| *id != 0) {
            if sched::join(id).is_err() {
                CHURN_FAILED.store(true, Ordering::Relaxed);
            }
        }
        if CHURN_FAILED.load(Ordering::Relaxed) {
            return;
        }
        sched::reap();
    }
}

/// What `churn` saw.
#[derive(Debug, Clone, Copy)]
pub struct ChurnReport {
    /// Cores that churned at once.
    pub cores: u64,
    /// Short threads that ran (`rounds` x batch x cores when nothing failed).
    pub ran: u64,
    /// Short threads that found their slot cleared by a reaper.
    pub clobbered: u64,
    /// Whether a spawn, join or reap failed.
    pub failed: bool,
    /// Live (not dead) threads before and after.
    pub live_before: u64,
    /// Live threads after every churner ended and was reaped.
    pub live_after: u64,
    /// 4 KiB pages the kernel had mapped before and after (thread stacks are 4 KiB pages).
    pub pages_4k_before: u64,
    /// Pages mapped after every thread was reaped.
    pub pages_4k_after: u64,
}

/// Reaps until no dead thread is left (a thread that just exited may still be leaving its core
/// for a moment), giving up after about 100 ms.
fn reap_all() {
    for _ in 0..100 {
        sched::reap();
        let dead = sched::list()
            .iter()
            .any(|t| t.state == atoll_kcore::sched::ThreadState::Dead);
        if !dead {
            return;
        }
        sched::sleep_us(1000);
    }
}

fn live_threads() -> u64 {
    sched::list()
        .iter()
        .filter(|t| t.state != atoll_kcore::sched::ThreadState::Dead)
        .count() as u64
}

/// Spawns and reaps on every core at once: one churner per online core, each spawning, joining
/// and reaping `rounds` batches of short threads. A reaper that cleared a slot a concurrent spawn had just
/// been given shows up as a clobbered slot, a lost stack (fault) or a leaked one (pages).
pub fn churn(rounds: u64) -> Result<ChurnReport, ThreadError> {
    reap_all();
    CHURN_CLOBBERED.store(0, Ordering::Relaxed);
    CHURN_RAN.store(0, Ordering::Relaxed);
    CHURN_FAILED.store(false, Ordering::Relaxed);
    let live_before = live_threads();
    let pages_4k_before = vm::stats().pages_4k;
    let cores: Vec<usize> = smp::online_cores().collect();
    let mut ids = Vec::with_capacity(cores.len());
    for core in &cores {
        ids.push(sched::spawn_thread(
            "churner",
            Some(*core),
            churner,
            rounds,
        )?);
    }
    for id in ids {
        sched::join(id)?;
    }
    reap_all();
    Ok(ChurnReport {
        cores: cores.len() as u64,
        ran: CHURN_RAN.load(Ordering::Relaxed),
        clobbered: CHURN_CLOBBERED.load(Ordering::Relaxed),
        failed: CHURN_FAILED.load(Ordering::Relaxed),
        live_before,
        live_after: live_threads(),
        pages_4k_before,
        pages_4k_after: vm::stats().pages_4k,
    })
}
