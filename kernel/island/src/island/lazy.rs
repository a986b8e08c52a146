//! Functions assembled lazily (`atoll_pae::lazy`) join their module's islands: each is an island
//! of its own at wherever the embedder placed its code. It is located, sampled, walked and
//! moved like any other; nothing calls it by `call rel32` (every call of a lazily assembled
//! function reads its code cell), so a move has no call site to patch, only the cell.

use atoll_pae::FunctionMeta;

use super::{Island, IslandError, IslandId, IslandSet, ModuleId, Span, SpanKind};
use crate::env::{Environment, History};
use crate::layout::IslandLayout;
use crate::profile::{Dependencies, Profile};

impl IslandSet {
    /// Registers function `meta.index` of `module`, assembled lazily into `code` (placed at
    /// `base`; `meta` relative to `code`, covering all of it), as a new island, which becomes
    /// the function's island. The stub it replaces stays an island of the module's code.
    pub fn add_lazy_function(
        &mut self,
        module: ModuleId,
        code: &[u8],
        base: u64,
        meta: &FunctionMeta,
    ) -> Result<IslandId, IslandError> {
        let nfuncs = self
            .modules
            .get(module.0 as usize)
            .ok_or(IslandError::BadGroup)?
            .func_island
            .len();
        if meta.index as usize >= nfuncs {
            return Err(IslandError::BadGroup);
        }
        if meta.code_range.start != 0 || meta.code_range.end as usize != code.len() {
            return Err(IslandError::WrongLength);
        }
        let layout = IslandLayout::build(code, base, 0, &[meta])?;
        let end = base + code.len() as u64;
        if self.overlaps(base..end, None) {
            return Err(IslandError::Overlap);
        }
        let id = IslandId(self.islands.len() as u32);
        self.islands.push(Island {
            id,
            module,
            layout,
            env: Environment::at(base),
            profile: Profile::default(),
            deps: Dependencies::default(),
            history: History::default(),
            retired: false,
        });
        self.modules[module.0 as usize].func_island[meta.index as usize] = id;
        self.spans.push(Span {
            start: base,
            end,
            kind: SpanKind::Island(id),
        });
        self.spans.sort_unstable_by_key(|s| s.start);
        self.generation += 1;
        self.rebuild_dependencies(module);
        Ok(id)
    }
}

#[cfg(test)]
mod tests;
