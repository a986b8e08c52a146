//! atoll: a bare-metal x86-64 unikernel that assembles WebAssembly chunks into machine code.
//!
//! Boot order: serial console and logger, TSC calibration, the direct map, heap and frame
//! allocator, per-core data, GDT/TSS and IDT (our own trap stubs), the kernel's virtual-memory
//! region, ACPI, the APICs (timer calibrated, serial input by interrupt), the scheduler on the
//! boot core, every other core (INIT-SIPI-SIPI), then the shell as a thread. Everything
//! x86-specific lives under `arch`.
//!
//! `unsafe` code lives in `arch`, behind safe functions and types. Every other module denies
//! it, except these low-level ones, each of which says why at its top:
//! - `island::memory`: writes relocated code into fresh frames and into code mapped
//!   read-execute (through the direct map), and reads and rewrites stopped threads' stacks;
//! - `mem::heap`: the global allocator (`GlobalAlloc` is an unsafe trait) and handing it its
//!   memory;
//! - `mem::stack`: lends a fresh stack's memory, so a new thread's first frame can be written;
//! - `mem::vm_selftest`: writes machine code into pages it maps and calls it, and probes pages
//!   it unmapped, on purpose (the `vm selftest` command);
//! - `sched::slots`: threads' saved frames and FPU areas, reached by address while the thread
//!   is off its core;
//! - `pae::code`: code injection (copying generated code into pages that become read-execute);
//! - `pae::imports`: the kernel functions generated code calls, with raw pointers into its
//!   VM context and linear memory;
//! - `pae::task`: hands a task's instances (which hold raw pointers) to its chunk thread;
//! - `pae::group`: a linked group's instances move between the threads that hold the group;
//! - `snap::paged`: zeroes and copies snapshot and copy-on-write frames through the direct
//!   map.
#![no_std]
#![no_main]

extern crate alloc;

#[deny(unsafe_code)]
mod acpi;
mod arch;
#[deny(unsafe_code)]
mod autoreloc;
#[deny(unsafe_code)]
mod chunks;
#[deny(unsafe_code)]
mod console;
#[deny(unsafe_code)]
mod fault;
#[deny(unsafe_code)]
mod guard;
#[deny(unsafe_code)]
mod irq;
#[deny(unsafe_code)]
mod island;
#[deny(unsafe_code)]
mod klog;
#[deny(unsafe_code)]
mod mem;
#[deny(unsafe_code)]
mod pae;
#[deny(unsafe_code)]
mod platform;
#[deny(unsafe_code)]
mod predict;
#[deny(unsafe_code)]
mod sched;
#[deny(unsafe_code)]
mod smi;
#[deny(unsafe_code)]
mod smp;
#[deny(unsafe_code)]
mod snap;
#[deny(unsafe_code)]
mod testload;
#[deny(unsafe_code)]
mod time;
#[deny(unsafe_code)]
mod wasi;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};

static BOOT_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(kmain, config = &BOOT_CONFIG);

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    time::mark_entry();
    console::out::init();
    let source = time::init();
    klog::init();
    log::info!("atoll {} starting", env!("CARGO_PKG_VERSION"));
    log::info!(
        "TSC: {} MHz ({source:?}){}",
        time::tsc_hz() / 1_000_000,
        if time::icount() { ", icount" } else { "" }
    );

    let Some(phys_offset) = boot_info.physical_memory_offset.into_option() else {
        panic!("the bootloader did not map physical memory");
    };
    arch::physmem::init(phys_offset);
    arch::trap::set_fault_handlers(arch::trap::FaultHandlers {
        exception: fault::exception,
        unexpected_interrupt: fault::unexpected_interrupt,
    });
    fault::set_kernel_image(boot_info.kernel_image_offset, boot_info.kernel_len);
    match mem::init(&boot_info.memory_regions) {
        Ok((heap, bytes)) => log::info!("heap: {} MiB at {:#x}", bytes >> 20, heap.0),
        Err(e) => panic!("memory setup failed: {e:?}"),
    }
    // The screen console needs the heap (its character grid); from here on it shows what the
    // serial line gets.
    console::screen::init(
        core::mem::replace(
            &mut boot_info.framebuffer,
            bootloader_api::info::Optional::None,
        )
        .into_option(),
    );
    if let Some((cols, rows)) = console::screen::size() {
        log::info!("screen console: {cols}x{rows} characters");
    }
    arch::percpu::init(0, arch::cpu::initial_apic_id());
    arch::cpu::enable_sse();
    arch::gdt::init_this_core();
    arch::idt::load_this_core();
    arch::trap::set_exception_hook(snap::exception_hook);
    arch::trap::set_nmi_handler(smi::rendezvous::on_nmi);
    let frames = mem::frames::stats();
    log::info!(
        "frames: {} usable, {} free ({} MiB)",
        frames.total,
        frames.free,
        frames.free >> 8
    );
    match mem::vm::init() {
        Ok(base) => log::info!("kernel virtual region at {base:#x}"),
        Err(e) => log::error!("no kernel virtual region: {e}"),
    }

    match acpi::init(arch::bootinfo::rsdp(boot_info)) {
        Ok(info) => log::info!(
            "ACPI {}: {} CPUs, {} I/O APICs, tables {}",
            info.revision,
            info.cpus.len(),
            info.io_apics.len(),
            info.tables.join(" ")
        ),
        Err(e) => log::error!("ACPI: {e}"),
    }
    log_numa();

    start_cores();

    let ramdisk_len = boot_info.ramdisk_len;
    platform::set_ramdisk(arch::bootinfo::ramdisk(boot_info));
    match chunks::load() {
        chunks::Loaded::Absent => log::warn!("no chunk image (ramdisk) was loaded"),
        chunks::Loaded::Invalid(e) => log::error!("chunk image rejected: {e}"),
        chunks::Loaded::Ready { image, rejected } => {
            log::info!(
                "chunk image: {} chunks, {} bytes",
                image.chunks().len(),
                ramdisk_len
            );
            for (name, why) in rejected {
                log::error!("chunk {name} rejected: {why}");
            }
        }
    }

    predict::init();

    platform::mark_ready();
    platform::print_boot_line();
    console::run_shell()
}

/// Interrupts, the scheduler and every other core. Without ACPI or an APIC the kernel stays
/// single-core with a polled console.
fn start_cores() {
    let Some(info) = acpi::info() else {
        log::error!("no ACPI: staying on one core, console polled");
        return;
    };
    let setup = match irq::init(info) {
        Ok(s) => s,
        Err(e) => {
            log::error!("interrupts: {e}; staying on one core, console polled");
            return;
        }
    };
    log::info!(
        "local APIC ({}), timer {} kHz; COM1 on GSI {}{}",
        if setup.x2apic { "x2APIC" } else { "xAPIC" },
        setup.timer_hz / 1000,
        setup.serial_gsi,
        if setup.keyboard_gsi.is_some() {
            ", PS/2 keyboard"
        } else {
            ""
        }
    );
    let cores = smp::assign_ids(&info.cpus, arch::apic::id());
    smp::ipi::init();
    if let Err(e) = sched::init_boot_core("shell", cores) {
        log::error!("scheduler: {e}");
        return;
    }
    console::input::init_irq(sched::current_slot());
    arch::cpu::enable_interrupts();
    match smp::boot::start_aps() {
        Ok(report) => {
            for (core, apic, why) in &report.failed {
                log::error!("core {core} (APIC id {apic}) failed to start: {why:?}");
            }
            log::info!(
                "{} of {} cores online",
                smp::online_count(),
                smp::known_cores()
            );
        }
        Err(e) => log::error!("AP bring-up: {e}"),
    }
}

/// Builds the NUMA topology from the SRAT and says what it found.
fn log_numa() {
    if let Some(info) = acpi::info() {
        for e in &info.affinity_errors {
            log::error!("ACPI affinity table ignored: {e}");
        }
    }
    match mem::numa::init() {
        Some(t) => log::info!(
            "NUMA: {} nodes from the SRAT{}",
            t.nodes().len(),
            if t.has_distances() {
                ", SLIT distances"
            } else {
                ""
            }
        ),
        None => log::info!("NUMA: no SRAT, one node"),
    }
}
