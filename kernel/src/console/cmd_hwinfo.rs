//! `hwinfo`: the hardware report to attach to a bug report: the processor (CPUID), the features
//! atoll looks at and what it chose with them, the memory map, the ACPI tables, cores and NUMA
//! nodes, and which consoles are in use.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::Args;
use atoll_kcore::cpuinfo::CpuInfo;
use atoll_kcore::json::Json;

use super::commands::CmdResult;
use crate::arch::{apic, cpu};
use crate::{acpi, mem, platform, println, time};

/// What atoll decided from the CPU's features (and what it runs with now).
struct Choices {
    apic: &'static str,
    simd: Vec<&'static str>,
    random: &'static str,
}

fn choices() -> Choices {
    let pae = atoll_pae::CpuFeatures::detect();
    let mut simd = alloc::vec!["sse2"];
    for (on, name) in [
        (pae.ssse3, "ssse3"),
        (pae.sse41, "sse4_1"),
        (pae.sse42, "sse4_2"),
    ] {
        if on {
            simd.push(name);
        }
    }
    Choices {
        apic: match apic::mode() {
            apic::Mode::X2Apic => "x2apic",
            apic::Mode::XApic => "xapic",
            apic::Mode::None => "none",
        },
        simd,
        random: crate::wasi::random_source(),
    }
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

pub fn hwinfo(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let cpu = CpuInfo::decode(|leaf, sub| {
        let (a, b, c, d) = cpu::cpuid(leaf, sub);
        [a, b, c, d]
    });
    let map = mem::map_summary();
    let frames = mem::frames::stats();
    let acpi = acpi::info();
    let madt_cpus = acpi.map_or(0, |a| a.cpus.len());
    let online = platform::online_cores();
    let nodes = mem::numa::node_count();
    let srat = acpi.is_some_and(|a| a.srat.is_some());
    let chosen = choices();
    let consoles = super::out::consoles();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .object("cpu")
            .str("vendor", &cpu.vendor)
            .str("brand", &cpu.brand)
            .u64("family", u64::from(cpu.family))
            .u64("model", u64::from(cpu.model))
            .u64("stepping", u64::from(cpu.stepping))
            .u64("max_leaf", u64::from(cpu.max_leaf))
            .u64("max_ext_leaf", u64::from(cpu.max_ext_leaf));
        match &cpu.hypervisor {
            Some(h) => j.str("hypervisor", h),
            None => j.null("hypervisor"),
        };
        j.u64("tsc_hz", time::tsc_hz())
            .end_object()
            .object("features");
        for (def, has) in cpu.features() {
            j.bool(def.name, has);
        }
        j.end_object().object("atoll");
        j.str("apic_mode", chosen.apic).array("simd");
        for s in &chosen.simd {
            j.str_value(s);
        }
        j.end_array().str("random", chosen.random).end_object();
        j.object("memory")
            .u64("regions", map.regions)
            .u64("usable_bytes", map.usable_bytes)
            .u64("usable_regions", map.usable_regions)
            .u64("bootloader_bytes", map.bootloader_bytes)
            .u64("firmware_bytes", map.firmware_bytes)
            .u64("top", map.top)
            .u64("frames_total", frames.total)
            .u64("frames_free", frames.free)
            .end_object();
        j.object("acpi");
        match acpi {
            Some(a) => {
                j.u64("revision", u64::from(a.revision))
                    .str("oem_id", &a.oem_id)
                    .array("tables");
                for t in &a.tables {
                    j.str_value(t);
                }
                j.end_array();
            }
            None => {
                j.null("revision");
            }
        }
        j.end_object()
            .object("cores")
            .u64("madt", madt_cpus as u64)
            .u64("online", u64::from(online))
            .u64("numa_nodes", u64::from(nodes))
            .bool("srat", srat)
            .end_object()
            .object("console")
            .bool("serial", consoles.serial)
            .bool("screen", consoles.screen)
            .bool("keyboard", consoles.keyboard)
            .end_object()
            .end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    let hyper = cpu
        .hypervisor
        .as_deref()
        .map_or(String::new(), |h| format!(", hypervisor {h}"));
    println!(
        "cpu:      {} family {:#x} model {:#x} stepping {}{hyper}",
        cpu.vendor, cpu.family, cpu.model, cpu.stepping
    );
    if !cpu.brand.is_empty() {
        println!("          {}", cpu.brand);
    }
    println!(
        "          CPUID leaves up to {:#x} and {:#x}; TSC {} MHz",
        cpu.max_leaf,
        cpu.max_ext_leaf,
        time::tsc_hz() / 1_000_000
    );
    println!("features:");
    for (def, has) in cpu.features() {
        println!(
            "  {:<14} {:<4} {}",
            def.name,
            if has { "yes" } else { "no" },
            def.used_for
        );
    }
    println!(
        "atoll:    APIC mode {}, generated SIMD {}, random {}",
        chosen.apic,
        chosen.simd.join("+"),
        chosen.random
    );
    println!(
        "memory:   {} regions: {} MiB usable in {} regions, {} MiB bootloader, {} MiB firmware, top {:#x}; {} of {} frames free",
        map.regions,
        mib(map.usable_bytes),
        map.usable_regions,
        mib(map.bootloader_bytes),
        mib(map.firmware_bytes),
        map.top,
        frames.free,
        frames.total
    );
    match acpi {
        Some(a) => println!(
            "acpi:     revision {}, OEM {}, tables {}",
            a.revision,
            a.oem_id,
            a.tables.join(" ")
        ),
        None => println!("acpi:     none found"),
    }
    println!(
        "cores:    {online} online of {madt_cpus} in the MADT; {nodes} NUMA node(s){}",
        if srat { " (SRAT)" } else { " (no SRAT)" }
    );
    println!(
        "console:  serial {}, screen {}, keyboard {}",
        if consoles.serial { "yes" } else { "no" },
        if consoles.screen { "yes" } else { "no" },
        if consoles.keyboard { "yes" } else { "no" }
    );
    Ok(())
}
