//! The labels of a module's trap stubs. Lowering jumps to them; the trampoline module emits the
//! stubs behind them. Both use this module, so neither depends on the other for it.

use crate::emit::CodeLabel;

use crate::emit::Emitter;
use crate::vmctx::TrapCode;

/// One label per trap code, plus the stub that traps with the code a libcall or host function
/// stored in `VmContext::trap_code`.
#[derive(Clone, Copy)]
pub(crate) struct TrapLabels {
    codes: [CodeLabel; TrapCode::ALL.len()],
    vm: CodeLabel,
}

impl TrapLabels {
    /// Fresh labels in `e`, bound later by the trap stubs.
    pub fn new(e: &mut Emitter) -> Self {
        Self {
            codes: core::array::from_fn(|_| e.trap_label()),
            vm: e.trap_label(),
        }
    }

    /// The stub that traps with `code`.
    pub fn code(&self, code: TrapCode) -> CodeLabel {
        self.codes[code as usize - 1]
    }

    /// The stub that traps with the code in `VmContext::trap_code`.
    pub fn vm(&self) -> CodeLabel {
        self.vm
    }
}
