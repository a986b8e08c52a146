//! Merging and splitting islands while they run, through the relocation protocol of
//! [`super::reloc`]: the new code is prepared outside the pause (`IslandSet::prepare_merge`,
//! `prepare_split`: the parts re-encoded together, calls between them re-targeted), written to
//! new places, and one stop-the-world round rewrites every saved RIP and return address in
//! the old code, patches the call sites of islands that stay, re-points entry cells and
//! instances' code pointers and commits. Then the old copies are made unusable, as after a
//! move. A merge puts both islands' code in one new place in the environment of the island
//! that stays (`into`); a split sends the two parts to the environments asked for.

use alloc::vec::Vec;

use atoll_island::{Environment, IslandId, PageSize, ReshapeKind};

use super::memory;
use super::place::{self, Dest, Resolved, Target};
use super::reloc::{self, Followers, Plan, Prepared, RelocError, Retries, Rounds};
use super::{ISLANDS, KernelIslands};
use crate::arch::cpu;
use crate::sched;

/// What one merge or split did.
#[derive(Debug, Clone)]
pub struct RegroupReport {
    /// Merge or split.
    pub merge: bool,
    /// The island that stays (`into`, or the split one).
    pub island: u32,
    /// The other one (absorbed, or made by the split).
    pub other: u32,
    /// Each resulting island: id, first byte, bytes, page bytes.
    pub results: Vec<(u32, u64, u32, u64)>,
    /// Each source range: island, old first byte, old bytes.
    pub sources: Vec<(u32, u64, u32)>,
    /// Threads whose saved RIP was inside and was rewritten.
    pub rips_rewritten: u32,
    /// Return-address slots rewritten.
    pub return_addresses_rewritten: u32,
    /// `call rel32` sites in other islands re-targeted.
    pub call_sites_patched: u32,
    /// Entry cells re-pointed.
    pub cells_retargeted: u32,
    /// Threads walked in the successful round.
    pub threads_walked: u32,
    /// Threads moved to a part's home core after the release.
    pub threads_migrated: u32,
    /// Rounds retried before it.
    pub retries: u32,
    /// Trigger to all cores resumed, in TSC cycles.
    pub pause_cycles: u64,
}

/// Figures over every merge and split, for `reloc-stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegroupStats {
    /// Merges completed.
    pub merges: u64,
    /// Splits completed.
    pub splits: u64,
    /// Merges and splits refused or failed.
    pub failures: u64,
}

/// Merges island `absorbed` into island `into` (one module): both in one new place in
/// `into`'s environment (its page size unless `page` names one), `into`'s code first.
pub fn merge(
    into: u32,
    absorbed: u32,
    page: Option<PageSize>,
) -> Result<RegroupReport, RelocError> {
    run(|k, retries| merge_locked(k, IslandId(into), IslandId(absorbed), page, retries))
}

/// Splits island `island` before its `at`-th function: the functions before go to `head`,
/// the rest (a new island) to `tail`.
pub fn split(
    island: u32,
    at: usize,
    head: Target,
    tail: Target,
) -> Result<RegroupReport, RelocError> {
    run(|k, retries| split_locked(k, IslandId(island), at, head, tail, retries))
}

fn run(
    f: impl FnOnce(
        &mut KernelIslands,
        &mut Retries,
    ) -> Result<(RegroupReport, Followers, Option<u32>), RelocError>,
) -> Result<RegroupReport, RelocError> {
    let mut guard = ISLANDS.lock();
    let k = guard.get_or_insert_with(KernelIslands::default);
    let mut retries = Retries::default();
    let result = f(k, &mut retries);
    drop(guard);
    let result = result.map(|(mut report, threads, core)| {
        if let Some(core) = core.filter(|_| threads.migrate) {
            for &id in &threads.ids[..threads.count] {
                report.threads_migrated += u32::from(sched::migrate(id, core as usize).is_ok());
            }
        }
        report
    });
    super::with(|k| {
        reloc::record_retries(&mut k.stats, &retries);
        match &result {
            Ok(r) if r.merge => k.regroup.merges += 1,
            Ok(_) => k.regroup.splits += 1,
            Err(
                RelocError::NoSuchIsland(_) | RelocError::NoSuchCore(_) | RelocError::NoSuchNode(_),
            ) => {}
            Err(_) => k.regroup.failures += 1,
        }
    });
    result
}

/// Merge and split totals.
pub fn stats() -> RegroupStats {
    super::with(|k| k.regroup)
}

fn keep(env: &Environment) -> Resolved {
    Resolved {
        page: env.page_size,
        core: env.core,
        node: env.numa_node,
        migrate: false,
    }
}

fn env_at(r: &Resolved, address: u64) -> Environment {
    Environment {
        core: r.core,
        page_size: r.page,
        address,
        numa_node: r.node,
    }
}

fn merge_locked(
    k: &mut KernelIslands,
    into: IslandId,
    absorbed: IslandId,
    page: Option<PageSize>,
    retries: &mut Retries,
) -> Result<(RegroupReport, Followers, Option<u32>), RelocError> {
    let a = k.set.island(into).ok_or(RelocError::NoSuchIsland(into.0))?;
    let b = k
        .set
        .island(absorbed)
        .ok_or(RelocError::NoSuchIsland(absorbed.0))?;
    if a.module != b.module {
        return Err(RelocError::NotOneModule(into.0, absorbed.0));
    }
    if into == absorbed {
        return Err(RelocError::NotOneModule(into.0, absorbed.0));
    }
    let module = a.module;
    let assembled = k.modules[module.0 as usize]
        .assembled
        .clone()
        .ok_or(RelocError::NoSuchIsland(into.0))?;
    let resolved = Resolved {
        page: page.unwrap_or(a.env.page_size),
        ..keep(&a.env)
    };
    let sources = [
        (into.0, a.base(), a.layout.len),
        (absorbed.0, b.base(), b.layout.len),
    ];
    let funcs: Vec<u32> = a.func_indices().chain(b.func_indices()).collect();
    let code_a =
        memory::read_code(a.base(), a.layout.len as usize).ok_or(RelocError::Unmapped(a.base()))?;
    let code_b =
        memory::read_code(b.base(), b.layout.len as usize).ok_or(RelocError::Unmapped(b.base()))?;
    let max = (u64::from(a.layout.len) + u64::from(b.layout.len)) * 2 + 64;
    let mut dest = Dest::reserve(k, &resolved, max, into.0)?;
    let to = env_at(&resolved, dest.address());
    let prepared = k
        .set
        .prepare_merge(into, &code_a, absorbed, &code_b, to)
        .map_err(RelocError::from)
        .and_then(|p| {
            dest.install(k, resolved.node, &p.results[0].code)?;
            let calls = p.calls.clone();
            Plan::new(Prepared::Reshape(p), &assembled.code, funcs, &calls)
        });
    let ran =
        prepared.and_then(|mut plan| reloc::run_rounds(k, &mut plan, retries).map(|r| (plan, r)));
    let (plan, rounds) = match ran {
        Ok(v) => v,
        Err(e) => {
            dest.abandon(k);
            return Err(e);
        }
    };
    cpu::serialize();
    let new_base = dest.address();
    for &(id, base, len) in &sources {
        let old = k.places.remove(&IslandId(id));
        place::retire(k, old, base, len as usize, None);
    }
    if let Some(p) = dest.into_place() {
        k.places.insert(into, p);
    }
    place::forget_kept(k, absorbed.0);
    k.set.refresh_dependencies(module);
    let len = k.set.island(into).map_or(0, |i| i.layout.len);
    let followers = Followers::of(&plan, false);
    let report = report(
        true,
        into.0,
        absorbed.0,
        alloc::vec![(into.0, new_base, len, resolved.page.bytes())],
        &sources,
        &rounds,
        retries,
    );
    Ok((report, followers, None))
}

fn split_locked(
    k: &mut KernelIslands,
    id: IslandId,
    at: usize,
    head: Target,
    tail: Target,
    retries: &mut Retries,
) -> Result<(RegroupReport, Followers, Option<u32>), RelocError> {
    let i = k.set.island(id).ok_or(RelocError::NoSuchIsland(id.0))?;
    let nfuncs = i.layout.funcs.len();
    if at == 0 || at >= nfuncs {
        return Err(RelocError::BadSplit(id.0, at, nfuncs));
    }
    let hr = place::resolve(head, &i.env)?;
    let tr = place::resolve(tail, &i.env)?;
    if hr.page == PageSize::Size2M && tr.page == PageSize::Size2M {
        return Err(RelocError::BothLarge);
    }
    let module = i.module;
    let assembled = k.modules[module.0 as usize]
        .assembled
        .clone()
        .ok_or(RelocError::NoSuchIsland(id.0))?;
    let (base, len) = (i.base(), i.layout.len);
    let s = i.layout.funcs[at].range.start;
    let funcs: Vec<u32> = i.func_indices().collect();
    let code = memory::read_code(base, len as usize).ok_or(RelocError::Unmapped(base))?;
    let mut hd = Dest::reserve(k, &hr, u64::from(s) * 2 + 64, id.0)?;
    let mut td = match Dest::reserve(k, &tr, u64::from(len - s) * 2 + 64, id.0) {
        Ok(d) => d,
        Err(e) => {
            hd.abandon(k);
            return Err(e.into());
        }
    };
    let (head_to, tail_to) = (env_at(&hr, hd.address()), env_at(&tr, td.address()));
    let prepared = k
        .set
        .prepare_split(id, &code, at, head_to, tail_to)
        .map_err(RelocError::from)
        .and_then(|p| {
            hd.install(k, hr.node, &p.results[0].code)?;
            td.install(k, tr.node, &p.results[1].code)?;
            let calls = p.calls.clone();
            Plan::new(Prepared::Reshape(p), &assembled.code, funcs, &calls)
        });
    let ran =
        prepared.and_then(|mut plan| reloc::run_rounds(k, &mut plan, retries).map(|r| (plan, r)));
    let (plan, rounds) = match ran {
        Ok(v) => v,
        Err(e) => {
            hd.abandon(k);
            td.abandon(k);
            return Err(e);
        }
    };
    cpu::serialize();
    let Prepared::Reshape(prep) = &plan.prep else {
        unreachable!("a split plan holds a reshape")
    };
    let ReshapeKind::Split { new, .. } = prep.kind else {
        unreachable!("a split plan holds a split")
    };
    let (head_base, tail_base) = (hd.address(), td.address());
    let old = k.places.remove(&id);
    place::retire(k, old, base, len as usize, None);
    if let Some(p) = hd.into_place() {
        k.places.insert(id, p);
    }
    if let Some(p) = td.into_place() {
        k.places.insert(new, p);
    }
    place::forget_kept(k, id.0);
    k.set.refresh_dependencies(module);
    super::feed_live(k);
    k.set.restart_window(id);
    k.set.restart_window(new);
    let lens = |k: &KernelIslands, x: IslandId| k.set.island(x).map_or(0, |i| i.layout.len);
    let results = alloc::vec![
        (id.0, head_base, lens(k, id), hr.page.bytes()),
        (new.0, tail_base, lens(k, new), tr.page.bytes()),
    ];
    // The threads found inside follow the part that names a core (the tail's first).
    let core = if tr.migrate {
        tr.core
    } else {
        hr.core.filter(|_| hr.migrate)
    };
    let followers = Followers::of(&plan, tr.migrate || hr.migrate);
    let report = report(
        false,
        id.0,
        new.0,
        results,
        &[(id.0, base, len)],
        &rounds,
        retries,
    );
    Ok((report, followers, core))
}

fn report(
    merge: bool,
    island: u32,
    other: u32,
    results: Vec<(u32, u64, u32, u64)>,
    sources: &[(u32, u64, u32)],
    rounds: &Rounds,
    retries: &Retries,
) -> RegroupReport {
    let c = &rounds.counts;
    RegroupReport {
        merge,
        island,
        other,
        results,
        sources: sources.to_vec(),
        rips_rewritten: c.rips,
        return_addresses_rewritten: c.return_addresses,
        call_sites_patched: c.call_sites,
        cells_retargeted: c.cells,
        threads_walked: c.threads,
        threads_migrated: 0,
        retries: retries.total,
        pause_cycles: rounds.pause_cycles,
    }
}
