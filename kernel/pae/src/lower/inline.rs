//! Inlining small callees (`Options::inline`), as a rewrite of the caller's operator list
//! before it is lowered.
//!
//! A direct `call f` of an inlinable function (`opt::inline::judge`; defined in this module,
//! assembled in this code, not the caller itself) becomes f's body in a `block` of f's result
//! type: f's locals become extra locals of the caller (one set per callee, shared by its call
//! sites: two copies of f's body never overlap in time, since f is never inlined inside
//! itself), the
//! arguments are stored into the parameter locals, the declared locals are set to zero, and
//! f's `return` becomes a `br` to the block's end (f's own branches keep their depths: the
//! block stands where f's function frame stood). Everything downstream — register pinning of
//! the new locals, constant folding, the frame size and its stack check, trap codes, call-site
//! metadata of calls left in the inlined body (they are the caller's calls, in its frame) —
//! is the ordinary lowering of the rewritten caller.
//!
//! Arguments that are a `local.get` of the caller or a constant, at the end of the argument
//! list and for parameters f never writes, are not stored: f's `local.get` of that parameter
//! becomes the argument's operator itself (the caller's local cannot change inside f's body,
//! which only names its own locals), so address helpers fold into their callers.
//!
//! At most two levels (a callee inlined inside an inlined callee), and never a function already
//! on the chain being expanded (the caller, then the callees), so recursion (direct or mutual)
//! never expands without bound and a function is never inlined into itself. Straight-line
//! bodies are spliced without a block (nothing branches to their end).

use alloc::vec::Vec;

use wasmparser::{
    BinaryReader, BlockType, FunctionBody, HeapType, Ieee32, Ieee64, Operator, ValType,
};

use super::ModCx;
use super::nest::LoopNest;
use crate::CompileError;
use crate::module::Ty;
use crate::opt::inline::{self, MAX_BODY_BYTES};

/// Most operators inlined into one caller (bounds code growth and compile time): its own
/// operator count (a caller at most doubles), at least [`MIN_BUDGET`], at most this.
const MAX_INLINED_OPS: usize = 4096;
/// The budget of a small caller.
const MIN_BUDGET: usize = 128;
// Callees are inlined only at call sites inside a loop of the caller, where a call costs
// time. Inlining every small callee everywhere (up to `opt::inline::MAX_OPS` operators) made
// SQLite's code 1.65x larger and its compile 2.1x slower, and the benchmark's gains all come
// from calls in loops (`docs/inlining.md`). Even in loops, only callees of at most this many
// operators, their final `end` counted (address helpers, small predicates): with the full 48,
// SQLite's code grew 23%.
const LOOP_OPS: usize = 16;

/// The largest callee inlined, in operators with its final `end` (`Options::inline_everywhere`:
/// up to `opt::inline::MAX_OPS`).
fn size_limit(everywhere: bool) -> usize {
    if everywhere {
        inline::MAX_OPS
    } else {
        LOOP_OPS.min(inline::MAX_OPS)
    }
}
/// Deepest nesting of inlined bodies (a callee inlined into an inlined callee: depth 2).
const MAX_DEPTH: usize = 2;

/// A callee's verdict, computed at its first call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Unknown,
    No,
    Yes,
}

type Ops<'a> = Vec<(Operator<'a>, u32)>;

/// A callee's decoded body.
struct Callee<'a> {
    /// Declared (non-parameter) locals.
    declared: Vec<Ty>,
    ops: Ops<'a>,
    written: Vec<bool>,
    /// No structured control flow, `return` or `unreachable`: spliced without a block.
    straight: bool,
}

/// Rewrites `ops` of function `caller` (whose locals are `locals`, extended here) with its
/// inlinable calls expanded.
pub(super) fn expand<'a>(
    cx: &mut ModCx<'_>,
    caller: u32,
    locals: &mut Vec<Ty>,
    ops: Ops<'a>,
    bytes: &'a [u8],
) -> Result<Ops<'a>, CompileError> {
    // Most callers call nothing inlinable inside a loop: they keep their operators as they
    // are (and callees called only outside loops are never decoded).
    // The call sites to expand: calls inside a loop of inlinable functions.
    let mut sites = Vec::new();
    let mut nest = LoopNest::default();
    for (i, (op, _)) in ops.iter().enumerate() {
        nest.see(op);
        let Operator::Call { function_index: f } = *op else {
            continue;
        };
        if f == caller || (!nest.inside() && !cx.opts.inline_everywhere) {
            continue;
        }
        if cx.inline_verdicts.get(f as usize) == Some(&Verdict::Unknown) {
            inlinable(cx, f, bytes)?;
        }
        if cx.inline_verdicts.get(f as usize) == Some(&Verdict::Yes) {
            sites.push(i);
        }
    }
    if sites.is_empty() {
        return Ok(ops);
    }
    let mut x = Expander {
        bytes,
        locals,
        out: Vec::with_capacity(ops.len() + 16),
        maps: Vec::new(),
        budget: ops.len().clamp(MIN_BUDGET, MAX_INLINED_OPS),
        chain: alloc::vec![caller],
    };
    // The operators between two sites move over whole.
    let mut rest = ops.into_iter();
    let mut next = 0;
    for site in sites {
        x.out.extend(rest.by_ref().take(site - next));
        let Some((op, at)) = rest.next() else { break };
        x.op(cx, op, at)?;
        next = site + 1;
    }
    x.out.extend(rest);
    if x.locals.len() > 50_000 {
        return Err(CompileError::Unsupported(
            "more than 50000 locals after inlining".into(),
        ));
    }
    Ok(x.out)
}

/// The rewrite of one caller.
struct Expander<'a, 'l> {
    bytes: &'a [u8],
    locals: &'l mut Vec<Ty>,
    out: Ops<'a>,
    /// Per inlined callee: the caller local of each of its locals (allocated on first use).
    maps: Vec<(u32, Vec<Option<u32>>)>,
    /// Operators that may still be inlined.
    budget: usize,
    /// The caller, then the callees being inlined, outermost first.
    chain: Vec<u32>,
}

impl<'a> Expander<'a, '_> {
    /// Appends operator `op` (at wasm offset `at`, its locals already the caller's), expanding
    /// it when it is a call of an inlinable function. The caller's own calls come here only
    /// from the sites `expand` chose (inside a loop); a callee has no loops, so a call in an
    /// inlined body is inside the loop of its site.
    fn op(&mut self, cx: &mut ModCx<'_>, op: Operator<'a>, at: u32) -> Result<(), CompileError> {
        let Operator::Call { function_index: f } = op else {
            self.out.push((op, at));
            return Ok(());
        };
        if self.chain.len() > MAX_DEPTH || self.chain.contains(&f) {
            self.out.push((op, at));
            return Ok(());
        }
        match inlinable(cx, f, self.bytes)? {
            Some(callee) if callee.ops.len() <= self.budget => {
                self.budget -= callee.ops.len();
                self.chain.push(f);
                self.splice(cx, f, &callee, at)?;
                self.chain.pop();
            }
            _ => self.out.push((op, at)),
        }
        Ok(())
    }

    /// The caller local standing for local `i` of callee `f` (allocated on first use).
    fn local_of(&mut self, f: u32, i: u32, ty: Ty) -> u32 {
        let k = match self.maps.iter().position(|m| m.0 == f) {
            Some(k) => k,
            None => {
                self.maps.push((f, Vec::new()));
                self.maps.len() - 1
            }
        };
        let map = &mut self.maps[k].1;
        if map.len() <= i as usize {
            map.resize(i as usize + 1, None);
        }
        *map[i as usize].get_or_insert_with(|| {
            self.locals.push(ty);
            self.locals.len() as u32 - 1
        })
    }

    /// Appends callee `f`'s body, as inlined at a call at wasm offset `at`, to `out` (whose
    /// last operators computed the arguments).
    fn splice(
        &mut self,
        cx: &mut ModCx<'_>,
        f: u32,
        callee: &Callee<'a>,
        at: u32,
    ) -> Result<(), CompileError> {
        let m = cx.m;
        let ty = m.func_type(f);
        let n = ty.params.len();
        let ty_of = |i: u32| -> Ty {
            let i = i as usize;
            if i < n {
                ty.params[i]
            } else {
                callee.declared[i - n]
            }
        };
        // Straight-line bodies need no block (nothing branches to their end, and no code in
        // them is unreachable). Otherwise the block is `[] -> results` when a block type says
        // so (arguments stored before it), else f's own type (arguments flow in as block
        // parameters, stored inside it).
        let flat = callee.straight;
        let empty = match ty.results.as_slice() {
            _ if flat => None,
            [] => Some(BlockType::Empty),
            &[t] => Some(BlockType::Type(val_type(t))),
            results => {
                cx.m.types
                    .iter()
                    .position(|t| t.params.is_empty() && t.results == results)
                    .map(|i| BlockType::FuncType(i as u32))
            }
        };
        let stores_before = flat || empty.is_some();
        let mut subst: Vec<Option<Operator<'a>>> = alloc::vec![None; n];
        if stores_before {
            let mut k = n;
            while k > 0 && !callee.written[k - 1] {
                match self.out.last() {
                    Some((
                        op @ (Operator::LocalGet { .. }
                        | Operator::I32Const { .. }
                        | Operator::I64Const { .. }
                        | Operator::F32Const { .. }
                        | Operator::F64Const { .. }),
                        _,
                    )) => subst[k - 1] = Some(op.clone()),
                    _ => break,
                }
                self.out.pop();
                k -= 1;
            }
        }
        if stores_before {
            self.stores(f, callee, &ty_of, &subst, at);
        }
        if !flat {
            let blockty = empty.unwrap_or(BlockType::FuncType(cx.m.funcs[f as usize]));
            self.out.push((Operator::Block { blockty }, at));
        }
        if !stores_before {
            self.stores(f, callee, &ty_of, &subst, at);
        }
        // Blocks open inside f's body (its function frame is the block above).
        let mut depth = 0u32;
        let last = callee.ops.len() - 1;
        for (k, (op, op_at)) in callee.ops.iter().enumerate() {
            let op = match *op {
                Operator::LocalGet { local_index } => match &subst.get(local_index as usize) {
                    Some(Some(s)) => s.clone(),
                    _ => Operator::LocalGet {
                        local_index: self.local_of(f, local_index, ty_of(local_index)),
                    },
                },
                Operator::LocalSet { local_index } => Operator::LocalSet {
                    local_index: self.local_of(f, local_index, ty_of(local_index)),
                },
                Operator::LocalTee { local_index } => Operator::LocalTee {
                    local_index: self.local_of(f, local_index, ty_of(local_index)),
                },
                Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                    depth += 1;
                    op.clone()
                }
                Operator::End if flat && k == last => break,
                Operator::End => {
                    depth = depth.saturating_sub(1);
                    Operator::End
                }
                Operator::Return => Operator::Br {
                    relative_depth: depth,
                },
                _ => op.clone(),
            };
            self.op(cx, op, *op_at)?;
        }
        Ok(())
    }

    /// Stores the arguments not substituted into the parameter locals (last first, as they
    /// are popped) and zeroes the declared locals.
    fn stores(
        &mut self,
        f: u32,
        callee: &Callee<'a>,
        ty_of: &dyn Fn(u32) -> Ty,
        subst: &[Option<Operator<'a>>],
        at: u32,
    ) {
        let n = subst.len();
        for p in (0..n as u32).rev() {
            if subst[p as usize].is_none() {
                let local_index = self.local_of(f, p, ty_of(p));
                self.out.push((Operator::LocalSet { local_index }, at));
            }
        }
        for (j, &t) in callee.declared.iter().enumerate() {
            let zero = match t {
                Ty::I32 => Operator::I32Const { value: 0 },
                Ty::I64 => Operator::I64Const { value: 0 },
                Ty::F32 => Operator::F32Const {
                    value: Ieee32::from(0.0f32),
                },
                Ty::F64 => Operator::F64Const {
                    value: Ieee64::from(0.0f64),
                },
                Ty::FuncRef => Operator::RefNull {
                    hty: HeapType::FUNC,
                },
                Ty::ExternRef => Operator::RefNull {
                    hty: HeapType::EXTERN,
                },
                Ty::V128 => unreachable!("v128 callees are not inlined"),
            };
            let local_index = self.local_of(f, (n + j) as u32, t);
            self.out.push((zero, at));
            self.out.push((Operator::LocalSet { local_index }, at));
        }
    }
}

/// Function `f`'s body when a call of it in `caller` is inlined.
fn inlinable<'a>(
    cx: &mut ModCx<'_>,
    f: u32,
    bytes: &'a [u8],
) -> Result<Option<Callee<'a>>, CompileError> {
    let fi = f as usize;
    let imports = cx.m.func_imports;
    let verdict = cx.inline_verdicts.get(fi).copied().unwrap_or(Verdict::No);
    if verdict == Verdict::No {
        return Ok(None);
    }
    if f < imports
        || cx.via_cell.get(fi).copied().unwrap_or(true)
        || cx.m.bodies[(f - imports) as usize].len() > MAX_BODY_BYTES
    {
        cx.inline_verdicts[fi] = Verdict::No;
        return Ok(None);
    }
    let range = cx.m.bodies[(f - imports) as usize].clone();
    let body = FunctionBody::new(BinaryReader::new(&bytes[range.clone()], range.start as u64));
    let mut declared = Vec::new();
    for local in body.get_locals_reader()? {
        let (count, t) = local?;
        if declared.len() + count as usize > inline::MAX_LOCALS {
            cx.inline_verdicts[fi] = Verdict::No;
            return Ok(None);
        }
        declared.extend(core::iter::repeat_n(Ty::from_wasm(t)?, count as usize));
    }
    let mut ops = Vec::with_capacity(size_limit(cx.opts.inline_everywhere));
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        // The size bound of this policy, on the operators with the final `end`: a larger
        // callee is never inlined, so decoding stops there.
        if ops.len() == size_limit(cx.opts.inline_everywhere) {
            cx.inline_verdicts[fi] = Verdict::No;
            return Ok(None);
        }
        let (op, at) = reader.read_with_offset()?;
        ops.push((op, at as u32));
    }
    // The callee's body may come later in the module than its caller and not be validated
    // yet: decoding stops at the first malformed byte (the module is invalid then), and a
    // body small enough to inline is validated whole before it is judged.
    cx.validate_body(f, bytes)?;
    let ty = cx.m.func_type(f);
    match inline::judge(&ty.params, &ty.results, &declared, &ops) {
        Ok(s) => {
            cx.inline_verdicts[fi] = Verdict::Yes;
            Ok(Some(Callee {
                declared,
                ops,
                written: s.written,
                straight: s.straight,
            }))
        }
        Err(_) => {
            cx.inline_verdicts[fi] = Verdict::No;
            Ok(None)
        }
    }
}

fn val_type(t: Ty) -> ValType {
    match t {
        Ty::I32 => ValType::I32,
        Ty::I64 => ValType::I64,
        Ty::F32 => ValType::F32,
        Ty::F64 => ValType::F64,
        Ty::V128 => ValType::V128,
        Ty::FuncRef => ValType::FUNCREF,
        Ty::ExternRef => ValType::EXTERNREF,
    }
}
