//! Debugging commands: `fault` (deliberate faults, to see the reports) and `vm` (the kernel's
//! virtual-memory figures and a self-test on real page tables).

use alloc::string::String;

use atoll_kcore::args::{ArgError, Args};
use atoll_kcore::json::Json;

use super::commands::{CmdError, CmdResult};
use crate::arch::debug;
use crate::mem::{vm, vm_selftest};
use crate::println;

const FAULT_KINDS: &str = "fault kind (pagefault, heap-locked, gp, ud, divide, breakpoint, panic)";

/// Reads a canonical address that is never mapped: a page fault (the kernel halts).
fn read_unmapped() {
    let v = debug::raise_page_fault();
    println!("read {v:#x}?");
}

pub fn fault(args: &mut Args) -> CmdResult {
    let kind = args.required(FAULT_KINDS)?;
    args.finish()?;
    match kind.as_str() {
        "pagefault" => read_unmapped(),
        // The report must come out although the heap is locked: it allocates nothing.
        "heap-locked" => crate::mem::heap::with_lock_held(read_unmapped),
        "gp" => {
            let v = debug::raise_general_protection();
            println!("read {v:#x}?");
        }
        "ud" => debug::raise_invalid_opcode(),
        "divide" => debug::raise_divide_error(),
        "breakpoint" => debug::raise_breakpoint(),
        "panic" => panic!("deliberate panic from the console"),
        other => {
            return Err(CmdError::Args(ArgError::Invalid {
                what: FAULT_KINDS,
                value: String::from(other),
            }));
        }
    }
    Ok(())
}

/// `vm translate ADDR`: how the page tables map a virtual address (e.g. to check that evicted
/// or vacated code is really gone).
fn translate(addr: &str, json: bool) -> CmdResult {
    let digits = addr.strip_prefix("0x").unwrap_or(addr);
    let va = u64::from_str_radix(digits, if digits.len() == addr.len() { 10 } else { 16 })
        .map_err(|_| CmdError::Failed(alloc::format!("`{addr}` is not an address")))?;
    let t = crate::arch::physmem::translate(atoll_kcore::addr::VirtAddr(va));
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("address", va)
            .bool("mapped", t.is_some());
        if let Some(t) = t {
            j.u64("phys", t.phys.0)
                .u64("page_bytes", t.page_bytes)
                .bool("writable", t.protection.write)
                .bool("executable", t.protection.exec);
        }
        j.end_object();
        println!("{}", j.finish());
    } else {
        match t {
            Some(t) => println!(
                "{va:#x} -> {:#x} ({} byte page{}{})",
                t.phys.0,
                t.page_bytes,
                if t.protection.write { ", writable" } else { "" },
                if t.protection.exec {
                    ", executable"
                } else {
                    ""
                }
            ),
            None => println!("{va:#x}: not mapped"),
        }
    }
    Ok(())
}

pub fn vm(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let sub = args.positional();
    if sub.as_deref() == Some("translate") {
        let addr = args.required("virtual address")?;
        args.finish()?;
        return translate(&addr, json);
    }
    args.finish()?;
    match sub.as_deref() {
        None => {
            let s = vm::stats();
            if json {
                let mut j = Json::new();
                j.begin_object()
                    .u64("region_base", s.region_base)
                    .u64("reserved_bytes", s.reserved_bytes)
                    .u64("pages_4k", s.pages_4k)
                    .u64("pages_2m", s.pages_2m)
                    .end_object();
                println!("{}", j.finish());
            } else {
                println!(
                    "kernel region at {:#x}: {} bytes reserved, {} 4K pages and {} 2M pages mapped",
                    s.region_base, s.reserved_bytes, s.pages_4k, s.pages_2m
                );
            }
            Ok(())
        }
        Some("selftest") => selftest(json),
        Some(other) => Err(CmdError::Args(ArgError::UnexpectedArgument(String::from(
            other,
        )))),
    }
}

fn selftest(json: bool) -> CmdResult {
    let results = vm_selftest::run()?;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("checks", results.len() as u64)
            .u64("passed", (results.len() - failed) as u64)
            .u64("failed", failed as u64)
            .array("results");
        for (name, ok) in &results {
            j.begin_object()
                .str("name", name)
                .bool("ok", *ok)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
    } else {
        for (name, ok) in &results {
            println!("  {} {}", if *ok { "ok  " } else { "FAIL" }, name);
        }
        println!(
            "vm selftest: {} passed, {} failed",
            results.len() - failed,
            failed
        );
    }
    if failed > 0 {
        return Err(CmdError::Failed(alloc::format!(
            "vm selftest: {failed} checks failed"
        )));
    }
    Ok(())
}
