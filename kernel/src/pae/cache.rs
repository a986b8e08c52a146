//! The chunk cache: assembled code, bounded in bytes, with LRU or LFU eviction.
//!
//! The book (`atoll_predict::cache::CacheBook`) decides; this module holds the assembled code
//! beside it and carries its decisions out:
//!
//! - **Bytes** are the mapped code pages of a chunk (its module's code rounded up to 4 KiB).
//!   An assembly that does not fit after evicting every unpinned chunk is not cached: its task
//!   runs, and its code is dropped with the task. So the bytes resident never pass the limit.
//! - **Pins.** A task pins every chunk it instantiated (its chunk and providers) from the moment
//!   it takes them from the cache until it is dropped; code a thread executes or can return into
//!   is always a pinned chunk's, so eviction never touches it.
//! - **Eviction** retires the chunk's islands (and frees relocated copies) and lets go of its
//!   code, which is unmapped (not merely made non-executable) when its last holder drops it: a
//!   stale jump faults instead of running freed code.
//! - **One assembly per chunk.** A request that finds its chunk being assembled (by the
//!   pre-assembly worker or another request) waits for that work instead of repeating it.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use atoll_island::ModuleId;
use atoll_predict::cache::{CacheBook, Entry, Figures, NoRoom, Policy};
use spin::Mutex;

use super::{Assembled, PaeError};

/// Bound used unless the image's workload section or `cache limit` says otherwise.
pub const DEFAULT_LIMIT: u64 = 4 << 20;

enum Slot {
    /// Assembled and resident; `module` is its islands' registration.
    Ready {
        assembled: Arc<Assembled>,
        module: Option<ModuleId>,
    },
    /// Being assembled by some thread.
    Assembling,
}

struct Cache {
    book: CacheBook,
    slots: BTreeMap<String, Slot>,
    /// Requests that found their chunk being assembled and waited for it.
    waited: u64,
    /// Assemblies that ran uncached (no room).
    uncached: u64,
    /// Chunks assembled by the pre-assembly worker.
    prefetched: u64,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    let mut guard = CACHE.lock();
    let c = guard.get_or_insert_with(|| Cache {
        book: CacheBook::new(Policy::Lru, DEFAULT_LIMIT),
        slots: BTreeMap::new(),
        waited: 0,
        uncached: 0,
        prefetched: 0,
    });
    f(c)
}

/// How a chunk was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obtained {
    /// It was resident.
    Hit,
    /// It was being assembled; the request waited for that assembly.
    Waited,
    /// It was assembled now and cached.
    Assembled,
    /// It was assembled now but not cached (no room): the holder must
    /// [`drop_uncached`] it when done.
    Uncached(Option<ModuleId>),
}

/// A chunk's code bytes as the cache counts them: its mapped pages (the module's, and those of
/// functions assembled lazily so far).
pub fn bytes_of(a: &Assembled) -> u64 {
    (a.module.code.len() as u64).div_ceil(4096) * 4096 + a.code.lazy_pages_bytes()
}

/// The chunk's assembled code from the cache, assembling it with `assemble` on a miss.
/// `prefetch` (the pre-assembly worker) records no use and takes no pin; a request pins the
/// chunk until [`unpin`].
pub fn obtain(
    chunk: &str,
    prefetch: bool,
    assemble: impl FnOnce() -> Result<(Arc<Assembled>, Option<ModuleId>), PaeError>,
) -> Result<(Arc<Assembled>, Obtained), PaeError> {
    let mut waited = false;
    loop {
        let found = with(|c| match c.slots.get(chunk) {
            Some(Slot::Ready { assembled, .. }) => {
                let a = assembled.clone();
                if !prefetch {
                    c.book.lookup(chunk);
                    c.book.pin(chunk);
                    if waited {
                        c.waited += 1;
                    }
                }
                Some(Some(a))
            }
            Some(Slot::Assembling) => Some(None),
            None => {
                if !prefetch {
                    c.book.lookup(chunk);
                }
                c.slots.insert(chunk.into(), Slot::Assembling);
                None
            }
        });
        match found {
            Some(Some(a)) => {
                let how = if waited {
                    Obtained::Waited
                } else {
                    Obtained::Hit
                };
                return Ok((a, how));
            }
            Some(None) => {
                // Someone else is assembling it: wait for that work.
                waited = true;
                crate::sched::sleep_us(100);
            }
            None => break,
        }
    }
    let made = assemble();
    let (assembled, module) = match made {
        Ok(m) => m,
        Err(e) => {
            with(|c| c.slots.remove(chunk));
            return Err(e);
        }
    };
    let bytes = bytes_of(&assembled);
    let mut evicted = Vec::new();
    let cached = with(|c| {
        let victims = match c.book.victims_for(bytes) {
            Ok(v) => v,
            Err(_) => {
                c.slots.remove(chunk);
                let _ = c.book.insert(chunk, bytes, prefetch);
                c.uncached += 1;
                return false;
            }
        };
        for v in victims {
            if c.book.evict(&v)
                && let Some(Slot::Ready { assembled, module }) = c.slots.remove(&v)
            {
                evicted.push((assembled, module));
            }
        }
        if c.book.insert(chunk, bytes, prefetch).is_err() {
            c.slots.remove(chunk);
            c.uncached += 1;
            return false;
        }
        if prefetch {
            c.prefetched += 1;
        } else {
            c.book.pin(chunk);
        }
        c.slots.insert(
            chunk.into(),
            Slot::Ready {
                assembled: assembled.clone(),
                module,
            },
        );
        true
    });
    release(evicted);
    Ok((
        assembled,
        if cached {
            Obtained::Assembled
        } else {
            Obtained::Uncached(module)
        },
    ))
}

/// Lets go of evicted chunks outside the cache lock (unmapping shoots down TLBs).
fn release(evicted: Vec<(Arc<Assembled>, Option<ModuleId>)>) {
    for (assembled, module) in evicted {
        if let Some(m) = module {
            crate::island::unregister(m);
        }
        drop(assembled);
    }
}

/// The chunk whose code starts at `code_base` grew by `extra` bytes (a function assembled
/// lazily for a running task): other unpinned chunks are evicted to make room; if pinned ones
/// leave none, the growth is still counted and the overdraft shows in the figures
/// (`overdrawn`). Code assembled for one task alone (not cached) is not counted.
pub fn grew(code_base: u64, extra: u64) {
    let mut evicted = Vec::new();
    with(|c| {
        let Some(name) = c.slots.iter().find_map(|(n, s)| match s {
            Slot::Ready { assembled, .. } if assembled.code.base() == code_base => Some(n.clone()),
            _ => None,
        }) else {
            return;
        };
        if let Ok(victims) = c.book.victims_for(extra) {
            for v in victims.into_iter().filter(|v| *v != name) {
                if c.book.evict(&v)
                    && let Some(Slot::Ready { assembled, module }) = c.slots.remove(&v)
                {
                    evicted.push((assembled, module));
                }
            }
        }
        let _ = c.book.grow(&name, extra);
    });
    release(evicted);
}

/// Drops one pin a request took on `chunk`.
pub fn unpin(chunk: &str) {
    with(|c| c.book.unpin(chunk));
}

/// Drops code that was assembled for one task but not cached.
pub fn drop_uncached(module: Option<ModuleId>) {
    if let Some(m) = module {
        crate::island::unregister(m);
    }
}

/// Whether `chunk` is resident or being assembled.
pub fn resident_or_pending(chunk: &str) -> bool {
    with(|c| c.slots.contains_key(chunk))
}

/// Every resident chunk's assembled code.
pub fn assembled() -> Vec<Arc<Assembled>> {
    with(|c| {
        c.slots
            .values()
            .filter_map(|s| match s {
                Slot::Ready { assembled, .. } => Some(assembled.clone()),
                Slot::Assembling => None,
            })
            .collect()
    })
}

/// Sets the policy.
pub fn set_policy(policy: Policy) {
    with(|c| c.book.set_policy(policy));
}

/// Sets the bound, evicting unpinned chunks until the resident bytes fit it. `Err` when pinned
/// chunks alone exceed it (they stay; everything else was evicted).
pub fn set_limit(limit: u64) -> Result<(), NoRoom> {
    let mut evicted = Vec::new();
    let result = with(|c| {
        let victims = c.book.set_limit(limit);
        let list = match &victims {
            Ok(v) => v.clone(),
            Err(_) => c
                .book
                .entries()
                .iter()
                .filter(|e| e.pins == 0)
                .map(|e| e.name.clone())
                .collect(),
        };
        for v in list {
            if c.book.evict(&v)
                && let Some(Slot::Ready { assembled, module }) = c.slots.remove(&v)
            {
                evicted.push((assembled, module));
            }
        }
        victims.map(|_| ())
    });
    release(evicted);
    result
}

/// Drops every unpinned chunk (not counted as evictions) and resets the figures: a cold start
/// for `replay`. Returns how many chunks stayed because they are pinned.
pub fn clear() -> usize {
    let mut dropped = Vec::new();
    let stayed = with(|c| {
        let names: Vec<String> = c.book.entries().iter().map(|e| e.name.clone()).collect();
        for n in names {
            if c.book.remove(&n)
                && let Some(Slot::Ready { assembled, module }) = c.slots.remove(&n)
            {
                dropped.push((assembled, module));
            }
        }
        c.book.reset_figures();
        c.waited = 0;
        c.uncached = 0;
        c.prefetched = 0;
        c.book.entries().len()
    });
    release(dropped);
    stayed
}

/// A snapshot of the cache for `cache [--json]` and `replay`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Policy.
    pub policy: Policy,
    /// Bound in bytes.
    pub limit: u64,
    /// Bytes resident.
    pub used: u64,
    /// Book figures.
    pub figures: Figures,
    /// Requests that waited for an assembly in flight.
    pub waited: u64,
    /// Assemblies that ran uncached.
    pub uncached: u64,
    /// Chunks the pre-assembly worker assembled.
    pub prefetched: u64,
    /// Resident chunks.
    pub entries: Vec<Entry>,
}

/// The cache now.
pub fn snapshot() -> Snapshot {
    with(|c| Snapshot {
        policy: c.book.policy(),
        limit: c.book.limit(),
        used: c.book.used(),
        figures: c.book.figures(),
        waited: c.waited,
        uncached: c.uncached,
        prefetched: c.prefetched,
        entries: c.book.entries().to_vec(),
    })
}
