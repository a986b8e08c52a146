//! The snapshot library and the selector.
//!
//! Snapshots are keyed by segment; several may exist for one segment (on the base, or chained
//! on different parents), each with the probability weight the analyzer gave its segment.
//! [`Library::select`] takes a request's predicted path and picks, segment by segment, the
//! layer to restore: a layer chained on what is already chosen first, then the highest
//! weight, then the newest, skipping candidates that do not compose (see
//! [`crate::layer::compose`]). It stops at the first segment it cannot cover: the rest of the
//! path is run (a snapshot of a later segment alone would skip the earlier one's effects).
//!
//! **Per-client libraries.** A layer may belong to a client. A request that carries a client
//! id sees the shared layers and its client's, and prefers its client's for a segment (after
//! the chain rule); a request never sees another client's layers. A client's layers chained on
//! the end of its path form its *session* ([`Library::session`]): segments the client ran
//! (requests with their arguments), restored after the path so the client's next request
//! starts from its own state; with snapshots off they are re-run in the same order.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::SnapId;
use crate::layer::{Composite, Layer, compose};

/// Why a library operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibraryError {
    /// No snapshot has that id.
    NotFound(SnapId),
    /// The parent of a new layer is not in the library.
    NoParent(SnapId),
}

impl fmt::Display for LibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(id) => write!(f, "no snapshot {id}"),
            Self::NoParent(id) => write!(f, "parent snapshot {id} is not in the library"),
        }
    }
}

/// What the selector chose for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Layers to restore, in order (parents before their children).
    pub layers: Vec<SnapId>,
    /// How many segments of the path they cover (a prefix); the rest must run.
    pub covered: usize,
}

/// The snapshots kept.
#[derive(Debug)]
pub struct Library<P> {
    layers: Vec<Layer<P>>,
    next_id: SnapId,
}

impl<P> Default for Library<P> {
    fn default() -> Self {
        Self {
            layers: Vec::new(),
            next_id: 1,
        }
    }
}

impl<P> Library<P> {
    /// An empty library.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands out the id for a layer about to be captured.
    pub fn reserve_id(&mut self) -> SnapId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Adds a captured layer (its id from [`Library::reserve_id`]).
    pub fn insert(&mut self, layer: Layer<P>) -> Result<SnapId, LibraryError> {
        if let Some(p) = layer.parent
            && self.get(p).is_none()
        {
            return Err(LibraryError::NoParent(p));
        }
        let id = layer.id;
        self.layers.push(layer);
        Ok(id)
    }

    /// The layer `id`.
    pub fn get(&self, id: SnapId) -> Option<&Layer<P>> {
        self.layers.iter().find(|l| l.id == id)
    }

    /// Every layer, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Layer<P>> {
        self.layers.iter()
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the library is empty.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Bytes held by every layer.
    pub fn size_bytes(&self) -> u64 {
        self.layers.iter().map(Layer::size_bytes).sum()
    }

    /// Sets the weight of every layer of `segment`.
    pub fn set_weight(&mut self, segment: &str, weight_permille: u32) {
        for l in self.layers.iter_mut().filter(|l| l.segment == segment) {
            l.weight_permille = weight_permille;
        }
    }

    /// Removes layer `id` and every layer built on it (directly or not); returns them, `id`
    /// first. Their pages stay valid as long as someone holds them (the caller decides).
    pub fn remove(&mut self, id: SnapId) -> Result<Vec<Layer<P>>, LibraryError> {
        if self.get(id).is_none() {
            return Err(LibraryError::NotFound(id));
        }
        let mut doomed = BTreeSet::from([id]);
        loop {
            let more: Vec<SnapId> = self
                .layers
                .iter()
                .filter(|l| {
                    !doomed.contains(&l.id) && l.parent.is_some_and(|p| doomed.contains(&p))
                })
                .map(|l| l.id)
                .collect();
            if more.is_empty() {
                break;
            }
            doomed.extend(more);
        }
        let (gone, kept): (Vec<_>, Vec<_>) = core::mem::take(&mut self.layers)
            .into_iter()
            .partition(|l| doomed.contains(&l.id));
        self.layers = kept;
        let mut gone = gone;
        gone.sort_by_key(|l| l.id != id);
        Ok(gone)
    }

    /// Chooses the shared layers for `path` (see the module's rule).
    pub fn select(&self, path: &[&str]) -> Selection {
        self.select_for(path, None)
    }

    /// Whether a request of `client` may use `layer`.
    fn visible(layer: &Layer<P>, client: Option<&str>) -> bool {
        layer.client.is_none() || layer.client.as_deref() == client
    }

    /// Chooses the layers for `path` for a request of `client` (see the module's rules).
    pub fn select_for(&self, path: &[&str], client: Option<&str>) -> Selection {
        let mut chosen: Vec<&Layer<P>> = Vec::new();
        let mut covered = 0;
        for segment in path {
            let in_chosen = |p: SnapId| chosen.iter().any(|c| c.id == p);
            let mut candidates: Vec<&Layer<P>> = self
                .layers
                .iter()
                .filter(|l| {
                    l.segment == *segment
                        && l.parent.is_none_or(in_chosen)
                        && Self::visible(l, client)
                })
                .collect();
            candidates.sort_by_key(|l| {
                (
                    l.parent.is_none(),
                    l.client.is_none(),
                    core::cmp::Reverse(l.weight_permille),
                    core::cmp::Reverse(l.id),
                )
            });
            let pick = candidates.into_iter().find(|cand| {
                let mut trial = chosen.clone();
                trial.push(cand);
                compose(&trial).is_ok()
            });
            match pick {
                Some(l) => {
                    chosen.push(l);
                    covered += 1;
                }
                None => break,
            }
        }
        Selection {
            layers: chosen.iter().map(|l| l.id).collect(),
            covered,
        }
    }

    /// `client`'s session after `last` (the last layer chosen for its path, `None` for the
    /// base): its layers chained one on the other from there, heaviest then newest at each
    /// step, as long as they compose with `chosen` (the selection so far). Returns their ids.
    pub fn session(&self, chosen: &[SnapId], client: &str) -> Vec<SnapId> {
        let mut ids: Vec<SnapId> = chosen.to_vec();
        let mut out = Vec::new();
        loop {
            let last = ids.last().copied();
            let mut candidates: Vec<&Layer<P>> = self
                .layers
                .iter()
                .filter(|l| l.client.as_deref() == Some(client) && l.parent == last)
                .filter(|l| !ids.contains(&l.id))
                .collect();
            candidates.sort_by_key(|l| {
                (
                    core::cmp::Reverse(l.weight_permille),
                    core::cmp::Reverse(l.id),
                )
            });
            let pick = candidates.into_iter().find(|cand| {
                let trial: Option<Vec<&Layer<P>>> = ids
                    .iter()
                    .map(|&i| self.get(i))
                    .chain(core::iter::once(Some(*cand)))
                    .collect();
                trial.is_some_and(|t| compose(&t).is_ok())
            });
            let Some(l) = pick else {
                return out;
            };
            ids.push(l.id);
            out.push(l.id);
        }
    }

    /// The composite of a selection's layers.
    pub fn composite(&self, selection: &Selection) -> Option<Composite<'_, P>> {
        let layers: Option<Vec<&Layer<P>>> =
            selection.layers.iter().map(|&id| self.get(id)).collect();
        compose(&layers?).ok()
    }

    /// The segments that have at least one layer.
    pub fn segments(&self) -> BTreeSet<String> {
        self.layers.iter().map(|l| l.segment.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn add(
        lib: &mut Library<u8>,
        seg: &str,
        parent: Option<SnapId>,
        pages: &[u32],
        w: u32,
    ) -> SnapId {
        let id = lib.reserve_id();
        let mut l = Layer::new(id, seg.into(), parent, 1);
        for &p in pages {
            l.pages.insert(p, id as u8);
        }
        l.weight_permille = w;
        lib.insert(l).unwrap()
    }

    #[test]
    fn highest_weight_per_segment() {
        let mut lib = Library::new();
        let low = add(&mut lib, "c.a", None, &[0], 100);
        let high = add(&mut lib, "c.a", None, &[0], 900);
        let _ = low;
        assert_eq!(
            lib.select(&["c.a"]),
            Selection {
                layers: vec![high],
                covered: 1
            }
        );
    }

    #[test]
    fn a_chained_layer_is_preferred_and_the_prefix_stops_at_a_gap() {
        let mut lib = Library::new();
        let a = add(&mut lib, "c.a", None, &[0], 500);
        let b_indep = add(&mut lib, "c.b", None, &[1], 900);
        let b_chain = add(&mut lib, "c.b", Some(a), &[0, 1], 100);
        let _ = b_indep;
        let d = add(&mut lib, "c.d", None, &[9], 900);
        let sel = lib.select(&["c.a", "c.b", "c.c", "c.d"]);
        assert_eq!(sel.layers, vec![a, b_chain]);
        assert_eq!(
            sel.covered, 2,
            "c.c has no snapshot: c.d's must not be used"
        );
        let _ = d;
        assert!(lib.composite(&sel).is_some());
    }

    #[test]
    fn a_conflicting_candidate_is_skipped_for_one_that_composes() {
        let mut lib = Library::new();
        let a = add(&mut lib, "c.a", None, &[0, 1], 500);
        let _bad = add(&mut lib, "c.b", None, &[1], 900);
        let good = add(&mut lib, "c.b", None, &[2], 10);
        assert_eq!(lib.select(&["c.a", "c.b"]).layers, vec![a, good]);
        let mut lib2 = Library::new();
        let a = add(&mut lib2, "c.a", None, &[0, 1], 500);
        add(&mut lib2, "c.b", None, &[1], 900);
        let sel = lib2.select(&["c.a", "c.b"]);
        assert_eq!(
            (sel.layers, sel.covered),
            (vec![a], 1),
            "conflict: c.b runs"
        );
    }

    #[test]
    fn a_layer_chained_on_something_not_chosen_is_not_a_candidate() {
        let mut lib = Library::new();
        let x = add(&mut lib, "c.x", None, &[0], 500);
        add(&mut lib, "c.b", Some(x), &[1], 900);
        assert_eq!(lib.select(&["c.b"]).covered, 0);
    }

    #[test]
    fn removing_a_layer_removes_its_descendants() {
        let mut lib = Library::new();
        let a = add(&mut lib, "c.a", None, &[0], 1);
        let b = add(&mut lib, "c.b", Some(a), &[1], 1);
        let c = add(&mut lib, "c.c", Some(b), &[2], 1);
        let other = add(&mut lib, "c.z", None, &[3], 1);
        let gone: Vec<SnapId> = lib.remove(a).unwrap().iter().map(|l| l.id).collect();
        assert_eq!(gone, vec![a, b, c]);
        assert_eq!(lib.iter().map(|l| l.id).collect::<Vec<_>>(), vec![other]);
        assert_eq!(lib.remove(a).unwrap_err(), LibraryError::NotFound(a));
    }

    #[test]
    fn a_layer_needs_its_parent_in_the_library() {
        let mut lib: Library<u8> = Library::new();
        let id = lib.reserve_id();
        assert_eq!(
            lib.insert(Layer::new(id, "c.a".into(), Some(77), 1))
                .unwrap_err(),
            LibraryError::NoParent(77)
        );
    }

    fn add_for(lib: &mut Library<u8>, seg: &str, parent: Option<SnapId>, client: &str) -> SnapId {
        let id = lib.reserve_id();
        let mut l = Layer::new(id, seg.into(), parent, 1);
        l.pages.insert(100 + id, id as u8);
        l.client = Some(client.into());
        lib.insert(l).unwrap()
    }

    #[test]
    fn a_client_prefers_its_own_layers_and_never_sees_another_clients() {
        let mut lib = Library::new();
        let shared = add(&mut lib, "c.a", None, &[0], 900);
        let alice = add_for(&mut lib, "c.a", None, "alice");
        let bob = add_for(&mut lib, "c.a", None, "bob");
        assert_eq!(lib.select_for(&["c.a"], Some("alice")).layers, vec![alice]);
        assert_eq!(lib.select_for(&["c.a"], Some("bob")).layers, vec![bob]);
        assert_eq!(lib.select_for(&["c.a"], Some("carol")).layers, vec![shared]);
        assert_eq!(
            lib.select(&["c.a"]).layers,
            vec![shared],
            "no client: shared only"
        );
        let mut only_alice = Library::new();
        add_for(&mut only_alice, "c.a", None, "alice");
        assert_eq!(only_alice.select(&["c.a"]).covered, 0);
        assert_eq!(only_alice.select_for(&["c.a"], Some("bob")).covered, 0);
    }

    #[test]
    fn a_clients_session_continues_its_path() {
        let mut lib = Library::new();
        let a = add(&mut lib, "c.a", None, &[0], 500);
        let s1 = add_for(&mut lib, "c.req 1", Some(a), "alice");
        let s2 = add_for(&mut lib, "c.req 2", Some(s1), "alice");
        let other = add_for(&mut lib, "c.req 9", Some(a), "bob");
        assert_eq!(lib.session(&[a], "alice"), vec![s1, s2]);
        assert_eq!(lib.session(&[a], "bob"), vec![other]);
        assert!(lib.session(&[a], "carol").is_empty());
        assert!(
            lib.session(&[], "alice").is_empty(),
            "alice's session starts on a"
        );
    }

    #[test]
    fn sizes_add_up() {
        let mut lib = Library::new();
        add(&mut lib, "c.a", None, &[0, 1, 2], 1);
        add(&mut lib, "c.b", None, &[5], 1);
        assert_eq!(lib.size_bytes(), 4 * crate::PAGE_BYTES as u64);
        assert_eq!(lib.segments().len(), 2);
    }
}
