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

use iced_x86::{Instruction, InstructionInfoFactory};

mod facts;

use facts::{FLAGS, Node, memory_conflict, node};

/// Longest block scheduled as one (dependencies are 64-bit masks).
pub(crate) const MAX_BLOCK: usize = 64;

/// The new order and where each instruction index's metadata now points.
pub(crate) struct Plan {
    /// Position to instruction index.
    pub order: Vec<u32>,
    /// Instruction index (and one past the end) to the position its metadata means.
    pub index_pos: Vec<u32>,
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
mod tests;
