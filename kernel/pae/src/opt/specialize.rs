//! Profile-guided specialization on constant parameters.
//!
//! [`ArgProfile`] records the arguments of calls (e.g. a task's export calls); a parameter that
//! had the same value (the same bits) in every recorded call, over at least a minimum number of
//! calls, becomes a [`Specialize`]. The code generator then emits, inside the function, a
//! guard after the prologue (`cmp` of each such parameter with its value; any difference jumps
//! to the general body) followed by a body lowered with those parameters as constants, which
//! the existing constant folding and dead-code elimination propagate; the general body follows.
//!
//! Provably correct: a specialized parameter is only read, never written (functions that
//! `local.set`/`local.tee` it are not specialized on it), so inside the specialized body it
//! holds the guarded value everywhere; values are compared as raw bits (i32/f32: the low 4
//! bytes), so a float is folded only when bit-identical. References are never specialized.

use alloc::vec::Vec;

use wasmparser::Operator;

use crate::module::Ty;

/// Function `func`'s parameter `param` specialized to the raw bits `bits` (i32/f32
/// zero-extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specialize {
    /// Function index.
    pub func: u32,
    /// Parameter index.
    pub param: u32,
    /// The value.
    pub bits: u64,
}

/// Per function: how many calls were recorded and, per parameter, the value every one of them
/// had (`None` once two differed).
#[derive(Debug, Clone, Default)]
pub struct ArgProfile {
    funcs: Vec<(u64, Vec<Option<u64>>)>,
}

impl ArgProfile {
    /// An empty profile.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a call of `func` with `args` (raw bits, as `Instance::invoke` takes them).
    pub fn record(&mut self, func: u32, args: &[u64]) {
        let i = func as usize;
        if self.funcs.len() <= i {
            self.funcs.resize(i + 1, (0, Vec::new()));
        }
        let (calls, values) = &mut self.funcs[i];
        if *calls == 0 {
            *values = args.iter().copied().map(Some).collect();
        } else {
            for (v, &a) in values.iter_mut().zip(args) {
                if *v != Some(a) {
                    *v = None;
                }
            }
        }
        *calls += 1;
    }

    /// Calls recorded for `func`.
    pub fn calls(&self, func: u32) -> u64 {
        self.funcs.get(func as usize).map_or(0, |f| f.0)
    }

    /// Every parameter that had one value in all of at least `min_calls` recorded calls.
    pub fn constant_params(&self, min_calls: u64) -> Vec<Specialize> {
        let mut out = Vec::new();
        for (func, (calls, values)) in self.funcs.iter().enumerate() {
            if *calls < min_calls.max(1) {
                continue;
            }
            for (param, v) in values.iter().enumerate() {
                if let Some(bits) = *v {
                    out.push(Specialize {
                        func: func as u32,
                        param: param as u32,
                        bits,
                    });
                }
            }
        }
        out
    }
}

/// The `(param, bits)` pairs of `specs` that may be folded into function `func` with
/// parameter types `params`, whose body is `ops`: numeric parameters never written.
pub(crate) fn applicable(
    specs: &[Specialize],
    func: u32,
    params: &[Ty],
    ops: &[(Operator<'_>, u32)],
) -> Vec<(u32, u64)> {
    let written = |p: u32| {
        ops.iter().any(|(op, _)| {
            matches!(op, Operator::LocalSet { local_index } | Operator::LocalTee { local_index }
                if *local_index == p)
        })
    };
    let mut out: Vec<(u32, u64)> = Vec::new();
    // A v128 parameter takes two argument slots, so slot and parameter indices differ after
    // it: such functions are not specialized at all.
    if params.iter().any(|t| t.is_v128()) {
        return out;
    }
    for s in specs.iter().filter(|s| s.func == func) {
        let Some(ty) = params.get(s.param as usize) else {
            continue;
        };
        if ty.is_ref() || written(s.param) || out.iter().any(|&(p, _)| p == s.param) {
            continue;
        }
        let bits = if ty.is_wide() {
            s.bits
        } else {
            s.bits & u64::from(u32::MAX)
        };
        out.push((s.param, bits));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_is_constant_only_while_every_call_agrees() {
        let mut p = ArgProfile::new();
        p.record(3, &[7, 1, 9]);
        p.record(3, &[7, 2, 9]);
        p.record(5, &[4]);
        assert_eq!(p.calls(3), 2);
        assert_eq!(p.calls(4), 0);
        let want = [
            Specialize {
                func: 3,
                param: 0,
                bits: 7,
            },
            Specialize {
                func: 3,
                param: 2,
                bits: 9,
            },
        ];
        assert_eq!(p.constant_params(2), want);
        p.record(3, &[8, 2, 9]);
        assert_eq!(p.constant_params(2), &want[1..]);
        // A value that comes back does not make the parameter constant again.
        p.record(3, &[7, 2, 9]);
        assert_eq!(p.constant_params(2), &want[1..]);
        // Function 5 has one call: not enough for a minimum of 2, enough for 1.
        assert_eq!(p.constant_params(1).len(), 2);
    }

    #[test]
    fn written_and_reference_parameters_are_not_applicable() {
        let ops = [
            (Operator::LocalGet { local_index: 0 }, 0),
            (Operator::LocalTee { local_index: 1 }, 1),
        ];
        let spec = |param, bits| Specialize {
            func: 2,
            param,
            bits,
        };
        let specs = [
            spec(0, 1 << 40 | 5),
            spec(1, 6),
            spec(2, 7),
            spec(3, 8),
            spec(9, 1),
        ];
        let params = [Ty::I32, Ty::I64, Ty::FuncRef, Ty::F64];
        // i32 keeps the low 4 bytes; the tee'd, reference and missing parameters are dropped.
        assert_eq!(applicable(&specs, 2, &params, &ops), [(0, 5), (3, 8)]);
        assert!(applicable(&specs, 1, &params, &ops).is_empty());
    }
}
