//! Application-processor bring-up: INIT-SIPI-SIPI through the trampoline below 1 MiB, one core
//! at a time, each with a deadline. A core that does not answer is reported and sent INIT again
//! (parked in wait-for-SIPI) so it can never run late on a stack meant for another.
//! See `docs/smp-bringup.md`.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::apic::{self, Delivery};
use crate::arch::trampoline::{self, TrampolineError};
use crate::arch::{cpu, gdt, idt, percpu};
use crate::mem::{self, stack, vm::VmError};
use crate::time;

/// Bytes of each AP's boot stack (which becomes its idle thread's stack).
const AP_STACK_BYTES: u64 = 64 * 1024;
/// How long an AP may take to reach Rust code after its SIPIs, and then to finish setup.
const ARRIVE_TIMEOUT_US: u64 = 1_000_000;
const ONLINE_TIMEOUT_US: u64 = 2_000_000;

static ARRIVED: AtomicBool = AtomicBool::new(false);

/// Why bring-up could not start at all.
#[derive(Debug, Clone, Copy)]
pub enum BringUpError {
    /// No usable page below 1 MiB for the trampoline.
    NoLowPage,
    /// The trampoline refused the page or CR3.
    Trampoline(TrampolineError),
    /// Mapping the trampoline failed.
    Vm(VmError),
}

impl fmt::Display for BringUpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BringUpError::NoLowPage => write!(f, "no usable page below 1 MiB for the trampoline"),
            BringUpError::Trampoline(TrampolineError::Cr3TooHigh(c)) => {
                write!(
                    f,
                    "CR3 {c:#x} is above 4 GiB; the 32-bit trampoline cannot load it"
                )
            }
            BringUpError::Trampoline(TrampolineError::PageTooHigh(p)) => {
                write!(f, "trampoline page {p:#x} is not below 1 MiB")
            }
            BringUpError::Vm(e) => write!(f, "mapping the trampoline: {e}"),
        }
    }
}

/// Why one AP did not come up.
#[derive(Debug, Clone, Copy)]
pub enum ApFailure {
    /// Its stack could not be allocated.
    NoStack,
    /// It never reached the kernel after INIT-SIPI-SIPI.
    NoAnswer,
    /// It reached the kernel but did not finish setting up in time.
    SetupTimeout,
}

/// The outcome of bringing up every AP.
#[derive(Debug, Default)]
pub struct BringUpReport {
    /// Cores that came online: (core id, APIC id).
    pub started: Vec<(usize, u32)>,
    /// Cores that did not: (core id, APIC id, why).
    pub failed: Vec<(usize, u32, ApFailure)>,
}

fn wait_until(deadline_us: u64, done: impl Fn() -> bool) -> bool {
    let end = time::uptime_us() + deadline_us;
    while time::uptime_us() < end {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}

/// Starts every core with an id other than the boot core.
pub fn start_aps() -> Result<BringUpReport, BringUpError> {
    let mut report = BringUpReport::default();
    if super::known_cores() <= 1 {
        return Ok(report);
    }
    let page = mem::trampoline_page().ok_or(BringUpError::NoLowPage)?;
    let vector = trampoline::install(page).map_err(BringUpError::Trampoline)?;
    cpu::record_boot_core_features();
    crate::mem::vm::map_identity(page).map_err(BringUpError::Vm)?;
    for core in 1..super::known_cores() {
        let apic = super::apic_id(core);
        match start_one(page, vector, core) {
            Ok(()) => report.started.push((core, apic)),
            Err(why) => {
                cpu::without_interrupts(|| apic::send_ipi(apic, Delivery::Init, 0));
                report.failed.push((core, apic, why));
            }
        }
    }
    if let Err(e) = crate::mem::vm::unmap_identity(page) {
        log::warn!("could not unmap the trampoline page: {e}");
    }
    Ok(report)
}

fn start_one(page: atoll_kcore::addr::PhysAddr, vector: u8, core: usize) -> Result<(), ApFailure> {
    let apic = super::apic_id(core);
    let stack = stack::alloc(AP_STACK_BYTES).map_err(|_| ApFailure::NoStack)?;
    trampoline::set_params(page, stack.top, ap_entry, core as u64);
    ARRIVED.store(false, Ordering::SeqCst);
    cpu::without_interrupts(|| apic::send_ipi(apic, Delivery::Init, 0));
    time::spin_us(10_000);
    for _ in 0..2 {
        cpu::without_interrupts(|| apic::send_ipi(apic, Delivery::Startup, vector));
        if wait_until(200, || ARRIVED.load(Ordering::Acquire)) {
            break;
        }
    }
    if !wait_until(ARRIVE_TIMEOUT_US, || ARRIVED.load(Ordering::Acquire)) {
        return Err(ApFailure::NoAnswer);
    }
    if !wait_until(ONLINE_TIMEOUT_US, || super::is_online(core)) {
        return Err(ApFailure::SetupTimeout);
    }
    Ok(())
}

/// Where each AP enters Rust, on its own stack, with paging and long mode on.
extern "C" fn ap_entry(core: u64) -> ! {
    cpu::adopt_boot_core_features();
    percpu::init(core as u32, cpu::initial_apic_id());
    ARRIVED.store(true, Ordering::Release);
    cpu::enable_sse();
    gdt::init_this_core();
    idt::load_this_core();
    apic::init_this_core();
    crate::sched::start_ap_core(core as usize)
}
