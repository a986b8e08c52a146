//! Where an island runs (its environment) and the bounded history of its moves.

pub use atoll_kcore::addr::PageSize;

/// The environment an island currently runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Environment {
    /// Home core of the island's threads, when it has one.
    pub core: Option<u32>,
    /// Size of the page(s) its code is mapped with.
    pub page_size: PageSize,
    /// Address of its first code byte.
    pub address: u64,
    /// NUMA node of the memory holding its code, when known.
    pub numa_node: Option<u32>,
}

impl Environment {
    /// Code at `address` in 4 KiB pages, no home core, node unknown.
    pub fn at(address: u64) -> Self {
        Self {
            core: None,
            page_size: PageSize::Size4K,
            address,
            numa_node: None,
        }
    }
}

/// One completed move, as the relocation engine measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveRecord {
    /// Environment before the move.
    pub from: Environment,
    /// Environment after it.
    pub to: Environment,
    /// Code bytes written at the new place.
    pub bytes: u32,
    /// Saved RIPs rewritten.
    pub rips_rewritten: u32,
    /// Return addresses rewritten.
    pub return_addresses_rewritten: u32,
    /// Length of the stop-the-world pause in cycles (0 if not measured).
    pub pause_cycles: u64,
}

/// Number of moves an island remembers.
pub const HISTORY_LEN: usize = 16;

/// The last [`HISTORY_LEN`] moves of an island, oldest first; recording never allocates (it
/// runs inside the pause).
#[derive(Debug, Clone, Default)]
pub struct History {
    ring: [Option<MoveRecord>; HISTORY_LEN],
    next: usize,
    total: u64,
}

impl History {
    /// Appends a move, dropping the oldest when full.
    pub fn record(&mut self, m: MoveRecord) {
        self.ring[self.next] = Some(m);
        self.next = (self.next + 1) % HISTORY_LEN;
        self.total += 1;
    }

    /// Moves ever recorded (including the forgotten ones).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The remembered moves, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &MoveRecord> {
        let (newer, older) = self.ring.split_at(self.next);
        older.iter().chain(newer).flatten()
    }

    /// Whether `addr` lay in a code range this island has left (`len` bytes at each `from`
    /// address): a fault there names the island.
    pub fn vacated(&self, addr: u64, len: u64) -> bool {
        self.iter()
            .any(|m| addr >= m.from.address && addr - m.from.address < len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(from: u64, to: u64) -> MoveRecord {
        MoveRecord {
            from: Environment::at(from),
            to: Environment::at(to),
            bytes: 1,
            rips_rewritten: 0,
            return_addresses_rewritten: 0,
            pause_cycles: 0,
        }
    }

    #[test]
    fn history_keeps_the_last_moves_in_order() {
        let mut h = History::default();
        for i in 0..HISTORY_LEN as u64 + 3 {
            h.record(mv(i, i + 1));
        }
        let froms: Vec<u64> = h.iter().map(|m| m.from.address).collect();
        let want: Vec<u64> = (3..HISTORY_LEN as u64 + 3).collect();
        assert_eq!(froms, want);
        assert_eq!(h.total(), HISTORY_LEN as u64 + 3);
        assert!(h.vacated(3 + 9, 10));
        assert!(!h.vacated(2, 1), "forgotten move");
        assert!(!h.vacated(HISTORY_LEN as u64 + 3, 0));
    }
}
