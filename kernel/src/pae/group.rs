//! Linked groups: chunks that share memories, tables or globals (and every chunk linked to them
//! through imports, see `chunk_image::linked_groups`) get one instance each, kernel-wide, made
//! at the first task that needs it and kept from task to task, so one task's writes are seen
//! by the next, on any core. WebAssembly 2.0 has no threads, so a group runs one task at a time:
//! a task waits (yielding its core) while another task of its group runs, and instantiation,
//! the run and `groups reset` each hold the group for their whole duration.
//!
//! Every other chunk keeps the default rule: fresh instances per task.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_pae::runtime::{Instance, SigRegistry};
use spin::{Mutex, MutexGuard};

use super::{Assembled, Held, PaeError};
use crate::chunks::{self, Loaded};

/// What a group holds while it lives.
#[derive(Default)]
pub struct State {
    /// One instance per member chunk instantiated so far.
    pub(super) instances: BTreeMap<String, Box<Instance>>,
    /// Signature ids shared by the group's instances (`call_indirect` compares them).
    pub(super) sigs: SigRegistry,
    /// The instances' keys in the islands' registry.
    registered: Vec<u64>,
    /// Pins on the members' code (and code assembled for the group alone).
    held: Held,
}

// SAFETY: the instances hold raw pointers (VM context, linear memory, code) into memory they
// own or pin. The state is only reached through the group's mutex, so one thread at a time uses
// the instances, whichever core it runs on; nothing in it refers to a particular thread.
#[allow(unsafe_code)]
unsafe impl Send for State {}

/// One linked group.
pub struct Group {
    /// The group's name: its first chunk in the image.
    pub name: String,
    /// Its member chunks, in image order.
    pub members: Vec<String>,
    state: Mutex<State>,
    /// Tasks run in the group.
    tasks: AtomicU64,
    /// Times a task or instantiation found the group busy and waited.
    waits: AtomicU64,
    /// Times the group was reset.
    resets: AtomicU64,
}

impl core::fmt::Debug for Group {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// Groups made so far, by name.
static GROUPS: Mutex<BTreeMap<String, Arc<Group>>> = Mutex::new(BTreeMap::new());

/// The group of `chunk`, made on first use; `None` when the chunk is in no group.
pub fn of(chunk: &str) -> Result<Option<Arc<Group>>, PaeError> {
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage);
    };
    let views = image.chunks();
    let groups = chunk_image::linked_groups(views.iter().map(|c| (c.name, &c.manifest)));
    let Some(index) = views.iter().position(|c| c.name == chunk) else {
        return Err(PaeError::NoChunk(chunk.into()));
    };
    let Some(root) = groups.get(index).copied().flatten() else {
        return Ok(None);
    };
    let name = views[root].name.to_string();
    let mut all = GROUPS.lock();
    let group = all.entry(name.clone()).or_insert_with(|| {
        let members = views
            .iter()
            .zip(&groups)
            .filter(|(_, g)| **g == Some(root))
            .map(|(c, _)| c.name.to_string())
            .collect();
        Arc::new(Group {
            name,
            members,
            state: Mutex::new(State::default()),
            tasks: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        })
    });
    Ok(Some(group.clone()))
}

impl Group {
    /// Takes the group for the caller alone, yielding the core while another holds it.
    pub fn enter(&self) -> MutexGuard<'_, State> {
        if let Some(state) = self.state.try_lock() {
            return state;
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        loop {
            crate::sched::yield_now();
            if let Some(state) = self.state.try_lock() {
                return state;
            }
        }
    }

    /// Instantiates the chunks of `assembled` (providers first) that the group has no
    /// instance of yet, linked to the group's instances; keeps pins on their code.
    pub fn instantiate_missing(
        &self,
        state: &mut State,
        assembled: &[(String, Arc<Assembled>)],
    ) -> Result<(), PaeError> {
        let missing: Vec<(String, Arc<Assembled>)> = assembled
            .iter()
            .filter(|(name, _)| !state.instances.contains_key(name))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        // Pins for as long as the group's instances use the code (the task's own pins go with
        // the task).
        let mut held = Held::default();
        for (name, _) in &missing {
            let (_, how) = super::cache::obtain(name, false, || super::compile_chunk(name, None))?;
            held.note(name, how);
        }
        let State {
            instances,
            sigs,
            registered,
            ..
        } = state;
        crate::island::instantiating(|reg| {
            let before: Vec<String> = instances.keys().cloned().collect();
            super::instantiate_into(instances, sigs, &missing, None, None)?;
            for (name, inst) in instances.iter_mut() {
                if !before.contains(name) {
                    registered.push(
                        reg.register_instance(
                            core::ptr::from_mut::<Instance>(inst.as_mut()) as usize
                        ),
                    );
                }
            }
            Ok::<_, PaeError>(())
        })?;
        state.held.absorb(held);
        Ok(())
    }

    /// Counts a task run in the group (while holding it).
    pub fn note_task(&self) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Drops the instances of the group that `chunk` belongs to (waiting for its running task),
/// so the next task starts from fresh state. Returns the group's name and how many instances
/// were dropped.
pub fn reset(chunk: &str) -> Result<(String, usize), PaeError> {
    let group = of(chunk)?.ok_or_else(|| PaeError::NotInGroup(chunk.into()))?;
    let mut state = group.enter();
    let dropped = core::mem::take(&mut *state);
    drop(state);
    crate::island::unregister_instances(&dropped.registered);
    let count = dropped.instances.len();
    // The instances go first, then the pins on their code (field order of `State`).
    drop(dropped);
    group.resets.fetch_add(1, Ordering::Relaxed);
    Ok((group.name.clone(), count))
}

/// What `groups` shows of one group.
#[derive(Debug)]
pub struct GroupInfo {
    /// Its name (first chunk).
    pub name: String,
    /// Member chunks.
    pub members: Vec<String>,
    /// Members instantiated now.
    pub instantiated: Vec<String>,
    /// Tasks run.
    pub tasks: u64,
    /// Waits for a busy group.
    pub waits: u64,
    /// Resets.
    pub resets: u64,
    /// Whether a task holds it now.
    pub busy: bool,
    /// Bytes of linear memory of each instantiated member (shared memories count at each
    /// member that uses them).
    pub memory_bytes: Vec<(String, u64)>,
}

/// Every group of the loaded image (made now if not yet), without waiting for busy ones
/// (their instance lists are then left empty).
pub fn list() -> Result<Vec<GroupInfo>, PaeError> {
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage);
    };
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for view in image.chunks() {
        let Some(group) = of(view.name)? else {
            continue;
        };
        if seen.contains(&group.name) {
            continue;
        }
        seen.push(group.name.clone());
        let (busy, instantiated, memory_bytes) = match group.state.try_lock() {
            Some(mut state) => {
                let names: Vec<String> = state.instances.keys().cloned().collect();
                let bytes = state
                    .instances
                    .iter_mut()
                    .map(|(n, i)| (n.clone(), i.memory().len() as u64))
                    .collect();
                (false, names, bytes)
            }
            None => (true, Vec::new(), Vec::new()),
        };
        out.push(GroupInfo {
            name: group.name.clone(),
            members: group.members.clone(),
            instantiated,
            tasks: group.tasks.load(Ordering::Relaxed),
            waits: group.waits.load(Ordering::Relaxed),
            resets: group.resets.load(Ordering::Relaxed),
            busy,
            memory_bytes,
        });
    }
    Ok(out)
}
