//! System commands: mem, cpus, acpi, uptime, boot, log, chunks, poweroff, reboot.

use alloc::vec::Vec;
use atoll_kcore::args::{ArgError, Args};

use atoll_kcore::json::Json;

use super::commands::{CmdError, CmdResult};
use crate::{acpi, mem, platform, println, time};

pub fn mem(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let f = mem::frames::stats();
    let h = mem::heap::stats();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("frames_total", f.total)
            .u64("frames_free", f.free)
            .u64("frames_used", f.used())
            .u64("frame_bytes", 4096)
            .u64("heap_total_bytes", h.total_bytes as u64)
            .u64("heap_used_bytes", h.used_bytes as u64)
            .u64("heap_free_bytes", (h.total_bytes - h.used_bytes) as u64)
            .end_object();
        println!("{}", j.finish());
    } else {
        println!(
            "frames: {} total, {} free, {} used (4 KiB each; {} MiB free)",
            f.total,
            f.free,
            f.used(),
            f.free * 4096 / (1024 * 1024)
        );
        println!(
            "heap:   {} bytes total, {} used, {} free",
            h.total_bytes,
            h.used_bytes,
            h.total_bytes - h.used_bytes
        );
    }
    Ok(())
}

fn acpi_info() -> Result<&'static acpi::AcpiInfo, CmdError> {
    acpi::info().ok_or(CmdError::Unavailable("ACPI"))
}

/// What `cpus` shows about one core with an id: (core id, current thread id and name, load,
/// busy percent since it came online).
fn core_state(apic: u32) -> Option<(usize, u64, alloc::string::String, usize, u64)> {
    let core = crate::smp::core_of_apic(apic)?;
    if !crate::smp::is_online(core) {
        return None;
    }
    let (thread, name, queued) = crate::sched::core_view(core)?;
    let busy_now = !name.starts_with("idle");
    let since = crate::arch::cpu::rdtsc().saturating_sub(crate::smp::online_tsc(core));
    let idle = crate::sched::idle_cycles(core).min(since);
    let busy_pct = 100 - (idle * 100).checked_div(since).unwrap_or(100);
    Some((core, thread, name, queued + usize::from(busy_now), busy_pct))
}

pub fn cpus(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let info = acpi_info()?;
    let online = platform::online_cores();
    let bsp_apic = crate::smp::apic_id(0);
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("online", u64::from(online))
            .array("cpus");
        for (id, c) in info.cpus.iter().enumerate() {
            let state = core_state(c.apic_id);
            j.begin_object()
                .u64("id", id as u64)
                .u64("apic_id", u64::from(c.apic_id))
                .u64("processor_id", u64::from(c.processor_id))
                .bool("enabled", c.enabled)
                .bool("bsp", c.apic_id == bsp_apic)
                .bool("online", state.is_some());
            match state {
                Some((core, thread, name, load, busy)) => j
                    .u64("core", core as u64)
                    .u64("thread", thread)
                    .str("thread_name", &name)
                    .u64("load", load as u64)
                    .u64("busy_percent", busy),
                None => j.null("core"),
            };
            j.end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
    } else {
        println!("{} online, {} in the MADT", online, info.cpus.len());
        println!("  id  apic_id  acpi_uid  core  state                thread          load  busy");
        for (id, c) in info.cpus.iter().enumerate() {
            match core_state(c.apic_id) {
                Some((core, thread, name, load, busy)) => println!(
                    "  {:<3} {:<8} {:<9} {:<5} {:<20} {:<15} {:<5} {}%",
                    id,
                    c.apic_id,
                    c.processor_id,
                    core,
                    if c.apic_id == bsp_apic {
                        "online (boot core)"
                    } else {
                        "online"
                    },
                    alloc::format!("{thread} {name}"),
                    load,
                    busy
                ),
                None => println!(
                    "  {:<3} {:<8} {:<9} -     {}",
                    id,
                    c.apic_id,
                    c.processor_id,
                    if c.enabled {
                        "enabled, not started"
                    } else if c.online_capable {
                        "online-capable"
                    } else {
                        "disabled"
                    }
                ),
            }
        }
    }
    Ok(())
}

pub fn acpi(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let info = acpi_info()?;
    let p = &info.power;
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("revision", u64::from(info.revision))
            .str("oem_id", &info.oem_id)
            .u64("cpus", info.cpus.len() as u64)
            .u64("local_apic_address", info.local_apic_address);
        j.array("tables");
        for t in &info.tables {
            j.str_value(t);
        }
        j.end_array().array("io_apics");
        for io in &info.io_apics {
            j.begin_object()
                .u64("id", u64::from(io.id))
                .u64("address", u64::from(io.address))
                .u64("gsi_base", u64::from(io.gsi_base))
                .end_object();
        }
        j.end_array().array("interrupt_overrides");
        for o in &info.overrides {
            j.begin_object()
                .u64("bus", u64::from(o.bus))
                .u64("irq", u64::from(o.irq))
                .u64("gsi", u64::from(o.gsi))
                .u64("flags", u64::from(o.flags))
                .end_object();
        }
        j.end_array().object("power");
        match p.pm1a_control {
            Some(port) => j.u64("pm1a_control", u64::from(port)),
            None => j.null("pm1a_control"),
        };
        match p.s5 {
            Some(s5) => j.u64("s5_slp_typ_a", u64::from(s5.a)),
            None => j.null("s5_slp_typ_a"),
        };
        match p.reset {
            Some((port, value)) => j
                .u64("reset_port", u64::from(port))
                .u64("reset_value", u64::from(value)),
            None => j.null("reset_port"),
        };
        j.end_object().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!("ACPI revision {} (OEM {})", info.revision, info.oem_id);
    println!("tables: {}", info.tables.join(" "));
    println!(
        "local APIC at {:#x}; {} processors",
        info.local_apic_address,
        info.cpus.len()
    );
    for io in &info.io_apics {
        println!(
            "I/O APIC id {} at {:#x}, GSI base {}",
            io.id, io.address, io.gsi_base
        );
    }
    for o in &info.overrides {
        println!(
            "override: bus {} IRQ {} -> GSI {} (flags {:#x})",
            o.bus, o.irq, o.gsi, o.flags
        );
    }
    match (p.pm1a_control, p.s5) {
        (Some(port), Some(s5)) => {
            println!("power off: S5 via PM1a_CNT {port:#x}, SLP_TYPa {}", s5.a)
        }
        _ => println!(
            "power off: unavailable ({})",
            info.s5_error
                .map_or("no PM1a control block".into(), |e| alloc::format!("{e}"))
        ),
    }
    match p.reset {
        Some((port, value)) => {
            println!("reset: FADT register {port:#x} <- {value:#x}, then 8042, 0xCF9")
        }
        None => println!("reset: 8042, then 0xCF9, then triple fault"),
    }
    Ok(())
}

pub fn uptime(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let cycles = crate::arch::cpu::rdtsc().saturating_sub(time::entry_tsc());
    let us = time::uptime_us();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("uptime_ms", us / 1000)
            .u64("tsc_hz", time::tsc_hz())
            .u64("tsc_cycles", cycles)
            .end_object();
        println!("{}", j.finish());
    } else {
        println!(
            "up {}.{:03} s ({} TSC cycles at {} MHz)",
            us / 1_000_000,
            (us / 1000) % 1000,
            cycles,
            time::tsc_hz() / 1_000_000
        );
    }
    Ok(())
}

pub fn boot(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let b = platform::boot_figures();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("cycles_since_reset", b.prompt_tsc)
            .u64("kernel_cycles", b.prompt_tsc - b.entry_tsc)
            .u64("tsc_hz", time::tsc_hz())
            .bool("icount", time::icount());
        if time::icount() {
            j.u64(
                "guest_instructions_since_reset",
                time::cycles_to_instructions(b.prompt_tsc),
            );
        }
        j.end_object();
        println!("{}", j.finish());
    } else {
        platform::print_boot_line();
    }
    Ok(())
}

pub fn log_level(args: &mut Args) -> CmdResult {
    let level = args.positional();
    args.finish()?;
    if let Some(name) = level {
        let filter = crate::klog::parse_level(&name).ok_or(ArgError::Invalid {
            what: "log level (off, error, warn, info, debug, trace)",
            value: name,
        })?;
        log::set_max_level(filter);
    }
    println!("log level: {}", crate::klog::level_name(log::max_level()));
    Ok(())
}

pub fn chunks(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let Some(r) = platform::ramdisk() else {
        return Err(CmdError::Unavailable(
            "a chunk image (the bootloader loaded no ramdisk)",
        ));
    };
    let (image, rejected) = match crate::chunks::loaded() {
        crate::chunks::Loaded::Ready { image, rejected } => (image, rejected),
        crate::chunks::Loaded::Invalid(e) => {
            if !json {
                println!(
                    "chunk image: {} bytes at {:#x} (FNV-1a {:016x})",
                    r.len, r.addr, r.fnv1a
                );
            }
            return Err(CmdError::Failed(alloc::format!(
                "chunk image is invalid: {e}"
            )));
        }
        crate::chunks::Loaded::Absent => return Err(CmdError::Unavailable("a chunk image")),
    };
    let is_rejected = |name: &str| {
        rejected
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, why)| why.as_str())
    };
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("ramdisk_addr", r.addr)
            .u64("ramdisk_bytes", r.len)
            .str("checksum_fnv1a", &alloc::format!("{:016x}", r.fnv1a))
            .u64("format_major", u64::from(image.major_version()))
            .u64("format_minor", u64::from(image.minor_version()))
            .u64("programs", image.programs().len() as u64)
            .array("chunks");
        for c in image.chunks() {
            let m = &c.manifest;
            j.begin_object()
                .str("name", c.name)
                .u64("module_bytes", c.module.len() as u64)
                .str("content_hash", &alloc::format!("{:016x}", c.content_hash))
                .bool("valid", is_rejected(c.name).is_none());
            j.array("exports");
            for e in &m.exports {
                j.str_value(&e.name);
            }
            j.end_array().array("depends_on");
            for d in m.chunk_dependencies() {
                j.str_value(d);
            }
            j.end_array()
                .u64("memory_pages", u64::from(m.resources.memory_pages))
                .u64("stack_bytes", u64::from(m.resources.stack_bytes))
                .u64("cycles_per_call", m.resources.cycles_per_call)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "chunk image: {} bytes at {:#x} (FNV-1a {:016x}), format {}.{}, {} chunks, {} programs",
        r.len,
        r.addr,
        r.fnv1a,
        image.major_version(),
        image.minor_version(),
        image.chunks().len(),
        image.programs().len()
    );
    println!(
        "  {:<12} {:>8} {:>5} {:>8} {:>12}  {:<24} exports",
        "name", "bytes", "pages", "stack", "cycles/call", "depends on"
    );
    for c in image.chunks() {
        let m = &c.manifest;
        let deps = m.chunk_dependencies().join(",");
        let exports: Vec<&str> = m.exports.iter().map(|e| e.name.as_str()).collect();
        println!(
            "  {:<12} {:>8} {:>5} {:>8} {:>12}  {:<24} {}",
            c.name,
            c.module.len(),
            m.resources.memory_pages,
            m.resources.stack_bytes,
            m.resources.cycles_per_call,
            if deps.is_empty() { "-" } else { deps.as_str() },
            exports.join(" ")
        );
        if let Some(why) = is_rejected(c.name) {
            println!("    rejected: {why}");
        }
    }
    Ok(())
}

pub fn poweroff(args: &mut Args) -> CmdResult {
    args.finish()?;
    let info = acpi_info()?;
    println!("powering off");
    Err(CmdError::Power(crate::arch::power::power_off(&info.power)))
}

pub fn reboot(args: &mut Args) -> CmdResult {
    args.finish()?;
    println!("rebooting");
    let power = acpi::info().map(|i| i.power).unwrap_or_default();
    crate::arch::power::reset(&power)
}
