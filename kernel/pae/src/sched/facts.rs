//! What the scheduler knows about one instruction (from iced-x86's instruction info): the
//! registers and flags it reads and writes, its memory operands and where they point, whether
//! it may fault or has effects outside the frame, its latency; or that it is a barrier.

use iced_x86::{
    Code, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register, RflagsBits,
};

/// Register resources: 16 general registers, 16 XMM registers, then the flags.
pub(super) const FLAGS: u32 = 32;
const R14: u32 = 14;

/// Where a memory operand points.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Region {
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
pub(super) struct Access {
    region: Region,
    disp: i64,
    size: u32,
    write: bool,
}

/// What the scheduler knows about one instruction.
#[derive(Clone, Copy, Default)]
pub(super) struct Node {
    pub(super) reads: u64,
    pub(super) writes: u64,
    /// At most two memory operands (more: a barrier).
    pub(super) mem: [Option<Access>; 2],
    /// Writes memory outside the frame, or branches to a trap stub.
    side: bool,
    /// May fault (accesses linear memory or an arbitrary pointer, divides).
    faults: bool,
    /// `div`/`idiv`.
    divides: bool,
    pub(super) latency: u32,
}

impl Node {
    pub(super) fn writes_flags(&self) -> bool {
        self.writes & (1 << FLAGS) != 0
    }
    pub(super) fn reads_flags(&self) -> bool {
        self.reads & (1 << FLAGS) != 0
    }
    /// Ordered against the other ordered instructions (loads against loads excepted).
    pub(super) fn ordered(&self) -> bool {
        self.side || self.faults
    }
    pub(super) fn load_only(&self) -> bool {
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
pub(super) fn node(
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

pub(super) fn memory_conflict(a: &Node, b: &Node) -> bool {
    a.mem.iter().flatten().any(|x| {
        b.mem
            .iter()
            .flatten()
            .any(|y| (x.write || y.write) && may_alias(x, y))
    })
}
