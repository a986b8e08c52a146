//! The SMI emulation: stop every other core with an NMI, run a callback while the world is
//! stopped, release, and measure. The initiator side is here; the NMI side is `rendezvous`.
//!
//! Initiators serialize on a try-lock; a round whose cores do not all arrive before the
//! deadline fails with the list of missing cores instead of hanging.

pub mod rendezvous;

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rendezvous::{CORES, FLUSH, RELEASED};

use crate::arch::apic::{self, Delivery};
use crate::arch::trap::TrapFrame;
use crate::arch::{cpu, percpu};
use crate::sched::{MAX_THREADS, SLOTS};
use crate::smp::{self, MAX_CORES};
use crate::time;

/// How long the initiator waits, by default, for every core to arrive (and later to leave).
/// Generous because under TCG a vCPU thread can be descheduled by a busy host for a long time;
/// on hardware a rendezvous takes microseconds.
pub const DEFAULT_TIMEOUT_US: u64 = 1_000_000;

static INITIATOR: AtomicBool = AtomicBool::new(false);
static ROUND: AtomicU64 = AtomicU64::new(0);

/// Why a round failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmiError {
    /// These cores (bit n = core n) did not arrive within the timeout (µs).
    NotArrived(u64, u64),
    /// These cores did not leave within the timeout (µs).
    NotDeparted(u64, u64),
}

impl fmt::Display for SmiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, mask, timeout_us) = match self {
            SmiError::NotArrived(m, t) => ("did not arrive", *m, *t),
            SmiError::NotDeparted(m, t) => ("did not leave", *m, *t),
        };
        write!(f, "cores")?;
        for c in (0..64).filter(|c| mask & (1 << c) != 0) {
            write!(f, " {c}")?;
        }
        write!(f, " {what} within {} ms", timeout_us / 1000)
    }
}

/// One round's figures, in TSC cycles from the round's start (just before the cores are
/// summoned and the NMIs sent), from the TSC stamps each core
/// takes as it arrives and as it leaves (not from when the initiator notices: under TCG a
/// resumed vCPU may run for a whole time slice before the initiator's vCPU runs again).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundFigures {
    /// Until the last core had arrived.
    pub rendezvous_cycles: u64,
    /// Until the last core had left, the initiator's release included (the whole pause).
    pub pause_cycles: u64,
}

/// The stopped world, as the callback sees it.
#[derive(Debug)]
pub struct World {
    parked: u64,
    /// The parked core running each thread slot (`NO_CORE`: none), built once per round so
    /// finding a thread's context costs no scan of the cores.
    core_of: [u8; MAX_THREADS],
}

/// No parked core runs this thread slot.
const NO_CORE: u8 = u8::MAX;

impl World {
    /// The stopped world of a round whose `parked` cores (bit n = core n) all arrived.
    fn new(parked: u64) -> Self {
        let mut core_of = [NO_CORE; MAX_THREADS];
        for core in (0..MAX_CORES).filter(|c| parked & (1 << c) != 0) {
            let slot = CORES[core].thread.load(Ordering::Acquire) as usize;
            if let Some(entry) = core_of.get_mut(slot) {
                *entry = core as u8;
            }
        }
        Self { parked, core_of }
    }

    /// Cores parked at the rendezvous (bit n = core n).
    pub fn parked_cores(&self) -> u64 {
        self.parked
    }

    /// Runs `f` on the interrupted context of parked `core`.
    pub fn with_parked_frame<R>(
        &mut self,
        core: usize,
        f: impl FnOnce(&mut TrapFrame) -> R,
    ) -> Option<R> {
        if core >= MAX_CORES || self.parked & (1 << core) == 0 {
            return None;
        }
        CORES[core].frame.borrow(f)
    }

    /// The scheduler slot of the thread parked `core` was running.
    pub fn parked_thread(&self, core: usize) -> Option<usize> {
        if core >= MAX_CORES || self.parked & (1 << core) == 0 {
            return None;
        }
        Some(CORES[core].thread.load(Ordering::Acquire) as usize)
    }

    /// Runs `f` on the context of the thread in `slot`, wherever it is: the interrupted frame
    /// of the parked core it runs on, or its saved frame if it is off every core. `None` for a
    /// dead or unused slot and for the initiator's own thread (it is running the callback).
    ///
    /// A parked frame may belong to an interrupt handler that was running on the thread's stack
    /// when the NMI came (see [`TrapFrame::interrupts_were_enabled`]); `f` decides.
    pub fn with_thread_context<R>(
        &mut self,
        slot: usize,
        f: impl FnOnce(ThreadContext<'_>) -> R,
    ) -> Option<R> {
        match self.core_of.get(slot).copied() {
            None => None,
            Some(NO_CORE) => self.with_thread_frame(slot, |frame| f(ThreadContext::Saved(frame))),
            Some(core) => {
                let core = usize::from(core);
                self.with_parked_frame(core, |frame| f(ThreadContext::Parked { core, frame }))
            }
        }
    }

    /// Runs `f` on the saved context of the thread in scheduler slot `slot`, if it is off its
    /// core.
    pub fn with_thread_frame<R>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut TrapFrame) -> R,
    ) -> Option<R> {
        if slot >= MAX_THREADS || SLOTS[slot].id.load(Ordering::Acquire) == 0 {
            return None;
        }
        SLOTS[slot].with_saved_frame(f)
    }

    /// Asks every parked core to flush (see `rendezvous::flush`) before it returns.
    pub fn request_flush(&mut self, what: u32) {
        FLUSH.fetch_or(what, Ordering::AcqRel);
    }
}

/// Where [`World::thread_context`] found a thread.
#[derive(Debug)]
pub enum ThreadContext<'a> {
    /// Running on `core`, which is parked: the frame the NMI interrupted.
    Parked {
        /// The parked core.
        core: usize,
        /// Its interrupted context.
        frame: &'a mut TrapFrame,
    },
    /// Off every core: the frame it was switched out with.
    Saved(&'a mut TrapFrame),
}

/// Flushes parked cores did on leaving rounds, summed over all cores.
pub fn flush_count() -> u64 {
    CORES
        .iter()
        .map(|c| c.flushes.load(Ordering::Relaxed))
        .sum()
}

fn mask_of(cores: impl Iterator<Item = usize>) -> u64 {
    cores.fold(0, |m, c| m | (1 << c))
}

fn waiting(targets: u64, round: u64, field: impl Fn(usize) -> u64) -> u64 {
    mask_of((0..64).filter(|c| targets & (1 << c) != 0 && field(*c) < round))
}

/// Stops every other online core, runs `callback` with the world stopped, and releases them.
/// A core that has not arrived (or left) within `timeout_us` fails the round.
pub fn stop_the_world(
    timeout_us: u64,
    callback: &mut dyn FnMut(&mut World),
) -> Result<RoundFigures, SmiError> {
    cpu::without_interrupts(|| {
        while INITIATOR
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        let result = round(timeout_us, callback);
        INITIATOR.store(false, Ordering::Release);
        result
    })
}

fn round(timeout_us: u64, callback: &mut dyn FnMut(&mut World)) -> Result<RoundFigures, SmiError> {
    let me = percpu::core_id() as usize;
    let targets = mask_of(smp::online_cores().filter(|c| *c != me));
    let round = ROUND.fetch_add(1, Ordering::AcqRel) + 1;
    FLUSH.store(0, Ordering::Release);
    // The round starts before any core is summoned: a core already in its NMI handler (a
    // stray NMI) may join as soon as it sees `summoned`, before the broadcast, and its arrival
    // stamp must still come after `t0`.
    let t0 = cpu::rdtsc();
    for c in (0..64).filter(|c| targets & (1 << c) != 0) {
        CORES[c].summoned.store(round, Ordering::Release);
    }
    let timeout = time::us_to_cycles(timeout_us);
    for c in (0..64).filter(|c| targets & (1 << c) != 0) {
        apic::send_ipi(smp::apic_id(c), Delivery::Nmi, 0);
    }
    let arrived_field = |c: usize| CORES[c].arrived.load(Ordering::Acquire);
    let mut missing = waiting(targets, round, arrived_field);
    while missing != 0 && cpu::rdtsc() - t0 < timeout {
        core::hint::spin_loop();
        missing = waiting(targets, round, arrived_field);
    }
    let t_arrived = cpu::rdtsc();
    if missing == 0 {
        callback(&mut World::new(targets));
    }
    let t_release = cpu::rdtsc();
    RELEASED.store(round, Ordering::Release);
    let parked = targets & !missing;
    let departed_field = |c: usize| CORES[c].departed.load(Ordering::Acquire);
    let t1 = cpu::rdtsc();
    let mut stuck = waiting(parked, round, departed_field);
    while stuck != 0 && cpu::rdtsc() - t1 < timeout {
        core::hint::spin_loop();
        stuck = waiting(parked, round, departed_field);
    }
    let t_end = cpu::rdtsc();
    if missing != 0 {
        return Err(SmiError::NotArrived(missing, timeout_us));
    }
    if stuck != 0 {
        return Err(SmiError::NotDeparted(stuck, timeout_us));
    }
    let last = |field: fn(&rendezvous::CoreRendezvous) -> u64| {
        (0..64)
            .filter(|c| parked & (1 << c) != 0)
            .map(|c| field(&CORES[c]))
            .max()
            .unwrap_or(t0)
    };
    let arrived = last(|c| c.arrive_tsc.load(Ordering::Relaxed)).clamp(t0, t_arrived);
    let departed = last(|c| c.depart_tsc.load(Ordering::Relaxed)).clamp(t_release, t_end);
    Ok(RoundFigures {
        rendezvous_cycles: arrived - t0,
        pause_cycles: departed - t0,
    })
}

/// NMIs each core took that were not a rendezvous, and rounds it joined late.
pub fn nmi_counts(core: usize) -> (u64, u64) {
    (
        CORES[core].unclaimed_nmis.load(Ordering::Relaxed),
        CORES[core].late.load(Ordering::Relaxed),
    )
}

/// Sends `core` an NMI that is not a rendezvous (as a watchdog would): its handler must count it
/// and return.
pub fn send_stray_nmi(core: usize) {
    if smp::is_online(core) {
        cpu::without_interrupts(|| apic::send_ipi(smp::apic_id(core), Delivery::Nmi, 0));
    }
}
