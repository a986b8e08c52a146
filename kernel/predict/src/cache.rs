//! The bookkeeping of a byte-bounded cache: which entries are resident, how many bytes they
//! hold, which to evict (LRU or LFU, switchable at any time), and the figures.
//!
//! The book never holds the cached things themselves: the kernel keeps assembled code next to
//! it and asks the book what to evict before it inserts. An entry that is *pinned* (code a
//! thread is executing or can return into) is never chosen; when the unpinned entries cannot
//! make room, the insert is refused and the caller runs without caching, so the bytes used
//! never pass the limit.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Which entry leaves first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Least recently used.
    Lru,
    /// Least frequently used (uses while resident; ties: least recently used).
    Lfu,
}

impl Policy {
    /// Parses `lru` or `lfu`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lru" => Some(Self::Lru),
            "lfu" => Some(Self::Lfu),
            _ => None,
        }
    }

    /// `lru` or `lfu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lru => "lru",
            Self::Lfu => "lfu",
        }
    }
}

/// One resident entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Key (a chunk name).
    pub name: String,
    /// Bytes it holds.
    pub bytes: u64,
    /// Uses while resident (a prefetched entry starts at 0, a demanded one at 1).
    pub uses: u64,
    /// Logical time of the last use (or of the insert).
    pub last_use: u64,
    /// Holders that keep it from being evicted.
    pub pins: u32,
    /// Whether it came in by prediction rather than by a request.
    pub prefetched: bool,
}

/// Running figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Lookups that found the entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries evicted to make room (or by a lower limit).
    pub evictions: u64,
    /// Entries inserted.
    pub inserts: u64,
    /// Inserts refused because pinned entries left no room (or the entry is larger than the
    /// limit).
    pub refused: u64,
    /// The most bytes ever resident at once.
    pub peak_bytes: u64,
    /// Growths of a resident entry that passed the limit (pinned entries left no room).
    pub overdrawn: u64,
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// The entry alone is larger than the limit.
    TooLarge {
        /// The entry's size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Pinned entries hold so much that evicting every other one would not make room.
    Pinned {
        /// Bytes pinned.
        pinned: u64,
    },
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes, limit } => {
                write!(f, "{bytes} bytes do not fit a cache of {limit} bytes")
            }
            Self::Pinned { pinned } => write!(f, "{pinned} bytes are pinned by running tasks"),
        }
    }
}

/// The book.
#[derive(Debug, Clone)]
pub struct CacheBook {
    policy: Policy,
    limit: u64,
    entries: Vec<Entry>,
    clock: u64,
    figures: Figures,
}

impl CacheBook {
    /// An empty cache of `limit` bytes.
    pub fn new(policy: Policy, limit: u64) -> Self {
        Self {
            policy,
            limit,
            entries: Vec::new(),
            clock: 0,
            figures: Figures::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Switches the policy; nothing is evicted by the switch.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes resident.
    pub fn used(&self) -> u64 {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    /// The figures.
    pub fn figures(&self) -> Figures {
        self.figures
    }

    /// Clears the figures (not the entries).
    pub fn reset_figures(&mut self) {
        self.figures = Figures {
            peak_bytes: self.used(),
            ..Figures::default()
        };
    }

    /// Resident entries, in insertion order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether `name` is resident (no use is recorded).
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// A request for `name`: a hit records a use; a miss is counted.
    pub fn lookup(&mut self, name: &str) -> bool {
        let now = self.tick();
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.uses += 1;
                e.last_use = now;
                self.figures.hits += 1;
                true
            }
            None => {
                self.figures.misses += 1;
                false
            }
        }
    }

    /// The entries to evict, in order, so that `bytes` more fit; nothing changes.
    pub fn victims_for(&self, bytes: u64) -> Result<Vec<String>, NoRoom> {
        if bytes > self.limit {
            return Err(NoRoom::TooLarge {
                bytes,
                limit: self.limit,
            });
        }
        self.victims_to_fit(self.limit - bytes)
    }

    /// The unpinned entries to evict, in policy order, until at most `target` bytes remain.
    fn victims_to_fit(&self, target: u64) -> Result<Vec<String>, NoRoom> {
        let mut used = self.used();
        if used <= target {
            return Ok(Vec::new());
        }
        let mut order: Vec<&Entry> = self.entries.iter().filter(|e| e.pins == 0).collect();
        match self.policy {
            Policy::Lru => order.sort_by_key(|e| e.last_use),
            Policy::Lfu => order.sort_by_key(|e| (e.uses, e.last_use)),
        }
        let mut victims = Vec::new();
        for e in order {
            if used <= target {
                break;
            }
            used -= e.bytes;
            victims.push(e.name.clone());
        }
        if used > target {
            let pinned = self
                .entries
                .iter()
                .filter(|e| e.pins > 0)
                .map(|e| e.bytes)
                .sum();
            return Err(NoRoom::Pinned { pinned });
        }
        Ok(victims)
    }

    /// Removes an evicted entry (counted as an eviction). Returns whether it was resident.
    /// Refuses (returns `false`) for a pinned entry.
    pub fn evict(&mut self, name: &str) -> bool {
        match self.entries.iter().position(|e| e.name == name) {
            Some(i) if self.entries[i].pins == 0 => {
                self.entries.remove(i);
                self.figures.evictions += 1;
                true
            }
            _ => false,
        }
    }

    /// Removes an entry without counting an eviction (e.g. `cache clear`); pinned ones stay.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.entries.iter().position(|e| e.name == name) {
            Some(i) if self.entries[i].pins == 0 => {
                self.entries.remove(i);
                true
            }
            _ => false,
        }
    }

    /// Inserts `name` after its victims were evicted. Refused (and counted) if it does not
    /// fit; the caller then runs the code uncached.
    pub fn insert(&mut self, name: &str, bytes: u64, prefetched: bool) -> Result<(), NoRoom> {
        if self.contains(name) {
            return Ok(());
        }
        let fits = bytes <= self.limit && self.used() + bytes <= self.limit;
        if !fits {
            self.figures.refused += 1;
            return Err(self.victims_for(bytes).err().unwrap_or(NoRoom::Pinned {
                pinned: self
                    .entries
                    .iter()
                    .filter(|e| e.pins > 0)
                    .map(|e| e.bytes)
                    .sum(),
            }));
        }
        let now = self.tick();
        self.entries.push(Entry {
            name: name.into(),
            bytes,
            uses: u64::from(!prefetched),
            last_use: now,
            pins: 0,
            prefetched,
        });
        self.figures.inserts += 1;
        self.figures.peak_bytes = self.figures.peak_bytes.max(self.used());
        Ok(())
    }

    /// Grows an entry by `extra` bytes (code assembled later for a running task, e.g. a lazily
    /// assembled function). The caller evicts first (`victims_for(extra)`); the bytes are
    /// counted even when they pass the limit (the code exists and is needed), and `Err` says by
    /// how much the limit is overdrawn (counted in [`Figures::overdrawn`]).
    pub fn grow(&mut self, name: &str, extra: u64) -> Result<(), u64> {
        let Some(e) = self.entries.iter_mut().find(|e| e.name == name) else {
            return Ok(());
        };
        e.bytes += extra;
        let used = self.used();
        self.figures.peak_bytes = self.figures.peak_bytes.max(used);
        if used > self.limit {
            let over = used - self.limit;
            self.figures.overdrawn += 1;
            return Err(over);
        }
        Ok(())
    }

    /// Keeps `name` from being evicted until [`unpin`](Self::unpin).
    pub fn pin(&mut self, name: &str) -> bool {
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.pins += 1;
                true
            }
            None => false,
        }
    }

    /// Drops one pin of `name`.
    pub fn unpin(&mut self, name: &str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.name == name) {
            e.pins = e.pins.saturating_sub(1);
        }
    }

    /// Whether `name` is pinned.
    pub fn pinned(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name && e.pins > 0)
    }

    /// Sets the limit; returns the unpinned entries to evict so the used bytes fit it (if the
    /// pinned ones alone exceed it, as many as possible and `Err` with what stays pinned).
    pub fn set_limit(&mut self, limit: u64) -> Result<Vec<String>, NoRoom> {
        self.limit = limit;
        self.victims_to_fit(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(book: &mut CacheBook, name: &str, bytes: u64) -> Vec<String> {
        if book.lookup(name) {
            return Vec::new();
        }
        let victims = book.victims_for(bytes).expect("room");
        for v in &victims {
            assert!(book.evict(v));
        }
        book.insert(name, bytes, false).expect("insert");
        assert!(book.used() <= book.limit());
        victims
    }

    #[test]
    fn lru_evicts_the_least_recent() {
        let mut b = CacheBook::new(Policy::Lru, 300);
        fill(&mut b, "a", 100);
        fill(&mut b, "b", 100);
        fill(&mut b, "c", 100);
        assert!(b.lookup("a"));
        assert_eq!(fill(&mut b, "d", 100), ["b"]);
        let f = b.figures();
        assert_eq!((f.hits, f.misses, f.evictions, f.inserts), (1, 4, 1, 4));
        assert_eq!(f.peak_bytes, 300);
    }

    #[test]
    fn lfu_evicts_the_least_used_with_lru_ties() {
        let mut b = CacheBook::new(Policy::Lfu, 300);
        fill(&mut b, "a", 100);
        fill(&mut b, "b", 100);
        fill(&mut b, "c", 100);
        b.lookup("a");
        b.lookup("a");
        b.lookup("c");
        // b: 1 use, the only one with the fewest.
        assert_eq!(fill(&mut b, "d", 100), ["b"]);
        // d and ... : d has 1 use, c 2, a 3.
        assert_eq!(fill(&mut b, "e", 100), ["d"]);
    }

    #[test]
    fn a_trace_separates_lru_from_lfu() {
        // A hot entry used between scans of cold ones that together overflow the cache: LRU
        // evicts the hot entry at every scan, LFU keeps it.
        let run = |policy| {
            let mut b = CacheBook::new(policy, 300);
            for round in 0..10 {
                for _ in 0..3 {
                    fill(&mut b, "hot", 100);
                }
                for i in 0..3 {
                    fill(&mut b, &alloc::format!("cold{round}.{i}"), 100);
                }
            }
            b.figures()
        };
        let lru = run(Policy::Lru);
        let lfu = run(Policy::Lfu);
        assert!(lru.evictions > lfu.evictions, "{lru:?} {lfu:?}");
        assert!(lfu.hits > lru.hits);
    }

    #[test]
    fn pinned_entries_are_never_victims() {
        let mut b = CacheBook::new(Policy::Lru, 200);
        fill(&mut b, "a", 100);
        fill(&mut b, "b", 100);
        assert!(b.pin("a"));
        assert_eq!(fill(&mut b, "c", 100), ["b"]);
        assert!(b.pin("c"));
        assert_eq!(b.victims_for(100), Err(NoRoom::Pinned { pinned: 200 }));
        assert_eq!(
            b.insert("d", 100, false),
            Err(NoRoom::Pinned { pinned: 200 })
        );
        assert!(!b.evict("a"));
        assert_eq!(b.figures().refused, 1);
        b.unpin("a");
        assert_eq!(b.victims_for(100).unwrap(), ["a"]);
    }

    #[test]
    fn never_more_than_the_limit() {
        let mut b = CacheBook::new(Policy::Lfu, 250);
        assert_eq!(
            b.victims_for(300),
            Err(NoRoom::TooLarge {
                bytes: 300,
                limit: 250
            })
        );
        for i in 0..50u64 {
            let name = alloc::format!("c{}", i % 7);
            if !b.lookup(&name) {
                let bytes = 50 + (i * 37) % 120;
                for v in b.victims_for(bytes).unwrap() {
                    b.evict(&v);
                }
                b.insert(&name, bytes, i % 3 == 0).unwrap();
            }
            assert!(b.used() <= 250);
        }
        assert!(b.figures().peak_bytes <= 250);
    }

    #[test]
    fn growth_is_counted_and_overdrafts_are_reported() {
        let mut b = CacheBook::new(Policy::Lru, 300);
        fill(&mut b, "a", 100);
        fill(&mut b, "b", 100);
        b.pin("a");
        assert_eq!(b.grow("a", 50), Ok(()));
        assert_eq!(b.used(), 250);
        // Room for 100 more: `b` goes, then `a` grows within the limit.
        assert_eq!(b.victims_for(100).unwrap(), ["b"]);
        b.evict("b");
        assert_eq!(b.grow("a", 100), Ok(()));
        // Pinned and alone: the growth is still counted, and the overdraft reported.
        assert_eq!(b.grow("a", 100), Err(50));
        assert_eq!(b.used(), 350);
        assert_eq!(b.figures().overdrawn, 1);
        assert_eq!(b.figures().peak_bytes, 350);
        assert_eq!(b.grow("nope", 10), Ok(()));
    }

    #[test]
    fn lowering_the_limit_evicts() {
        let mut b = CacheBook::new(Policy::Lru, 400);
        for n in ["a", "b", "c", "d"] {
            fill(&mut b, n, 100);
        }
        let v = b.set_limit(150).unwrap();
        assert_eq!(v, ["a", "b", "c"]);
        for n in &v {
            b.evict(n);
        }
        assert_eq!(b.used(), 100);
    }

    #[test]
    fn prefetched_entries_start_unused() {
        let mut b = CacheBook::new(Policy::Lfu, 200);
        fill(&mut b, "a", 100);
        b.insert("p", 100, true).unwrap();
        assert_eq!(b.entries()[1].uses, 0);
        assert_eq!(b.victims_for(100).unwrap(), ["p"]);
        assert_eq!(Policy::parse("lfu"), Some(Policy::Lfu));
        assert_eq!(Policy::parse("mru"), None);
    }
}
