//! Reachability from a request: which functions a call of one export can run, within its module
//! and through imports into provider modules, so that only those are assembled up front (the
//! rest get lazy stubs, see `docs/lazy.md`).
//!
//! The analysis is conservative (it may include functions that never run, never omits one that
//! can):
//! - roots: the requested function and the module's start function (it runs at instantiation);
//! - a direct `call f` in a reachable body makes `f` reachable;
//! - a function is *address-taken* if a funcref to it can exist: it is named in an element
//!   segment (active, passive or declarative), a global's or a table's initializer, a `ref.func`
//!   in any body, or it is exported (another instance can put it in a shared table);
//! - a `call_indirect` with type `t` in a reachable body makes every address-taken function of
//!   a structurally equal type reachable (the call traps on any other signature);
//! - a call of an imported function follows the import into its provider (resolved by the
//!   caller: module name and field to a provider module and the exported function), whose
//!   reachable set from that export is added.
//!
//! Correctness of running code never depends on this set: a function left out is assembled
//! when first called. The set decides what is assembled before the first instruction runs.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use wasmparser::{BinaryReader, FunctionBody, Operator};

use crate::CompileError;
use crate::module::{ConstInit, ExternalKind, ImportKind, ModuleDesc};

/// The call graph of one module: per defined function, its direct callees, the type indices of
/// its `call_indirect`s and the functions it takes a reference to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallGraph {
    /// Number of imported functions (function indices below it are imports).
    pub func_imports: u32,
    /// Direct callees of each function (imports: empty), by function index.
    pub calls: Vec<Vec<u32>>,
    /// Type indices of each function's `call_indirect`s.
    pub indirect: Vec<Vec<u32>>,
    /// Address-taken functions (sorted, unique).
    pub address_taken: Vec<u32>,
}

impl CallGraph {
    /// Decodes the bodies of `bytes` (described by `desc`, which `bytes` was parsed into).
    pub fn build(bytes: &[u8], desc: &ModuleDesc) -> Result<Self, CompileError> {
        let n = desc.funcs.len();
        let mut calls = vec![Vec::new(); n];
        let mut indirect = vec![Vec::new(); n];
        let mut taken = BTreeSet::new();
        for (i, range) in desc.bodies.iter().enumerate() {
            let f = desc.func_imports as usize + i;
            let body =
                FunctionBody::new(BinaryReader::new(&bytes[range.clone()], range.start as u64));
            let mut ops = body.get_operators_reader()?;
            while !ops.eof() {
                match ops.read()? {
                    Operator::Call { function_index } | Operator::ReturnCall { function_index }
                        if !calls[f].contains(&function_index) =>
                    {
                        calls[f].push(function_index);
                    }
                    Operator::CallIndirect { type_index, .. }
                    | Operator::ReturnCallIndirect { type_index, .. }
                        if !indirect[f].contains(&type_index) =>
                    {
                        indirect[f].push(type_index);
                    }
                    Operator::RefFunc { function_index } => {
                        taken.insert(function_index);
                    }
                    _ => {}
                }
            }
        }
        let mut note = |init: ConstInit| {
            if let ConstInit::RefFunc(f) = init {
                taken.insert(f);
            }
        };
        for e in &desc.elems {
            e.items.iter().copied().for_each(&mut note);
        }
        for g in &desc.globals {
            note(g.init);
        }
        for t in &desc.tables {
            note(t.init);
        }
        for e in &desc.exports {
            if e.kind == ExternalKind::Func {
                taken.insert(e.index);
            }
        }
        Ok(Self {
            func_imports: desc.func_imports,
            calls,
            indirect,
            address_taken: taken.into_iter().collect(),
        })
    }

    /// Functions of this module reachable from `roots` (and the start function), by function
    /// index; imported functions reached are marked too (their providers are the caller's
    /// business, see [`reachable_across`]).
    pub fn reachable(&self, desc: &ModuleDesc, roots: &[u32]) -> Vec<bool> {
        let mut seen = vec![false; self.calls.len()];
        let mut work: Vec<u32> = Vec::new();
        let mut indirect_types: Vec<u32> = Vec::new();
        let push = |f: u32, seen: &mut Vec<bool>, work: &mut Vec<u32>| {
            if let Some(s) = seen.get_mut(f as usize)
                && !*s
            {
                *s = true;
                work.push(f);
            }
        };
        for &r in roots.iter().chain(desc.start.as_ref()) {
            push(r, &mut seen, &mut work);
        }
        while let Some(f) = work.pop() {
            for &c in &self.calls[f as usize] {
                push(c, &mut seen, &mut work);
            }
            for &t in &self.indirect[f as usize] {
                let ty = &desc.types[t as usize];
                if indirect_types
                    .iter()
                    .any(|&u| desc.types[u as usize] == *ty)
                {
                    continue;
                }
                indirect_types.push(t);
                for &a in &self.address_taken {
                    if desc.func_type(a) == ty {
                        push(a, &mut seen, &mut work);
                    }
                }
            }
        }
        seen
    }
}

/// Parses and validates `bytes` and builds its call graph.
pub fn analyze(bytes: &[u8]) -> Result<(ModuleDesc, CallGraph), CompileError> {
    let desc = crate::module::parse(bytes)?;
    let graph = CallGraph::build(bytes, &desc)?;
    Ok((desc, graph))
}

/// One module of a linked set, for [`reachable_across`].
#[derive(Debug, Clone, Copy)]
pub struct Linked<'a> {
    /// Its description.
    pub desc: &'a ModuleDesc,
    /// Its call graph.
    pub graph: &'a CallGraph,
}

/// Names the provider of an import: `(module index, exported function index)`.
pub type Resolver<'a> = dyn Fn(usize, &crate::module::ImportDesc) -> Option<(usize, u32)> + 'a;

/// Reachability over linked modules: from function `root` of module `start`, following calls
/// of imported functions into their providers. `resolve(module, import)` names the provider
/// module and its exported function index (`None`: a host function, nothing to follow).
/// Returns, per module, which of its functions are reachable.
pub fn reachable_across(
    modules: &[Linked<'_>],
    start: usize,
    root: u32,
    resolve: &Resolver<'_>,
) -> Vec<Vec<bool>> {
    let mut sets: Vec<Vec<bool>> = modules
        .iter()
        .map(|m| vec![false; m.graph.calls.len()])
        .collect();
    let mut work = vec![(start, root)];
    while let Some((m, f)) = work.pop() {
        let Linked { desc, graph } = modules[m];
        if sets[m].get(f as usize).copied().unwrap_or(true) {
            continue;
        }
        let reached = graph.reachable(desc, &[f]);
        for (i, &r) in reached.iter().enumerate() {
            if !r || sets[m][i] {
                continue;
            }
            sets[m][i] = true;
            if (i as u32) < graph.func_imports {
                let import = desc
                    .imports
                    .iter()
                    .filter(|i| matches!(i.kind, ImportKind::Func(_)))
                    .nth(i);
                if let Some(to) = import.and_then(|imp| resolve(m, imp))
                    && to.0 < modules.len()
                {
                    work.push(to);
                }
            }
        }
    }
    sets
}

#[cfg(test)]
mod tests;
