//! The NMI side of the stop-the-world rendezvous. Everything here runs in NMI context: it takes
//! no lock, allocates nothing and logs nothing; it only reads and writes the fixed per-core
//! slots below. See `docs/smi-rendezvous.md` for the protocol.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::arch::context::LentFrame;
use crate::arch::trap::TrapFrame;
use crate::arch::{cpu, percpu};
use crate::smp::MAX_CORES;

/// What each core records about the current round.
#[derive(Debug)]
pub struct CoreRendezvous {
    /// The round this core was summoned to (set by the initiator before the NMI).
    pub summoned: AtomicU64,
    /// The last round this core arrived at.
    pub arrived: AtomicU64,
    /// The last round this core left.
    pub departed: AtomicU64,
    /// TSC at arrival and departure.
    pub arrive_tsc: AtomicU64,
    /// TSC at departure.
    pub depart_tsc: AtomicU64,
    /// The interrupted context, lent to the initiator while parked.
    pub frame: LentFrame,
    /// The scheduler slot of the thread this core was running when it parked.
    pub thread: AtomicU64,
    /// Rounds this core left with a flush (TLB or serialize) requested.
    pub flushes: AtomicU64,
    /// NMIs that were not a rendezvous (a watchdog, a late duplicate).
    pub unclaimed_nmis: AtomicU64,
    /// Rounds joined after the initiator had given up on this core.
    pub late: AtomicU64,
}

impl CoreRendezvous {
    const fn new() -> Self {
        Self {
            summoned: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            departed: AtomicU64::new(0),
            arrive_tsc: AtomicU64::new(0),
            depart_tsc: AtomicU64::new(0),
            frame: LentFrame::new(),
            thread: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            unclaimed_nmis: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }
    }
}

/// Per-core slots.
pub static CORES: [CoreRendezvous; MAX_CORES] = [const { CoreRendezvous::new() }; MAX_CORES];
/// The highest round the initiator has released.
pub static RELEASED: AtomicU64 = AtomicU64::new(0);
/// What parked cores must do before they return (bits of `flush`).
pub static FLUSH: AtomicU32 = AtomicU32::new(0);

/// Flush requests a callback may set.
pub mod flush {
    /// Drop this core's TLB (non-global translations).
    pub const TLB: u32 = 1 << 0;
    /// Serialize the instruction stream (code was rewritten).
    pub const SERIALIZE: u32 = 1 << 1;
}

/// The NMI handler: joins a rendezvous if this core was summoned to one, else counts the NMI.
pub fn on_nmi(frame: &mut TrapFrame) {
    let core = percpu::core_id() as usize;
    let slot = &CORES[core];
    let round = slot.summoned.load(Ordering::Acquire);
    if round == 0 || slot.arrived.load(Ordering::Relaxed) >= round {
        slot.unclaimed_nmis.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if RELEASED.load(Ordering::Acquire) >= round {
        // The initiator gave up waiting for us: record it and go on.
        slot.late.fetch_add(1, Ordering::Relaxed);
        slot.arrived.store(round, Ordering::Release);
        slot.departed.store(round, Ordering::Release);
        return;
    }
    // The frame is lent only while this core is parked; taking it back waits out a borrow the
    // initiator's callback still has (none: the callback ends before the release).
    slot.thread
        .store(percpu::current_thread() as u64, Ordering::Relaxed);
    slot.frame.lend_while(frame, || {
        slot.arrive_tsc.store(cpu::rdtsc(), Ordering::Relaxed);
        slot.arrived.store(round, Ordering::Release);
        while RELEASED.load(Ordering::Acquire) < round {
            core::hint::spin_loop();
        }
        let work = FLUSH.load(Ordering::Acquire);
        if work & flush::TLB != 0 {
            cpu::flush_tlb();
        }
        if work & flush::SERIALIZE != 0 {
            cpu::serialize();
        }
        if work != 0 {
            slot.flushes.fetch_add(1, Ordering::Relaxed);
        }
    });
    slot.depart_tsc.store(cpu::rdtsc(), Ordering::Relaxed);
    slot.departed.store(round, Ordering::Release);
    // One spin-loop hint on the way out. It costs nothing on hardware; under QEMU's
    // single-threaded TCG (`-icount`) `pause` hands the host thread to the next vCPU, so the
    // other parked cores leave now rather than after this one has run a whole time slice
    // (about 10 million instructions) of the code it returns to.
    core::hint::spin_loop();
}
