//! Instruction scheduling: a list scheduler over each basic block of an instruction list, run
//! just before encoding (`Options::schedule`). It reorders independent instructions so that
//! long-latency ones (loads, multiplies, divides, float arithmetic) start early and their users
//! late. What may move is decided from iced-x86's instruction info (registers, memory and flags
//! each instruction reads and writes):
//!
//! - **Barriers** stay where they are and end a block: labels (zero-byte markers), calls,
//!   returns, jumps, branches other than to a trap stub, `push`/`pop`/`leave`, string
//!   instructions, locked or serializing instructions, anything that writes `rsp`/`rbp` or
//!   touches a register other than a general or XMM register. A block is also cut every
//!   [`MAX_BLOCK`] instructions.
//! - **Registers:** read-after-write, write-after-read and write-after-write order is kept per
//!   64-bit general register and per XMM register (a partial write is ordered after the
//!   previous full write by the write-after-write rule).
//! - **Flags** are one resource. A flags write no later instruction of the block reads is a
//!   *clobber*: it may move anywhere between the previous flags value's last reader and the
//!   next live flags write, so it never lands between a live write and its readers. The last
//!   flags write of a block counts as live (a branch or the next block may read it), and
//!   instructions that write only some flags, or none when a count is 0 (shifts, rotates,
//!   `inc`/`dec`), read them too.
//! - **Memory:** the wasm frame (`rbp`/`rsp`-based operands) and the VM context (`r14`-based,
//!   no index) are distinguished by displacement and size, so frame slots and context fields
//!   that do not overlap are independent; linear memory (`r15`-based), the VM context and the
//!   frame never alias each other; any other address may alias anything, the frame included.
//! - **Traps keep their place:** a conditional branch to a trap stub reads the flags and `r14`
//!   (the stub reads the trap exit from the VM context) and may move with register work, but
//!   every instruction that may fault (linear-memory or arbitrary-pointer accesses, `div`) and
//!   every write outside the frame stays on its side of it, and such instructions keep their
//!   order among themselves (two loads may swap). So a trap happens at the same point of the
//!   memory's history, and a bounds or null check still precedes the access it guards; only
//!   registers and frame slots, which no one sees after a trap, may differ.
//!
//! Within a block, nodes are issued one per cycle by height (latency-weighted longest path to
//! the block's end), never before their operands are ready when something else is. A block
//! without a long-latency instruction keeps its order.
//!
//! Metadata: instruction indices that denote positions (labels, function starts, return
//! addresses, the trap exit) are block starts or barriers, which do not move. An operator
//! boundary in the middle of a block maps to the first position, in the new order, of any
//! instruction from it to the block's end ([`Plan::index_pos`]): code from there on belongs
//! to that operator or a later one, except instructions of earlier operators scheduled after
//! it. Offsets stay monotonic, and every offset is an instruction start, so relocation (which
//! copies code and maps instruction starts) and stack walks (which use call sites) see the
//! scheduled code exactly as encoded.

use alloc::vec::Vec;

use iced_x86::{
    Code, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register, RflagsBits,
};

/// Longest block scheduled as one (dependencies are 64-bit masks).
pub(crate) const MAX_BLOCK: usize = 64;

/// Register resources: 16 general registers, 16 XMM registers, then the flags.
const FLAGS: u32 = 32;
const R14: u32 = 14;

/// The new order and where each instruction index's metadata now points.
pub(crate) struct Plan {
    /// Position to instruction index.
    pub order: Vec<u32>,
    /// Instruction index (and one past the end) to the position its metadata means.
    pub index_pos: Vec<u32>,
}

/// Where a memory operand points.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    /// `[rbp + disp]` or `[rsp + disp]` (the base register's number), no index.
    Frame(u8),
    /// `[r14 + disp]`, no index.
    Vmctx,
    /// `[r15 + ...]`.
    Linear,
    /// Anything else.
    Other,
}

#[derive(Clone, Copy)]
struct Access {
    region: Region,
    disp: i64,
    size: u32,
    write: bool,
}

/// What the scheduler knows about one instruction.
#[derive(Clone, Copy, Default)]
struct Node {
    reads: u64,
    writes: u64,
    /// At most two memory operands (more: a barrier).
    mem: [Option<Access>; 2],
    /// Writes memory outside the frame, or branches to a trap stub.
    side: bool,
    /// May fault (accesses linear memory or an arbitrary pointer, divides).
    faults: bool,
    /// `div`/`idiv`.
    divides: bool,
    latency: u32,
}

impl Node {
    fn writes_flags(&self) -> bool {
        self.writes & (1 << FLAGS) != 0
    }
    fn reads_flags(&self) -> bool {
        self.reads & (1 << FLAGS) != 0
    }
    /// Ordered against the other ordered instructions (loads against loads excepted).
    fn ordered(&self) -> bool {
        self.side || self.faults
    }
    fn load_only(&self) -> bool {
        !self.side && !self.divides && self.mem.iter().flatten().all(|a| !a.write)
    }
}

fn reg_bit(r: Register) -> Option<u32> {
    if r.is_gpr() {
        Some(r.full_register() as u32 - Register::RAX as u32)
    } else if r.is_xmm() {
        Some(16 + (r as u32 - Register::XMM0 as u32))
    } else {
        None
    }
}

fn latency(ins: &Instruction, loads: bool) -> u32 {
    let op = match ins.mnemonic() {
        Mnemonic::Div | Mnemonic::Idiv => 25,
        Mnemonic::Divsd | Mnemonic::Sqrtsd => 15,
        Mnemonic::Divss | Mnemonic::Sqrtss => 11,
        Mnemonic::Imul | Mnemonic::Mul | Mnemonic::Popcnt | Mnemonic::Lzcnt | Mnemonic::Tzcnt => 3,
        Mnemonic::Addsd
        | Mnemonic::Addss
        | Mnemonic::Subsd
        | Mnemonic::Subss
        | Mnemonic::Mulsd
        | Mnemonic::Mulss
        | Mnemonic::Cvtsi2sd
        | Mnemonic::Cvtsi2ss
        | Mnemonic::Cvttsd2si
        | Mnemonic::Cvttss2si
        | Mnemonic::Cvtsd2ss
        | Mnemonic::Cvtss2sd
        | Mnemonic::Roundsd
        | Mnemonic::Roundss => 4,
        _ => 1,
    };
    if loads { op + 4 } else { op }
}

fn is_barrier_mnemonic(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Lfence
            | Mnemonic::Mfence
            | Mnemonic::Sfence
            | Mnemonic::Cpuid
            | Mnemonic::Rdtsc
            | Mnemonic::Rdtscp
            | Mnemonic::Xchg
            | Mnemonic::Cmpxchg
            | Mnemonic::Xadd
            | Mnemonic::Ldmxcsr
            | Mnemonic::Stmxcsr
            | Mnemonic::Pause
    )
}

/// Flags an instruction's info says it writes only in part (or not at all for some operands).
fn partial_flags_writer(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Shl
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
            | Mnemonic::Shld
            | Mnemonic::Shrd
            | Mnemonic::Inc
            | Mnemonic::Dec
    )
}

const STATUS: u32 = RflagsBits::OF
    | RflagsBits::SF
    | RflagsBits::ZF
    | RflagsBits::AF
    | RflagsBits::CF
    | RflagsBits::PF;

/// The node of `ins`, or `None` for a barrier.
fn node(
    ins: &Instruction,
    info: &mut InstructionInfoFactory,
    trap_labels: &[bool],
) -> Option<Node> {
    if ins.code() == Code::Zero_bytes {
        return None;
    }
    if ins.op_count() > 0 && ins.op0_kind() == OpKind::NearBranch64 {
        // Only a conditional branch to a trap stub is not a barrier.
        let label = ins.near_branch64() as usize;
        let is_trap = ins.code().condition_code() != iced_x86::ConditionCode::None
            && trap_labels.get(label).copied().unwrap_or(false);
        return is_trap.then_some(Node {
            reads: (1 << FLAGS) | (1 << R14),
            side: true,
            latency: 1,
            ..Node::default()
        });
    }
    if ins.flow_control() != iced_x86::FlowControl::Next
        || ins.has_rep_prefix()
        || ins.has_repne_prefix()
        || ins.has_lock_prefix()
        || ins.is_stack_instruction()
        || is_barrier_mnemonic(ins.mnemonic())
    {
        return None;
    }
    let mnemonic = ins.mnemonic();
    let info = info.info(ins);
    let mut n = Node::default();
    for u in info.used_registers() {
        if u.register().is_segment_register() {
            continue;
        }
        let bit = reg_bit(u.register())?;
        let (r, w) = match u.access() {
            OpAccess::Read | OpAccess::CondRead => (true, false),
            OpAccess::Write => (false, true),
            OpAccess::None | OpAccess::NoMemAccess => (false, false),
            _ => (true, true),
        };
        if w && (bit == 4 || bit == 5) {
            return None;
        }
        if r {
            n.reads |= 1 << bit;
        }
        if w {
            n.writes |= 1 << bit;
        }
    }
    let mem = info.used_memory();
    if mem.len() > 2 {
        return None;
    }
    let mut loads = false;
    for (slot, m) in n.mem.iter_mut().zip(mem) {
        let (r, w) = match m.access() {
            OpAccess::Read | OpAccess::CondRead => (true, false),
            OpAccess::NoMemAccess | OpAccess::None => continue,
            OpAccess::Write | OpAccess::CondWrite => (false, true),
            _ => (true, true),
        };
        let base = m.base();
        let no_index = m.index() == Register::None;
        let region = match base {
            Register::RBP if no_index => Region::Frame(5),
            Register::RSP if no_index => Region::Frame(4),
            Register::R14 if no_index => Region::Vmctx,
            Register::R15 => Region::Linear,
            Register::None => return None,
            _ => Region::Other,
        };
        loads |= r;
        if w && !matches!(region, Region::Frame(_)) {
            n.side = true;
        }
        if matches!(region, Region::Linear | Region::Other) {
            n.faults = true;
        }
        *slot = Some(Access {
            region,
            disp: m.displacement() as i64,
            size: m.memory_size().size().max(1) as u32,
            write: w,
        });
    }
    if matches!(mnemonic, Mnemonic::Div | Mnemonic::Idiv) {
        n.faults = true;
        n.divides = true;
    }
    let fr = ins.rflags_read();
    let fw = ins.rflags_modified();
    if fr != 0 {
        n.reads |= 1 << FLAGS;
    }
    if fw != 0 {
        n.writes |= 1 << FLAGS;
        if fw & STATUS != STATUS || partial_flags_writer(mnemonic) {
            n.reads |= 1 << FLAGS;
        }
    }
    n.latency = latency(ins, loads);
    Some(n)
}

/// Whether two memory accesses, at least one a write, may touch the same bytes.
fn may_alias(a: &Access, b: &Access) -> bool {
    let overlap = || a.disp < b.disp + i64::from(b.size) && b.disp < a.disp + i64::from(a.size);
    match (a.region, b.region) {
        (Region::Frame(x), Region::Frame(y)) => x != y || overlap(),
        (Region::Vmctx, Region::Vmctx) => overlap(),
        (Region::Other, _) | (_, Region::Other) => true,
        (Region::Linear, Region::Linear) => true,
        _ => false,
    }
}

fn memory_conflict(a: &Node, b: &Node) -> bool {
    a.mem.iter().flatten().any(|x| {
        b.mem
            .iter()
            .flatten()
            .any(|y| (x.write || y.write) && may_alias(x, y))
    })
}

/// Schedules every block of `insns`.
pub(crate) fn schedule(insns: &[Instruction], trap_labels: &[bool]) -> Plan {
    let n = insns.len();
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut index_pos: Vec<u32> = alloc::vec![0; n + 1];
    index_pos[n] = n as u32;
    let mut factory = InstructionInfoFactory::new();
    let mut block: Vec<Node> = Vec::with_capacity(MAX_BLOCK);
    let mut scratch = Scratch::default();
    let mut start = 0;
    for (i, ins) in insns.iter().enumerate() {
        match node(ins, &mut factory, trap_labels) {
            Some(node) => {
                if block.len() == MAX_BLOCK {
                    flush(start, &mut block, &mut order, &mut index_pos, &mut scratch);
                    start = i;
                }
                block.push(node);
            }
            None => {
                flush(start, &mut block, &mut order, &mut index_pos, &mut scratch);
                index_pos[i] = i as u32;
                order.push(i as u32);
                start = i + 1;
            }
        }
    }
    flush(start, &mut block, &mut order, &mut index_pos, &mut scratch);
    debug_assert_eq!(order.len(), n);
    Plan { order, index_pos }
}

#[derive(Default)]
struct Scratch {
    preds: Vec<u64>,
    succs: Vec<u64>,
    height: Vec<u32>,
    new_pos: Vec<u32>,
}

/// Schedules the block of `block.len()` nodes starting at instruction `start`, appends its
/// order and fills its `index_pos` entries, and empties it.
fn flush(
    start: usize,
    block: &mut Vec<Node>,
    order: &mut Vec<u32>,
    index_pos: &mut [u32],
    s: &mut Scratch,
) {
    let len = block.len();
    if len == 0 {
        return;
    }
    let base = order.len() as u32;
    debug_assert_eq!(base as usize, start);
    // Nothing to hide without a long-latency instruction: keep the order (and the time).
    if len == 1 || block.iter().all(|n| n.latency <= 1) {
        for (i, slot) in index_pos[start..start + len].iter_mut().enumerate() {
            *slot = (start + i) as u32;
            order.push(*slot);
        }
        block.clear();
        return;
    }
    dependencies(block, &mut s.preds);
    // Heights: latency-weighted longest path to the block's end.
    s.height.clear();
    s.height.extend(block.iter().map(|n| n.latency));
    for i in (0..len).rev() {
        let mut p = s.preds[i];
        while p != 0 {
            let j = p.trailing_zeros() as usize;
            p &= p - 1;
            s.height[j] = s.height[j].max(block[j].latency + s.height[i]);
        }
    }
    // List scheduling, one instruction per cycle. Successors learn their operands' ready
    // time when a predecessor issues and join `ready` with their last predecessor.
    s.succs.clear();
    s.succs.resize(len, 0);
    let mut ready = 0u64;
    for i in 0..len {
        let mut p = s.preds[i];
        if p == 0 {
            ready |= 1 << i;
        }
        while p != 0 {
            let j = p.trailing_zeros() as usize;
            p &= p - 1;
            s.succs[j] |= 1 << i;
        }
    }
    let mut done = 0u64;
    let mut operands_at = [0u32; MAX_BLOCK];
    let mut cycle = 0u32;
    s.new_pos.clear();
    s.new_pos.resize(len, 0);
    for step in 0..len {
        let mut best = usize::MAX;
        let mut r = ready;
        while r != 0 {
            let i = r.trailing_zeros() as usize;
            r &= r - 1;
            if best == usize::MAX {
                best = i;
                continue;
            }
            let (now, b_now) = (operands_at[i] <= cycle, operands_at[best] <= cycle);
            let better = if now != b_now {
                now
            } else if now {
                s.height[i] > s.height[best]
            } else {
                operands_at[i] < operands_at[best]
                    || (operands_at[i] == operands_at[best] && s.height[i] > s.height[best])
            };
            if better {
                best = i;
            }
        }
        let i = best;
        debug_assert!(i < len, "a block's dependencies are acyclic");
        let issue = cycle.max(operands_at[i]);
        let finish = issue + block[i].latency;
        cycle = issue + 1;
        done |= 1 << i;
        ready &= !(1 << i);
        let mut t = s.succs[i];
        while t != 0 {
            let k = t.trailing_zeros() as usize;
            t &= t - 1;
            operands_at[k] = operands_at[k].max(finish);
            if s.preds[k] & !done == 0 {
                ready |= 1 << k;
            }
        }
        s.new_pos[i] = base + step as u32;
        order.push((start + i) as u32);
    }
    // Metadata: each index maps to the first new position of it or anything after it.
    let mut min = u32::MAX;
    for i in (0..len).rev() {
        min = min.min(s.new_pos[i]);
        index_pos[start + i] = min;
    }
    block.clear();
}

/// Fills `preds[i]` with the nodes of `block` that must precede node `i` (bit j: node j).
fn dependencies(block: &[Node], preds: &mut Vec<u64>) {
    let len = block.len();
    preds.clear();
    preds.resize(len, 0);
    // Live flags writes: read later in the block, or the block's last flags write.
    let mut live_flags = [false; MAX_BLOCK];
    let mut live = true;
    for i in (0..len).rev() {
        let n = &block[i];
        if n.writes_flags() {
            live_flags[i] = live || n.reads_flags();
            live = false;
        }
        if n.reads_flags() {
            live = true;
        }
    }
    // Registers (not the flags): last writer and readers since, per resource.
    let mut last_write = [u8::MAX; 32];
    let mut readers = [0u64; 32];
    // Flags: last live definition, its readers, clobbers since.
    let mut flag_def: Option<usize> = None;
    let mut flag_readers = 0u64;
    let mut clobbers = 0u64;
    let mut memory_nodes = 0u64;
    for i in 0..len {
        let n = &block[i];
        let mut p = 0u64;
        let regs = (n.reads | n.writes) & ((1 << FLAGS) - 1);
        let mut bits = regs;
        while bits != 0 {
            let r = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if last_write[r] != u8::MAX {
                p |= 1 << last_write[r];
            }
            if n.writes & (1 << r) != 0 {
                p |= readers[r];
            }
        }
        let mut bits = regs;
        while bits != 0 {
            let r = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if n.writes & (1 << r) != 0 {
                last_write[r] = i as u8;
                readers[r] = 0;
            } else {
                readers[r] |= 1 << i;
            }
        }
        if n.writes_flags() || n.reads_flags() {
            if let Some(d) = flag_def {
                p |= 1 << d;
            }
            if n.writes_flags() && live_flags[i] {
                p |= flag_readers | clobbers;
                flag_def = Some(i);
                flag_readers = 0;
                clobbers = 0;
            } else if n.writes_flags() {
                p |= flag_readers;
                clobbers |= 1 << i;
            } else {
                flag_readers |= 1 << i;
            }
        }
        // Memory and ordering against the earlier nodes that access memory or are ordered.
        let touches = n.mem.iter().any(Option::is_some);
        if touches || n.ordered() {
            let mut m = memory_nodes & !p;
            while m != 0 {
                let j = m.trailing_zeros() as usize;
                m &= m - 1;
                let o = &block[j];
                let ordered = n.ordered() && o.ordered() && !(n.load_only() && o.load_only());
                if ordered || (touches && memory_conflict(o, n)) {
                    p |= 1 << j;
                }
            }
            memory_nodes |= 1 << i;
        }
        preds[i] = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::MemoryOperand;

    fn mem(base: Register, disp: i64) -> MemoryOperand {
        MemoryOperand::with_base_displ(base, disp)
    }

    fn plan(insns: &[Instruction], trap_label: bool) -> Plan {
        schedule(insns, &[trap_label])
    }

    #[test]
    fn a_load_moves_ahead_of_independent_work() {
        // add ecx, 1; add edx, 2; mov eax, [r15+rsi]; add eax, ebx  -> the load first.
        let insns = [
            Instruction::with2(Code::Add_rm32_imm8, Register::ECX, 1).unwrap(),
            Instruction::with2(Code::Add_rm32_imm8, Register::EDX, 2).unwrap(),
            Instruction::with2(
                Code::Mov_r32_rm32,
                Register::EAX,
                MemoryOperand::with_base_index(Register::R15, Register::RSI),
            )
            .unwrap(),
            Instruction::with2(Code::Add_r32_rm32, Register::EAX, Register::EBX).unwrap(),
        ];
        let p = plan(&insns, false);
        assert_eq!(p.order[0], 2);
        assert_eq!(*p.order.last().unwrap(), 3);
        // Index 0's metadata now points at the block start, index 3's at its own position.
        assert_eq!(p.index_pos[0], 0);
        assert_eq!(p.index_pos[3], 3);
        assert_eq!(p.index_pos[4], 4);
    }

    #[test]
    fn a_guarded_load_stays_behind_its_trap_check() {
        // cmp esi, [r14+8]; ja trap; mov eax, [r15+rsi]; mov ecx, [rbp-16]
        let insns = [
            Instruction::with2(Code::Cmp_r32_rm32, Register::ESI, mem(Register::R14, 8)).unwrap(),
            Instruction::with_branch(Code::Ja_rel32_64, 0).unwrap(),
            Instruction::with2(
                Code::Mov_r32_rm32,
                Register::EAX,
                MemoryOperand::with_base_index(Register::R15, Register::RSI),
            )
            .unwrap(),
            Instruction::with2(Code::Mov_r32_rm32, Register::ECX, mem(Register::RBP, -16)).unwrap(),
        ];
        let p = plan(&insns, true);
        let pos = |i: u32| p.order.iter().position(|&x| x == i).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(2));
        // The frame load is free to go ahead of the check.
        assert!(pos(3) < pos(2));
        // Not a trap label: the branch is a barrier and nothing crosses it.
        let p = plan(&insns, false);
        assert_eq!(p.order, [0, 1, 2, 3]);
    }

    #[test]
    fn a_flags_clobber_never_splits_a_compare_from_its_reader() {
        // xor eax, eax (clobber, dead); cmp ecx, edx; setb bl; add esi, 1 (last write: live)
        let insns = [
            Instruction::with2(Code::Imul_r32_rm32, Register::EDI, Register::EDI).unwrap(),
            Instruction::with2(Code::Cmp_r32_rm32, Register::ECX, Register::EDX).unwrap(),
            Instruction::with1(Code::Setb_rm8, Register::BL).unwrap(),
            Instruction::with2(Code::Add_rm32_imm8, Register::ESI, 1).unwrap(),
        ];
        let p = plan(&insns, false);
        let pos = |i: u32| p.order.iter().position(|&x| x == i).unwrap();
        assert_eq!(pos(2), pos(1) + 1, "{:?}", p.order);
        assert!(pos(3) > pos(2));
        // The multiply (a dead flags write) may go first, never between cmp and setb.
        assert_eq!(pos(0), 0);
    }

    #[test]
    fn stores_and_faulting_loads_keep_their_order() {
        // mov [r15+rax], ecx; mov edx, [r15+rbx]; mov [rbp-8], esi; mov edi, [rbp-8]
        let insns = [
            Instruction::with2(
                Code::Mov_rm32_r32,
                MemoryOperand::with_base_index(Register::R15, Register::RAX),
                Register::ECX,
            )
            .unwrap(),
            Instruction::with2(
                Code::Mov_r32_rm32,
                Register::EDX,
                MemoryOperand::with_base_index(Register::R15, Register::RBX),
            )
            .unwrap(),
            Instruction::with2(Code::Mov_rm32_r32, mem(Register::RBP, -8), Register::ESI).unwrap(),
            Instruction::with2(Code::Mov_r32_rm32, Register::EDI, mem(Register::RBP, -8)).unwrap(),
        ];
        let p = plan(&insns, false);
        let pos = |i: u32| p.order.iter().position(|&x| x == i).unwrap();
        assert!(pos(0) < pos(1));
        assert!(pos(2) < pos(3));
    }
}
