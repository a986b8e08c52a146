//! Inter-processor interrupts: reschedule kicks, remote function calls with completion, and TLB
//! shootdowns with acknowledgement.
//!
//! Each core has one mailbox. A sender claims the target's mailbox, writes the function and
//! argument, bumps the request sequence and sends the call IPI; the target runs the function
//! and stores the sequence as its acknowledgement. Anyone waiting (for a mailbox or for an
//! acknowledgement) keeps serving its own mailbox, so two cores calling each other never
//! deadlock even with interrupts off.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Mutex;

use super::{MAX_CORES, apic_id, is_online, online_cores};
use crate::arch::apic::{self, Delivery};
use crate::arch::vectors::Vector;
use crate::arch::{cpu, percpu};
use crate::time;

/// How long a remote call may take before it is reported as failed.
const CALL_TIMEOUT_US: u64 = 1_000_000;

/// A function run on another core (in interrupt context there: short, no blocking).
pub type RemoteFn = fn(u64);

#[derive(Debug)]
struct Mailbox {
    busy: AtomicBool,
    /// The call: written by the sender holding `busy`, read by the target after `request`
    /// moved. The lock is never contended for long (one store or one load) and is taken with
    /// interrupts off on both sides.
    call: Mutex<Option<(RemoteFn, u64)>>,
    request: AtomicU64,
    ack: AtomicU64,
}

impl Mailbox {
    const fn new() -> Self {
        Self {
            busy: AtomicBool::new(false),
            call: Mutex::new(None),
            request: AtomicU64::new(0),
            ack: AtomicU64::new(0),
        }
    }
}

static MAILBOXES: [Mailbox; MAX_CORES] = [const { Mailbox::new() }; MAX_CORES];

/// Why a remote call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiError {
    /// The target is not online.
    Offline(usize),
    /// The target did not acknowledge in time.
    Timeout(usize),
}

impl fmt::Display for IpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpiError::Offline(c) => write!(f, "core {c} is not online"),
            IpiError::Timeout(c) => write!(f, "core {c} did not acknowledge in time"),
        }
    }
}

/// Installs the call handler; call once on the boot core.
pub fn init() {
    crate::arch::trap::set_handler(Vector::Call as u8, |_| {
        apic::eoi();
        serve_own();
    });
}

/// Kicks `core` into its scheduler.
pub fn send_reschedule(core: usize) {
    if is_online(core) {
        cpu::without_interrupts(|| {
            apic::send_ipi(apic_id(core), Delivery::Fixed, Vector::Reschedule as u8)
        });
    }
}

/// Runs this core's pending remote call, if any.
pub fn serve_own() {
    cpu::without_interrupts(serve_own_irqs_off);
}

fn serve_own_irqs_off() {
    let me = percpu::core_id() as usize;
    let mb = &MAILBOXES[me];
    let req = mb.request.load(Ordering::Acquire);
    if req != mb.ack.load(Ordering::Relaxed) {
        // Posted before `request` was bumped (release), read after it (acquire).
        let call = *mb.call.lock();
        if let Some((f, arg)) = call {
            f(arg);
        }
        mb.ack.store(req, Ordering::Release);
    }
}

fn deadline() -> u64 {
    deadline_in(CALL_TIMEOUT_US)
}

fn deadline_in(us: u64) -> u64 {
    cpu::rdtsc() + time::us_to_cycles(us)
}

/// How long a TLB shootdown waits for every acknowledgement. Its caller frees frames right
/// after, so it must not give up early: under TCG on a busy host a vCPU can be off its host
/// core for seconds (seen: more than 1 s with 4 vCPUs and two builds on 2 host cores).
const SHOOTDOWN_TIMEOUT_US: u64 = 30_000_000;

/// Claims `core`'s mailbox and posts `f(arg)`; returns the request sequence.
fn post(core: usize, f: RemoteFn, arg: u64) -> Result<u64, IpiError> {
    if !is_online(core) {
        return Err(IpiError::Offline(core));
    }
    let mb = &MAILBOXES[core];
    let end = deadline();
    while mb
        .busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        serve_own();
        if cpu::rdtsc() > end {
            return Err(IpiError::Timeout(core));
        }
        core::hint::spin_loop();
    }
    cpu::without_interrupts(|| *mb.call.lock() = Some((f, arg)));
    let seq = mb.request.load(Ordering::Relaxed) + 1;
    mb.request.store(seq, Ordering::Release);
    cpu::without_interrupts(|| apic::send_ipi(apic_id(core), Delivery::Fixed, Vector::Call as u8));
    Ok(seq)
}

/// Waits for `core` to acknowledge `seq`, then frees its mailbox.
fn complete(core: usize, seq: u64) -> Result<(), IpiError> {
    complete_within(core, seq, CALL_TIMEOUT_US)
}

/// [`complete`] with its own deadline.
fn complete_within(core: usize, seq: u64, timeout_us: u64) -> Result<(), IpiError> {
    let mb = &MAILBOXES[core];
    let end = deadline_in(timeout_us);
    let mut result = Ok(());
    while mb.ack.load(Ordering::Acquire) < seq {
        serve_own();
        if cpu::rdtsc() > end {
            result = Err(IpiError::Timeout(core));
            break;
        }
        core::hint::spin_loop();
    }
    mb.busy.store(false, Ordering::Release);
    result
}

/// Runs `f(arg)` on `core` and waits for it to finish.
pub fn call_on(core: usize, f: RemoteFn, arg: u64) -> Result<(), IpiError> {
    if core == percpu::core_id() as usize {
        cpu::without_interrupts(|| f(arg));
        return Ok(());
    }
    let seq = post(core, f, arg)?;
    complete(core, seq)
}

/// Runs `f(arg)` on every other online core at once and waits for all of them.
pub fn call_others(f: RemoteFn, arg: u64) -> Result<(), IpiError> {
    call_others_within(f, arg, CALL_TIMEOUT_US)
}

/// [`call_others`], waiting up to `timeout_us` for the acknowledgements.
fn call_others_within(f: RemoteFn, arg: u64, timeout_us: u64) -> Result<(), IpiError> {
    let me = percpu::core_id() as usize;
    let mut posted = [0u64; MAX_CORES];
    let mut first_err = None;
    for core in online_cores().filter(|c| *c != me) {
        match post(core, f, arg) {
            Ok(seq) => posted[core] = seq,
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    for (core, seq) in posted.iter().enumerate() {
        if *seq != 0
            && let Err(e) = complete_within(core, *seq, timeout_us)
        {
            first_err = first_err.or(Some(e));
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn invlpg_remote(va: u64) {
    cpu::invlpg(va);
}

/// The most pages a range shootdown drops one by one; a larger range flushes the whole TLB.
const RANGE_INVLPG_MAX: u64 = 32;
/// A range shootdown's argument: the page-aligned start, with `pages - 1` in the low 12 bits.
const RANGE_PAGES_MASK: u64 = 0xfff;

fn invlpg_range_remote(arg: u64) {
    let va = arg & !RANGE_PAGES_MASK;
    let pages = (arg & RANGE_PAGES_MASK) + 1;
    if pages > RANGE_INVLPG_MAX {
        cpu::flush_tlb();
        return;
    }
    for i in 0..pages {
        cpu::invlpg(va + i * 4096);
    }
}

/// Drops `va`'s translation on every other online core and waits for every acknowledgement.
/// Call without holding locks other cores may spin on with interrupts off.
pub fn shootdown(va: u64) {
    if super::online_count() <= 1 {
        return;
    }
    if let Err(e) = call_others_within(invlpg_remote, va, SHOOTDOWN_TIMEOUT_US) {
        log::error!("TLB shootdown of {va:#x} incomplete: {e}");
    }
}

/// Drops the translations of `pages` 4 KiB pages from `va` (page aligned) on every other online
/// core with one round of IPIs, and waits for every acknowledgement. Same rules as
/// [`shootdown`].
pub fn shootdown_range(va: u64, pages: u64) {
    if super::online_count() <= 1 || pages == 0 {
        return;
    }
    // More pages than fit the argument's low bits are flushed whole (the remote side flushes
    // the whole TLB beyond RANGE_INVLPG_MAX pages anyway).
    let encoded = (va & !RANGE_PAGES_MASK) | (pages - 1).min(RANGE_PAGES_MASK);
    if let Err(e) = call_others_within(invlpg_range_remote, encoded, SHOOTDOWN_TIMEOUT_US) {
        log::error!("TLB shootdown of {pages} pages at {va:#x} incomplete: {e}");
    }
}
