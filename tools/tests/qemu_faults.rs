//! Fault reports in QEMU: every kind of `fault` that halts gets its own boot (the kernel stops
//! after the report) and the report is checked line by line: the exception name and vector, the
//! `rip` line, the register block, the backtrace and `*** halted`. The `rip` is checked against
//! the kernel ELF the images were built from: the instruction there must be the one that raises
//! that exception, and for memory faults its address, computed from the reported registers, must
//! be the address the command touched. A report with a wrong or shifted trap frame fails.
//! (`fault breakpoint` returns to the shell: `qemu_console.rs` checks it.)
//!
//! The images are prebuilt (`./run-tests.sh` builds them); run alone with
//! `cargo test -p tools --release --test qemu_faults -- --test-threads 2`.

use std::collections::BTreeMap;

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use tools::qemu::kernel_elf::KernelElf;
use tools::qemu::{Checks, Machine, Options};

/// The register block's names, in the order the report prints them, four per line.
const REGISTERS: [&str; 16] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];
/// The address `fault pagefault` reads (canonical, never mapped).
const UNMAPPED_ADDR: u64 = 0x0dea_dbee_f000;
/// The address `fault gp` reads (not canonical).
const NON_CANONICAL_ADDR: u64 = 0x8000_0000_0000_0000;

/// `0x` and exactly 16 hex digits.
fn hex16(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    (digits.len() == 16)
        .then(|| u64::from_str_radix(digits, 16).ok())
        .flatten()
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// `0x<16 digits> (kernel+0x<offset>)`: the address and its offset in the kernel image.
fn kernel_addr(s: &str) -> Option<(u64, u64)> {
    let (addr, rest) = s.split_once(' ')?;
    let offset = rest.strip_prefix("(kernel+")?.strip_suffix(')')?;
    Some((hex16(addr)?, hex(offset)?))
}

/// What a report says, parsed; every malformed part is a recorded failure.
#[derive(Debug, Default)]
struct Report {
    /// `rip` and its offset in the kernel image.
    rip: Option<(u64, u64)>,
    cr2: Option<u64>,
    regs: BTreeMap<&'static str, u64>,
}

/// Checks the report's shape and returns what it says.
fn parse_report(
    c: &mut Checks,
    kind: &str,
    name: &str,
    vector: u32,
    smp: u32,
    report: &str,
) -> Report {
    let lines: Vec<&str> = report.lines().collect();
    let mut r = Report::default();
    let Some(start) = lines.iter().position(|l| l.starts_with("*** EXCEPTION: ")) else {
        c.fail(format!("`fault {kind}`: no `*** EXCEPTION: ` line"));
        return r;
    };
    let body = &lines[start..];
    let header = body[0]
        .strip_prefix(&format!("*** EXCEPTION: {name} (vector {vector}) on core "))
        .and_then(|core| core.parse::<u32>().ok());
    c.check(header.is_some_and(|core| core < smp), || {
        format!(
            "`fault {kind}`: the first line should be `*** EXCEPTION: {name} (vector {vector}) on \
             core N` (N < {smp}), got {:?}",
            body[0]
        )
    });
    let field = |prefix: &str| body.iter().find_map(|l| l.strip_prefix(prefix));
    c.check(field("error code: ").and_then(hex).is_some(), || {
        format!("`fault {kind}`: no `error code: 0x...` line")
    });
    r.rip = field("rip: ").and_then(kernel_addr);
    c.check(r.rip.is_some(), || {
        format!("`fault {kind}`: the rip line should read `rip: 0x<16 digits> (kernel+0x<offset>)`")
    });
    r.cr2 = field("cr2: ").and_then(|v| hex16(v.split(' ').next()?));
    let frame_rsp = field("cs: ")
        .and_then(|l| l.split("rsp: ").nth(1)?.split_whitespace().next())
        .and_then(hex16);

    // Four lines of four `name=0x<16 digits>`, in order.
    let block_start = body.iter().position(|l| l.trim_start().starts_with("rax="));
    let block = block_start.map_or(&[][..], |i| &body[i..(i + 4).min(body.len())]);
    let cells: Vec<&str> = block.iter().flat_map(|l| l.split_whitespace()).collect();
    let parsed: Vec<Option<(&str, u64)>> = cells
        .iter()
        .map(|cell| {
            let (n, v) = cell.split_once('=')?;
            Some((n, hex16(v)?))
        })
        .collect();
    let in_order = parsed.len() == 16
        && parsed
            .iter()
            .zip(REGISTERS)
            .all(|(p, want)| p.is_some_and(|(n, _)| n == want));
    c.check(in_order && block.len() == 4, || {
        format!("`fault {kind}`: the register block should be 4 lines of `name=0x<16 digits>` for {REGISTERS:?}, got {block:?}")
    });
    if in_order {
        r.regs = REGISTERS
            .iter()
            .zip(parsed.iter().flatten())
            .map(|(&name, &(_, v))| (name, v))
            .collect();
    }
    c.check(
        frame_rsp.is_some() && frame_rsp == r.regs.get("rsp").copied(),
        || format!("`fault {kind}`: the frame's rsp ({frame_rsp:?}) and the register block's should agree"),
    );

    // The backtrace starts at the faulting rip; every frame is in the kernel, at one base.
    let bt = body.iter().position(|l| l.trim_end() == "backtrace:");
    let frames: Vec<Option<(u64, u64)>> = bt.map_or(Vec::new(), |i| {
        body[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("  0x"))
            .map(|l| kernel_addr(l.trim()))
            .collect()
    });
    let base = r.rip.map(|(addr, off)| addr.wrapping_sub(off));
    c.check(
        frames.first().is_some_and(|f| *f == r.rip)
            && frames
                .iter()
                .all(|f| f.is_some_and(|(a, o)| Some(a.wrapping_sub(o)) == base)),
        || format!("`fault {kind}`: `backtrace:` should list the rip first, then kernel frames at the same base; got {frames:?}"),
    );
    c.check(lines.last() == Some(&"*** halted"), || {
        format!("`fault {kind}`: the report should end with `*** halted`")
    });
    r
}

/// The 64-bit register a (possibly narrower) register operand is part of, by name.
fn full_name(reg: Register) -> String {
    let name = format!("{reg:?}").to_ascii_lowercase();
    match name.as_bytes() {
        [b'e', _, _] => format!("r{}", &name[1..]),
        [b'r', .., b'd' | b'w' | b'b'] if name[1..name.len() - 1].parse::<u8>().is_ok() => {
            name[..name.len() - 1].to_string()
        }
        _ => name,
    }
}

/// The faulting instruction, decoded from the kernel ELF at the report's rip.
fn instruction_at(c: &mut Checks, kind: &str, r: &Report) -> Option<Instruction> {
    let (addr, offset) = r.rip?;
    let elf = match KernelElf::load() {
        Ok(elf) => elf,
        Err(e) => {
            c.fail(format!("`fault {kind}`: {e}"));
            return None;
        }
    };
    let bytes = match elf.bytes_at(offset) {
        Ok(b) => b,
        Err(e) => {
            c.fail(format!(
                "`fault {kind}`: the rip is not in the kernel's code: {e}"
            ));
            return None;
        }
    };
    let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let insn = decoder.decode();
    c.check(!insn.is_invalid(), || {
        format!("`fault {kind}`: no valid instruction at kernel+{offset:#x}")
    });
    Some(insn)
}

/// The address a memory operand of `insn` refers to, from the reported registers.
fn effective_address(insn: &Instruction, regs: &BTreeMap<&'static str, u64>) -> Option<u64> {
    (0..insn.op_count()).find(|&i| insn.op_kind(i) == OpKind::Memory)?;
    if insn.is_ip_rel_memory_operand() {
        return Some(insn.memory_displacement64());
    }
    let value = |reg: Register| -> Option<u64> {
        if reg == Register::None {
            return Some(0);
        }
        regs.get(full_name(reg).as_str()).copied()
    };
    let base = value(insn.memory_base())?;
    let index = value(insn.memory_index())?;
    Some(
        base.wrapping_add(index.wrapping_mul(u64::from(insn.memory_index_scale())))
            .wrapping_add(insn.memory_displacement64()),
    )
}

/// What the instruction at rip must be for each kind.
fn check_instruction(c: &mut Checks, kind: &str, r: &Report) {
    let Some(insn) = instruction_at(c, kind, r) else {
        return;
    };
    match kind {
        "divide" => {
            c.check(
                matches!(insn.mnemonic(), Mnemonic::Div | Mnemonic::Idiv),
                || {
                    format!(
                        "`fault divide`: rip should point at a div, not {:?}",
                        insn.mnemonic()
                    )
                },
            );
            if insn.op0_kind() == OpKind::Register {
                let divisor = r.regs.get(full_name(insn.op0_register()).as_str());
                c.check(divisor.is_some_and(|v| *v as u32 == 0), || {
                    format!(
                        "`fault divide`: the divisor {:?} should be 0 in the register block, got {divisor:?}",
                        insn.op0_register()
                    )
                });
            }
        }
        "ud" => c.check(
            matches!(
                insn.mnemonic(),
                Mnemonic::Ud0 | Mnemonic::Ud1 | Mnemonic::Ud2
            ),
            || {
                format!(
                    "`fault ud`: rip should point at ud2, not {:?}",
                    insn.mnemonic()
                )
            },
        ),
        "pagefault" | "heap-locked" | "gp" => {
            let want = if kind == "gp" {
                NON_CANONICAL_ADDR
            } else {
                UNMAPPED_ADDR
            };
            let ea = effective_address(&insn, &r.regs);
            c.check(ea == Some(want), || {
                format!(
                    "`fault {kind}`: the instruction at rip ({:?}) should access {want:#x} with \
                     the reported registers, got {ea:x?}",
                    insn.mnemonic()
                )
            });
            if is_page_fault(kind) {
                c.check(r.cr2 == Some(UNMAPPED_ADDR), || {
                    format!(
                        "`fault pagefault`: cr2 should be {UNMAPPED_ADDR:#018x}, got {:x?}",
                        r.cr2
                    )
                });
            }
        }
        _ => {}
    }
}

/// The kinds that raise a page fault (`heap-locked` reads the same unmapped address with the heap
/// lock held).
fn is_page_fault(kind: &str) -> bool {
    matches!(kind, "pagefault" | "heap-locked")
}

/// Boots, raises one exception and checks its report.
fn fault_batch(options: Options, kind: &str, name: &str, vector: u32) {
    let smp = options.smp;
    let mut m = Machine::boot(options);
    let report = m.command_expect_halt(&format!("fault {kind}"));
    let mut c = Checks::new();
    let r = parse_report(&mut c, kind, name, vector, smp, &report);
    check_instruction(&mut c, kind, &r);
    c.check(!is_page_fault(kind) || r.cr2.is_some(), || {
        format!("`fault {kind}`: no `cr2: 0x<16 digits>` line")
    });
    c.check(is_page_fault(kind) || r.cr2.is_none(), || {
        format!("`fault {kind}`: only page faults print cr2")
    });
    c.finish(&m);
}

#[test]
fn fault_pagefault_bios() {
    fault_batch(Options::bios(), "pagefault", "page fault", 14);
}

#[test]
fn fault_pagefault_uefi() {
    fault_batch(Options::uefi().smp(1), "pagefault", "page fault", 14);
}

/// The fault comes while the faulting code holds the heap lock: a report that allocated would
/// spin on that lock forever and never print `*** halted`.
#[test]
fn fault_with_heap_locked_bios() {
    fault_batch(Options::bios().smp(2), "heap-locked", "page fault", 14);
}

#[test]
fn fault_gp_bios() {
    fault_batch(Options::bios().smp(1), "gp", "general protection fault", 13);
}

#[test]
fn fault_ud_bios() {
    fault_batch(Options::bios().smp(1), "ud", "invalid opcode", 6);
}

#[test]
fn fault_divide_bios() {
    fault_batch(Options::bios().smp(1), "divide", "divide error", 0);
}

#[test]
fn fault_panic_bios() {
    let mut m = Machine::boot(Options::bios().smp(1));
    let report = m.command_expect_halt("fault panic");
    let mut c = Checks::new();
    c.check(
        report
            .lines()
            .any(|l| l.starts_with("*** PANIC: deliberate panic from the console at ")),
        || "`fault panic` should print `*** PANIC: deliberate panic from the console at FILE:LINE ...`".into(),
    );
    let bt = report
        .lines()
        .skip_while(|l| l.trim_end() != "backtrace:")
        .nth(1);
    c.check(bt.is_some_and(|l| kernel_addr(l.trim()).is_some()), || {
        format!("`fault panic`: `backtrace:` then kernel frames expected, got {bt:?}")
    });
    c.check(report.lines().last() == Some("*** halted"), || {
        "`fault panic` should end with `*** halted`".into()
    });
    c.finish(&m);
}
