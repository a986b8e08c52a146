//! The blocks open at a point of a function's operators, followed operator by operator: how
//! many of them are loops (the inliner inlines only inside loops, the register pinning
//! weighs a use by its loop depth).

use alloc::vec::Vec;

use wasmparser::Operator;

/// The blocks open at a point of a function's operators, to tell whether it is inside a loop.
#[derive(Default)]
pub(super) struct LoopNest {
    /// Open blocks, innermost last (`true`: a loop).
    open: Vec<bool>,
    /// How many of `open` are loops.
    loops: usize,
}

impl LoopNest {
    /// Follows `op` (blocks, loops, `if`s and `end`s change the nest; nothing else does).
    pub fn see(&mut self, op: &Operator<'_>) {
        match op {
            Operator::Block { .. } | Operator::If { .. } | Operator::TryTable { .. } => {
                self.open.push(false)
            }
            Operator::Loop { .. } => {
                self.open.push(true);
                self.loops += 1;
            }
            Operator::End => self.loops -= usize::from(self.open.pop() == Some(true)),
            _ => {}
        }
    }

    /// How many loops are open.
    pub fn loops(&self) -> usize {
        self.loops
    }

    /// Whether the point is inside a loop.
    pub fn inside(&self) -> bool {
        self.loops > 0
    }
}
