//! Snapshot layers and their composition.
//!
//! **Conflict rule.** Layers are applied in path order onto the base. Each thing a layer
//! captured (a 4 KiB page, a global, a table entry) replaces what earlier layers put there
//! only if the layer was *built on* the earlier layer that wrote it (its chain of parents
//! reaches that layer): a chained layer's pages were captured from a state that already
//! contained its parents' writes, so replacing them whole is exact. Two *independent* layers
//! (neither built on the other) that wrote the same page, global or table entry conflict: the
//! composition is refused with [`ComposeError::Conflict`], and the selector falls back to a
//! shorter prefix (the rest of the path is run). Independent layers that wrote disjoint state
//! compose as if their segments had run one after the other, which holds when neither segment
//! reads what the other writes (the differential test checks this on the default set).
//! Memory sizes take the largest; dropped segments accumulate.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::{PAGE_BYTES, SnapId};

/// A table entry as a snapshot keeps it: instance-independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableValue {
    /// A null reference.
    Null,
    /// A function of the instance's own module, by index.
    Func(u32),
}

/// The state one segment produced.
#[derive(Debug, Clone)]
pub struct Layer<P> {
    /// Id in its library.
    pub id: SnapId,
    /// `chunk.export` that ran.
    pub segment: String,
    /// The layer it was built on (its scratch instance was restored from it), if any.
    pub parent: Option<SnapId>,
    /// Size of the linear memory afterwards, in wasm pages (64 KiB).
    pub memory_pages: u64,
    /// Changed 4 KiB pages by index, with their contents afterwards.
    pub pages: BTreeMap<u32, P>,
    /// Changed mutable globals (index, raw bits).
    pub globals: BTreeMap<u32, u64>,
    /// Changed table entries ((table, index), value).
    pub table: BTreeMap<(u32, u32), TableValue>,
    /// Data segments dropped by the segment.
    pub dropped_data: BTreeSet<u32>,
    /// Element segments dropped by the segment.
    pub dropped_elems: BTreeSet<u32>,
    /// Probability weight (permille) the analyzer gave the segment.
    pub weight_permille: u32,
    /// What re-running the segment cost when it was captured (TSC cycles).
    pub run_cycles: u64,
    /// The client whose library holds it (`None`: shared by every request).
    pub client: Option<String>,
}

impl<P> Layer<P> {
    /// A layer with nothing captured yet.
    pub fn new(id: SnapId, segment: String, parent: Option<SnapId>, memory_pages: u64) -> Self {
        Self {
            id,
            segment,
            parent,
            memory_pages,
            pages: BTreeMap::new(),
            globals: BTreeMap::new(),
            table: BTreeMap::new(),
            dropped_data: BTreeSet::new(),
            dropped_elems: BTreeSet::new(),
            weight_permille: 0,
            run_cycles: 0,
            client: None,
        }
    }

    /// Bytes the layer holds (its pages; globals and table entries are 8 bytes each).
    pub fn size_bytes(&self) -> u64 {
        (self.pages.len() * PAGE_BYTES + (self.globals.len() + self.table.len()) * 8) as u64
    }
}

/// Why layers could not be composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeError {
    /// Two independent layers wrote the same thing.
    Conflict {
        /// The earlier layer.
        first: SnapId,
        /// The later one.
        second: SnapId,
        /// What both wrote.
        what: Conflicted,
    },
    /// A chained layer came before (or without) its parent.
    MissingParent {
        /// The layer.
        layer: SnapId,
        /// Its parent.
        parent: SnapId,
    },
}

/// What two layers both wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflicted {
    /// A 4 KiB page of linear memory.
    Page(u32),
    /// A global.
    Global(u32),
    /// A table entry.
    TableEntry(u32, u32),
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict {
                first,
                second,
                what,
            } => {
                write!(
                    f,
                    "snapshots {first} and {second} are independent and both wrote "
                )?;
                match what {
                    Conflicted::Page(p) => write!(f, "memory page {p}"),
                    Conflicted::Global(g) => write!(f, "global {g}"),
                    Conflicted::TableEntry(t, i) => write!(f, "table {t} entry {i}"),
                }
            }
            Self::MissingParent { layer, parent } => write!(
                f,
                "snapshot {layer} is built on snapshot {parent}, which does not come before it"
            ),
        }
    }
}

/// The composite of layers: what a restore applies onto a freshly instantiated base. Each
/// page names the layer whose copy it maps (shared, copy-on-write).
#[derive(Debug)]
pub struct Composite<'a, P> {
    /// Linear memory size in wasm pages (at least the base's; the restore grows to it).
    pub memory_pages: u64,
    /// Page index to (layer id, contents).
    pub pages: BTreeMap<u32, (SnapId, &'a P)>,
    /// Global index to raw bits.
    pub globals: BTreeMap<u32, u64>,
    /// (table, index) to value.
    pub table: BTreeMap<(u32, u32), TableValue>,
    /// Data segments to drop.
    pub dropped_data: BTreeSet<u32>,
    /// Element segments to drop.
    pub dropped_elems: BTreeSet<u32>,
    /// The layers, in the order applied.
    pub layers: Vec<SnapId>,
}

/// Stacks `layers` (in path order, every chained layer after its parent) under the conflict
/// rule of this module.
pub fn compose<'a, P>(layers: &[&'a Layer<P>]) -> Result<Composite<'a, P>, ComposeError> {
    // Ancestors of each layer among those already applied.
    let mut ancestors: BTreeMap<SnapId, BTreeSet<SnapId>> = BTreeMap::new();
    let mut out = Composite {
        memory_pages: 0,
        pages: BTreeMap::new(),
        globals: BTreeMap::new(),
        table: BTreeMap::new(),
        dropped_data: BTreeSet::new(),
        dropped_elems: BTreeSet::new(),
        layers: Vec::new(),
    };
    let mut global_owner: BTreeMap<u32, SnapId> = BTreeMap::new();
    let mut table_owner: BTreeMap<(u32, u32), SnapId> = BTreeMap::new();
    for layer in layers {
        let mut mine = BTreeSet::new();
        if let Some(parent) = layer.parent {
            let Some(up) = ancestors.get(&parent) else {
                return Err(ComposeError::MissingParent {
                    layer: layer.id,
                    parent,
                });
            };
            mine.clone_from(up);
            mine.insert(parent);
        }
        let check = |owner: SnapId, what: Conflicted| {
            if mine.contains(&owner) {
                Ok(())
            } else {
                Err(ComposeError::Conflict {
                    first: owner,
                    second: layer.id,
                    what,
                })
            }
        };
        for &page in layer.pages.keys() {
            if let Some(&(owner, _)) = out.pages.get(&page) {
                check(owner, Conflicted::Page(page))?;
            }
        }
        for &g in layer.globals.keys() {
            if let Some(&owner) = global_owner.get(&g) {
                check(owner, Conflicted::Global(g))?;
            }
        }
        for &(t, i) in layer.table.keys() {
            if let Some(&owner) = table_owner.get(&(t, i)) {
                check(owner, Conflicted::TableEntry(t, i))?;
            }
        }
        for (&page, contents) in &layer.pages {
            out.pages.insert(page, (layer.id, contents));
        }
        for (&g, &bits) in &layer.globals {
            out.globals.insert(g, bits);
            global_owner.insert(g, layer.id);
        }
        for (&at, &v) in &layer.table {
            out.table.insert(at, v);
            table_owner.insert(at, layer.id);
        }
        out.dropped_data.extend(layer.dropped_data.iter().copied());
        out.dropped_elems
            .extend(layer.dropped_elems.iter().copied());
        out.memory_pages = out.memory_pages.max(layer.memory_pages);
        out.layers.push(layer.id);
        ancestors.insert(layer.id, mine);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn layer(id: SnapId, parent: Option<SnapId>, pages: &[(u32, u8)]) -> Layer<u8> {
        let mut l = Layer::new(id, alloc::format!("c.s{id}"), parent, 2);
        for &(p, v) in pages {
            l.pages.insert(p, v);
        }
        l
    }

    #[test]
    fn disjoint_independent_layers_compose() {
        let a = layer(1, None, &[(0, 10), (3, 11)]);
        let b = layer(2, None, &[(1, 20), (4, 21)]);
        let c = compose(&[&a, &b]).unwrap();
        let got: Vec<(u32, SnapId, u8)> = c.pages.iter().map(|(&p, &(l, &v))| (p, l, v)).collect();
        assert_eq!(
            got,
            vec![(0, 1, 10), (1, 2, 20), (3, 1, 11), (4, 2, 21)],
            "each page from the layer that wrote it"
        );
        assert_eq!(c.layers, vec![1, 2]);
    }

    #[test]
    fn independent_layers_writing_one_page_conflict() {
        let a = layer(1, None, &[(0, 10), (5, 11)]);
        let b = layer(2, None, &[(5, 20)]);
        assert_eq!(
            compose(&[&a, &b]).unwrap_err(),
            ComposeError::Conflict {
                first: 1,
                second: 2,
                what: Conflicted::Page(5)
            }
        );
    }

    #[test]
    fn a_chained_layer_replaces_its_ancestors_pages() {
        let a = layer(1, None, &[(0, 10), (5, 11)]);
        let b = layer(2, Some(1), &[(5, 20)]);
        let c = layer(3, Some(2), &[(0, 30)]);
        let comp = compose(&[&a, &b, &c]).unwrap();
        assert_eq!(comp.pages[&5], (2, &20));
        assert_eq!(comp.pages[&0], (3, &30), "grandparent's page replaced");
    }

    #[test]
    fn a_chained_layer_still_conflicts_with_an_unrelated_one() {
        let a = layer(1, None, &[(0, 10)]);
        let x = layer(9, None, &[(7, 90)]);
        let b = layer(2, Some(1), &[(7, 20)]);
        assert!(matches!(
            compose(&[&a, &x, &b]),
            Err(ComposeError::Conflict {
                first: 9,
                second: 2,
                ..
            })
        ));
    }

    #[test]
    fn a_chained_layer_needs_its_parent_first() {
        let a = layer(1, None, &[(0, 10)]);
        let b = layer(2, Some(1), &[(1, 20)]);
        assert_eq!(
            compose(&[&b, &a]).unwrap_err(),
            ComposeError::MissingParent {
                layer: 2,
                parent: 1
            }
        );
        assert!(compose(&[&b]).is_err());
    }

    #[test]
    fn globals_and_table_entries_follow_the_same_rule() {
        let mut a = layer(1, None, &[]);
        a.globals.insert(0, 5);
        a.table.insert((0, 3), TableValue::Func(2));
        let mut b = layer(2, None, &[]);
        b.globals.insert(1, 6);
        b.table.insert((0, 4), TableValue::Null);
        let c = compose(&[&a, &b]).unwrap();
        assert_eq!(c.globals.len(), 2);
        assert_eq!(c.table[&(0, 3)], TableValue::Func(2));
        let mut d = layer(3, None, &[]);
        d.globals.insert(0, 7);
        assert!(matches!(
            compose(&[&a, &d]),
            Err(ComposeError::Conflict {
                what: Conflicted::Global(0),
                ..
            })
        ));
        let mut e = layer(4, Some(1), &[]);
        e.table.insert((0, 3), TableValue::Null);
        let c = compose(&[&a, &e]).unwrap();
        assert_eq!(c.table[&(0, 3)], TableValue::Null, "chained: later wins");
        let mut f = layer(5, None, &[]);
        f.table.insert((0, 3), TableValue::Null);
        assert!(compose(&[&a, &f]).is_err());
    }

    #[test]
    fn memory_size_is_the_largest() {
        let mut a = layer(1, None, &[]);
        a.memory_pages = 3;
        let mut b = layer(2, None, &[]);
        b.memory_pages = 7;
        assert_eq!(compose(&[&b, &a]).unwrap().memory_pages, 7);
    }
}
