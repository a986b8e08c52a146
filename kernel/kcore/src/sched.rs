//! Scheduler policy: thread states and their transitions, per-core run queues, time slices,
//! sleepers, joins, suspension, migration and kills. No hardware here: the kernel holds one
//! `Scheduler` behind a lock (interrupts off), saves and restores contexts, and sends the
//! reschedule IPIs this code asks for through [`Kicks`].
//!
//! Invariants: a thread is in at most one run queue, and only when `Ready`; each core has one
//! current thread (`Running`, or a state it just entered and will leave the core for at the next
//! `schedule`); idle threads are never queued and run only when their core's queue is empty.
//! Queues are preallocated so nothing here allocates after `new` except `spawn`'s name.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Where a thread is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// In a run queue.
    Ready,
    /// Current on its core.
    Running,
    /// Waiting for a time.
    Sleeping,
    /// Waiting for an event (input, a join).
    Blocked,
    /// Stopped by `suspend` until `resume`; its saved context may be read and rewritten.
    Suspended,
    /// Finished or killed.
    Dead,
}

impl ThreadState {
    /// The name the console prints.
    pub fn name(self) -> &'static str {
        match self {
            ThreadState::Ready => "ready",
            ThreadState::Running => "running",
            ThreadState::Sleeping => "sleeping",
            ThreadState::Blocked => "blocked",
            ThreadState::Suspended => "suspended",
            ThreadState::Dead => "dead",
        }
    }
}

/// Why a scheduler request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedError {
    /// No thread has that id.
    NoSuchThread(u64),
    /// Every thread slot is in use.
    NoFreeSlot,
    /// That core does not exist or is offline.
    BadCore(usize),
    /// The thread has already ended.
    Dead(u64),
    /// Idle threads cannot be suspended, killed or moved.
    IdleThread(u64),
    /// A thread cannot do this to itself.
    SelfTarget(u64),
    /// `resume` of a thread that is not suspended.
    NotSuspended(u64),
    /// `suspend` of a thread that is already suspended.
    AlreadySuspended(u64),
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::NoSuchThread(id) => write!(f, "no thread {id}"),
            SchedError::NoFreeSlot => write!(f, "thread table full"),
            SchedError::BadCore(c) => write!(f, "core {c} is not online"),
            SchedError::Dead(id) => write!(f, "thread {id} has ended"),
            SchedError::IdleThread(id) => write!(f, "thread {id} is an idle thread"),
            SchedError::SelfTarget(id) => write!(f, "thread {id} cannot do that to itself"),
            SchedError::NotSuspended(id) => write!(f, "thread {id} is not suspended"),
            SchedError::AlreadySuspended(id) => write!(f, "thread {id} is already suspended"),
        }
    }
}

/// Cores that must be sent a reschedule IPI (bit n = core n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kicks(pub u64);

impl Kicks {
    fn add(&mut self, core: usize) {
        if core < 64 {
            self.0 |= 1 << core;
        }
    }

    /// The cores to kick, excluding `this` core (which reschedules by itself).
    pub fn others(self, this: usize) -> impl Iterator<Item = usize> {
        (0..64).filter(move |c| *c != this && self.0 & (1 << c) != 0)
    }
}

/// What the scheduler keeps per thread.
#[derive(Debug, Clone)]
pub struct ThreadInfo {
    /// Stable id (never reused).
    pub id: u64,
    /// A short name.
    pub name: String,
    /// Current state.
    pub state: ThreadState,
    /// The core it runs on (or will, after a migration).
    pub core: usize,
    /// An idle thread (one per core).
    pub idle: bool,
    /// Wake time while `Sleeping` (caller's clock).
    pub wake_at: u64,
    /// Suspend once it leaves its core.
    pub suspend_requested: bool,
    /// Die once it leaves its core.
    pub kill_requested: bool,
    /// The slot it waits on while joining.
    pub joining: Option<usize>,
}

/// The scheduler: all threads and every core's run queue.
#[derive(Debug)]
pub struct Scheduler {
    threads: Vec<Option<ThreadInfo>>,
    queues: Vec<VecDeque<usize>>,
    current: Vec<Option<usize>>,
    idle: Vec<Option<usize>>,
    online: Vec<bool>,
    slice_left: Vec<u32>,
    slice_ticks: u32,
    next_id: u64,
}

impl Scheduler {
    /// A scheduler for `cores` cores and up to `max_threads` threads; a thread runs for
    /// `slice_ticks` timer ticks before another ready thread on its core gets a turn.
    pub fn new(cores: usize, max_threads: usize, slice_ticks: u32) -> Self {
        Self {
            threads: (0..max_threads).map(|_| None).collect(),
            queues: (0..cores)
                .map(|_| VecDeque::with_capacity(max_threads))
                .collect(),
            current: alloc::vec![None; cores],
            idle: alloc::vec![None; cores],
            online: alloc::vec![false; cores],
            slice_left: alloc::vec![slice_ticks; cores],
            slice_ticks: slice_ticks.max(1),
            next_id: 1,
        }
    }

    /// Number of cores the scheduler was made for.
    pub fn cores(&self) -> usize {
        self.queues.len()
    }

    fn free_slot(&self) -> Result<usize, SchedError> {
        // Prefer never-used slots, then dead ones (the kernel frees a dead thread's stack
        // before reusing its slot).
        self.threads
            .iter()
            .position(Option::is_none)
            .ok_or(SchedError::NoFreeSlot)
    }

    fn insert(
        &mut self,
        name: &str,
        core: usize,
        state: ThreadState,
        idle: bool,
    ) -> Result<usize, SchedError> {
        let slot = self.free_slot()?;
        let id = self.next_id;
        self.next_id += 1;
        self.threads[slot] = Some(ThreadInfo {
            id,
            name: String::from(name),
            state,
            core,
            idle,
            wake_at: 0,
            suspend_requested: false,
            kill_requested: false,
            joining: None,
        });
        Ok(slot)
    }

    /// Brings `core` online with its current context adopted as a thread named `name`
    /// (`idle` for a core's idle loop). Returns the new thread's slot.
    pub fn adopt_current(
        &mut self,
        core: usize,
        name: &str,
        idle: bool,
    ) -> Result<usize, SchedError> {
        if core >= self.cores() {
            return Err(SchedError::BadCore(core));
        }
        let slot = self.insert(name, core, ThreadState::Running, idle)?;
        self.online[core] = true;
        self.current[core] = Some(slot);
        if idle {
            self.idle[core] = Some(slot);
        }
        Ok(slot)
    }

    /// Makes a new thread; `idle` ones are the core's idle thread and never queued.
    /// Returns its slot; the caller sets up its context before kicking `core`.
    pub fn spawn(&mut self, name: &str, core: usize, idle: bool) -> Result<usize, SchedError> {
        if core >= self.cores() || (!idle && !self.online[core]) {
            return Err(SchedError::BadCore(core));
        }
        if idle {
            let slot = self.insert(name, core, ThreadState::Ready, true)?;
            self.idle[core] = Some(slot);
            Ok(slot)
        } else {
            let slot = self.insert(name, core, ThreadState::Ready, false)?;
            self.queues[core].push_back(slot);
            Ok(slot)
        }
    }

    /// Frees a dead thread's slot (after the kernel released its stack).
    pub fn reap(&mut self, slot: usize) -> bool {
        let dead = matches!(self.info(slot), Some(t) if t.state == ThreadState::Dead);
        let on_core = self.current.contains(&Some(slot));
        if dead && !on_core {
            self.threads[slot] = None;
            return true;
        }
        false
    }

    /// The thread in `slot`.
    pub fn info(&self, slot: usize) -> Option<&ThreadInfo> {
        self.threads.get(slot).and_then(Option::as_ref)
    }

    /// Every thread, as (slot, info).
    pub fn threads(&self) -> impl Iterator<Item = (usize, &ThreadInfo)> {
        self.threads
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
    }

    /// The slot of the thread with `id`.
    pub fn slot_of(&self, id: u64) -> Result<usize, SchedError> {
        self.threads()
            .find(|(_, t)| t.id == id)
            .map(|(s, _)| s)
            .ok_or(SchedError::NoSuchThread(id))
    }

    /// The thread current on `core`.
    pub fn current(&self, core: usize) -> Option<usize> {
        self.current.get(core).copied().flatten()
    }

    /// Ready threads waiting on `core`.
    pub fn queue_len(&self, core: usize) -> usize {
        self.queues.get(core).map_or(0, VecDeque::len)
    }

    /// Whether `core` is online.
    pub fn is_online(&self, core: usize) -> bool {
        self.online.get(core).copied().unwrap_or(false)
    }

    /// Threads queued on `core` (runnable, waiting for it; not the one running).
    pub fn queued_on(&self, core: usize) -> usize {
        self.queues.get(core).map_or(0, |q| q.len())
    }

    /// The online core with the fewest runnable threads (lowest number on ties).
    pub fn least_loaded_core(&self) -> usize {
        (0..self.cores())
            .filter(|c| self.online[*c])
            .min_by_key(|c| {
                let busy = self.current[*c].is_some_and(|s| self.idle[*c] != Some(s));
                self.queues[*c].len() + usize::from(busy)
            })
            .unwrap_or(0)
    }

    fn t(&mut self, slot: usize) -> &mut ThreadInfo {
        self.threads[slot]
            .as_mut()
            .expect("scheduler slot used after free")
    }

    fn make_ready(&mut self, slot: usize, kicks: &mut Kicks) {
        let core = self.threads[slot].as_ref().map_or(0, |t| t.core);
        self.t(slot).state = ThreadState::Ready;
        if self.current[core] == Some(slot) {
            return; // still on its core: `schedule` requeues it
        }
        if !self.queues[core].contains(&slot) {
            self.queues[core].push_back(slot);
        }
        kicks.add(core);
    }

    fn finish(&mut self, slot: usize, kicks: &mut Kicks) {
        self.t(slot).state = ThreadState::Dead;
        for s in 0..self.threads.len() {
            let waits = matches!(&self.threads[s], Some(t) if t.joining == Some(slot) && t.state == ThreadState::Blocked);
            if waits {
                self.t(s).joining = None;
                self.make_ready(s, kicks);
            }
        }
    }

    /// A timer tick on `core` at time `now`: wakes due sleepers (anywhere) and charges the
    /// current thread's slice. Returns whether `core` should reschedule.
    pub fn tick(&mut self, core: usize, now: u64) -> (bool, Kicks) {
        let mut kicks = Kicks::default();
        for s in 0..self.threads.len() {
            let due = matches!(&self.threads[s], Some(t) if t.state == ThreadState::Sleeping && t.wake_at <= now);
            if due {
                self.make_ready(s, &mut kicks);
            }
        }
        let left = &mut self.slice_left[core];
        *left = left.saturating_sub(1);
        let expired = *left == 0 && !self.queues[core].is_empty();
        let idle_running = self.current[core] == self.idle[core] && !self.queues[core].is_empty();
        let own = kicks.0 & (1 << core.min(63)) != 0;
        (expired || idle_running || own, kicks)
    }

    /// Picks what runs next on `core`, after putting the outgoing thread where its state says.
    /// Returns the incoming slot (possibly the same) and the cores to kick.
    pub fn schedule(&mut self, core: usize) -> (usize, Kicks) {
        let mut kicks = Kicks::default();
        if let Some(prev) = self.current[core] {
            let idle = self.idle[core] == Some(prev);
            let t = self.t(prev);
            if t.kill_requested && t.state != ThreadState::Dead {
                t.kill_requested = false;
                self.current[core] = None;
                self.finish(prev, &mut kicks);
            } else if t.suspend_requested {
                t.suspend_requested = false;
                t.state = ThreadState::Suspended;
            } else if matches!(t.state, ThreadState::Running | ThreadState::Ready) {
                t.state = ThreadState::Ready;
                let home = t.core;
                if !idle {
                    self.queues[home].push_back(prev);
                    if home != core {
                        kicks.add(home);
                    }
                }
            }
        }
        let next = self.queues[core]
            .pop_front()
            .or(self.idle[core])
            .or(self.current[core])
            .expect("a core without an idle thread scheduled");
        self.t(next).state = ThreadState::Running;
        self.current[core] = Some(next);
        self.slice_left[core] = self.slice_ticks;
        (next, kicks)
    }

    fn current_thread(&mut self, core: usize) -> usize {
        self.current[core].expect("no current thread")
    }

    /// The current thread on `core` sleeps until `until`; the caller then reschedules.
    pub fn sleep_current(&mut self, core: usize, until: u64) {
        let slot = self.current_thread(core);
        let t = self.t(slot);
        t.state = ThreadState::Sleeping;
        t.wake_at = until;
    }

    /// The current thread on `core` blocks until `wake`; the caller then reschedules.
    pub fn block_current(&mut self, core: usize) {
        let slot = self.current_thread(core);
        self.t(slot).state = ThreadState::Blocked;
    }

    /// Wakes a sleeping or blocked thread (anything else is left alone).
    pub fn wake(&mut self, slot: usize) -> Kicks {
        let mut kicks = Kicks::default();
        if matches!(self.info(slot), Some(t) if matches!(t.state, ThreadState::Sleeping | ThreadState::Blocked))
        {
            self.make_ready(slot, &mut kicks);
        }
        kicks
    }

    /// The current thread on `core` ends; the caller then reschedules.
    pub fn exit_current(&mut self, core: usize) -> Kicks {
        let mut kicks = Kicks::default();
        let slot = self.current_thread(core);
        self.finish(slot, &mut kicks);
        kicks
    }

    /// The current thread on `core` waits for `target` to end. Returns false when it already
    /// has (no wait needed).
    pub fn join_current(&mut self, core: usize, target: usize) -> Result<bool, SchedError> {
        let me = self.current_thread(core);
        let t = self.info(target).ok_or(SchedError::NoSuchThread(0))?;
        if target == me {
            return Err(SchedError::SelfTarget(t.id));
        }
        if t.state == ThreadState::Dead {
            return Ok(false);
        }
        let me = self.t(me);
        me.state = ThreadState::Blocked;
        me.joining = Some(target);
        Ok(true)
    }

    /// Like [`Scheduler::join_current`], by thread id, looked up afresh on every call (a slot
    /// can be reaped and handed to a new thread while a joiner waits). An id that was issued but
    /// whose thread is gone ended and was reaped: no wait is needed.
    pub fn join_current_id(&mut self, core: usize, id: u64) -> Result<bool, SchedError> {
        match self.slot_of(id) {
            Ok(slot) => self.join_current(core, slot),
            Err(_) if id != 0 && id < self.next_id => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn target(&self, slot: usize, caller: Option<usize>) -> Result<&ThreadInfo, SchedError> {
        let t = self.info(slot).ok_or(SchedError::NoSuchThread(0))?;
        if t.state == ThreadState::Dead {
            return Err(SchedError::Dead(t.id));
        }
        if t.idle {
            return Err(SchedError::IdleThread(t.id));
        }
        if caller == Some(slot) {
            return Err(SchedError::SelfTarget(t.id));
        }
        Ok(t)
    }

    fn running_on(&self, slot: usize) -> Option<usize> {
        self.current.iter().position(|c| *c == Some(slot))
    }

    fn dequeue(&mut self, slot: usize) {
        for q in &mut self.queues {
            q.retain(|s| *s != slot);
        }
    }

    /// Stops a thread (from `caller`, which may not stop itself). A thread current on some core
    /// stops when that core reschedules (the kicked core); poll `info` for `Suspended`.
    pub fn suspend(&mut self, slot: usize, caller: Option<usize>) -> Result<Kicks, SchedError> {
        let t = self.target(slot, caller)?;
        if t.state == ThreadState::Suspended {
            return Err(SchedError::AlreadySuspended(t.id));
        }
        let mut kicks = Kicks::default();
        if let Some(core) = self.running_on(slot) {
            self.t(slot).suspend_requested = true;
            kicks.add(core);
        } else {
            self.dequeue(slot);
            self.t(slot).state = ThreadState::Suspended;
        }
        Ok(kicks)
    }

    /// Lets a suspended thread run again (on its core, which may have changed by `migrate`).
    pub fn resume(&mut self, slot: usize) -> Result<Kicks, SchedError> {
        let t = self.target(slot, None)?;
        if t.state != ThreadState::Suspended {
            if t.suspend_requested {
                self.t(slot).suspend_requested = false;
                return Ok(Kicks::default());
            }
            return Err(SchedError::NotSuspended(t.id));
        }
        let mut kicks = Kicks::default();
        self.make_ready(slot, &mut kicks);
        Ok(kicks)
    }

    /// Moves a thread to `core`: a queued thread moves queues now, a running one when its core
    /// reschedules (kicked), any other the next time it becomes ready.
    pub fn migrate(&mut self, slot: usize, core: usize) -> Result<Kicks, SchedError> {
        if !self.is_online(core) {
            return Err(SchedError::BadCore(core));
        }
        let state = self.target(slot, None)?.state;
        let mut kicks = Kicks::default();
        self.t(slot).core = core;
        match self.running_on(slot) {
            Some(on) if on != core => kicks.add(on),
            Some(_) => {}
            None if state == ThreadState::Ready => {
                self.dequeue(slot);
                self.queues[core].push_back(slot);
                kicks.add(core);
            }
            None => {}
        }
        Ok(kicks)
    }

    /// Ends a thread (not the caller): now if it is off-core, else when its core reschedules.
    pub fn kill(&mut self, slot: usize, caller: Option<usize>) -> Result<Kicks, SchedError> {
        self.target(slot, caller)?;
        let mut kicks = Kicks::default();
        if let Some(core) = self.running_on(slot) {
            self.t(slot).kill_requested = true;
            kicks.add(core);
        } else {
            self.dequeue(slot);
            self.finish(slot, &mut kicks);
        }
        Ok(kicks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_cores() -> (Scheduler, usize, usize) {
        let mut s = Scheduler::new(2, 16, 2);
        let shell = s.adopt_current(0, "shell", false).unwrap();
        let idle1 = s.adopt_current(1, "idle1", true).unwrap();
        s.spawn("idle0", 0, true).unwrap();
        (s, shell, idle1)
    }

    #[test]
    fn round_robin_with_slices() {
        let (mut s, shell, _) = two_cores();
        let a = s.spawn("a", 0, false).unwrap();
        // One tick: slice not yet used up.
        assert!(!s.tick(0, 0).0);
        assert!(s.tick(0, 0).0);
        let (next, _) = s.schedule(0);
        assert_eq!(next, a);
        assert_eq!(s.info(shell).unwrap().state, ThreadState::Ready);
        let (next, _) = s.schedule(0);
        assert_eq!(next, shell);
        assert_eq!(s.info(a).unwrap().state, ThreadState::Ready);
    }

    #[test]
    fn idle_runs_only_when_nothing_is_ready() {
        let (mut s, shell, _) = two_cores();
        s.block_current(0);
        let (next, _) = s.schedule(0);
        assert!(s.info(next).unwrap().idle);
        let kicks = s.wake(shell);
        assert_eq!(kicks.0, 1);
        assert!(s.tick(0, 0).0, "idle yields to a ready thread at once");
        assert_eq!(s.schedule(0).0, shell);
    }

    #[test]
    fn sleepers_wake_on_time() {
        let (mut s, shell, _) = two_cores();
        s.sleep_current(0, 100);
        let idle = s.schedule(0).0;
        assert_ne!(idle, shell);
        assert!(!s.tick(0, 50).0);
        assert!(s.tick(0, 100).0);
        assert_eq!(s.schedule(0).0, shell);
    }

    #[test]
    fn wake_while_still_current_is_not_lost() {
        let (mut s, shell, _) = two_cores();
        s.block_current(0);
        s.wake(shell); // the event came before the switch
        assert_eq!(s.schedule(0).0, shell);
    }

    #[test]
    fn suspend_running_thread_on_another_core() {
        let (mut s, shell, idle1) = two_cores();
        let a = s.spawn("a", 1, false).unwrap();
        assert_eq!(s.schedule(1).0, a);
        let kicks = s.suspend(a, Some(shell)).unwrap();
        assert_eq!(kicks.0, 0b10);
        assert_eq!(s.info(a).unwrap().state, ThreadState::Running);
        assert_eq!(s.schedule(1).0, idle1);
        assert_eq!(s.info(a).unwrap().state, ThreadState::Suspended);
        assert_eq!(
            s.suspend(a, Some(shell)),
            Err(SchedError::AlreadySuspended(s.info(a).unwrap().id))
        );
        // Migrate while suspended, then resume: it lands on the new core.
        s.migrate(a, 0).unwrap();
        let kicks = s.resume(a).unwrap();
        assert_eq!(kicks.0, 0b01);
        assert_eq!(s.queue_len(0), 1);
        assert_eq!(s.queue_len(1), 0);
    }

    #[test]
    fn migrate_running_thread_moves_at_reschedule() {
        let (mut s, _, idle1) = two_cores();
        let a = s.spawn("a", 0, false).unwrap();
        s.schedule(0);
        assert_eq!(s.current(0), Some(a));
        let kicks = s.migrate(a, 1).unwrap();
        assert_eq!(kicks.0, 0b01);
        let (_, kicks) = s.schedule(0);
        assert_eq!(kicks.0, 0b10);
        assert_eq!(s.queue_len(1), 1);
        assert_eq!(s.current(1), Some(idle1));
        assert_eq!(s.schedule(1).0, a);
    }

    #[test]
    fn kill_and_join() {
        let (mut s, shell, _) = two_cores();
        let a = s.spawn("a", 1, false).unwrap();
        s.schedule(1);
        assert!(s.join_current(0, a).unwrap());
        s.schedule(0);
        let kicks = s.kill(a, Some(shell)).unwrap();
        assert_eq!(kicks.0, 0b10);
        let (_, kicks) = s.schedule(1);
        assert_eq!(s.info(a).unwrap().state, ThreadState::Dead);
        assert_eq!(kicks.0, 0b01, "the joiner on core 0 is woken");
        assert_eq!(s.info(shell).unwrap().state, ThreadState::Ready);
        assert!(s.reap(a));
        assert!(s.info(a).is_none());
    }

    #[test]
    fn join_by_id_survives_reaping_and_slot_reuse() {
        let (mut s, _, _) = two_cores();
        let a = s.spawn("a", 1, false).unwrap();
        let a_id = s.info(a).unwrap().id;
        s.schedule(1);
        assert!(
            s.join_current_id(0, a_id).unwrap(),
            "a runs: the joiner waits"
        );
        s.schedule(0);
        s.exit_current(1);
        s.schedule(1);
        assert!(s.reap(a));
        // The slot goes to a new thread; joining the old id must not wait on the new one.
        let b = s.spawn("b", 1, false).unwrap();
        assert_eq!(a, b, "the freed slot is reused");
        assert!(!s.join_current_id(0, a_id).unwrap());
        assert_eq!(
            s.join_current_id(0, 999),
            Err(SchedError::NoSuchThread(999))
        );
    }

    #[test]
    fn refusals() {
        let (mut s, shell, idle1) = two_cores();
        assert!(matches!(
            s.kill(shell, Some(shell)),
            Err(SchedError::SelfTarget(_))
        ));
        assert!(matches!(
            s.suspend(idle1, Some(shell)),
            Err(SchedError::IdleThread(_))
        ));
        assert!(matches!(s.migrate(shell, 5), Err(SchedError::BadCore(5))));
        assert!(matches!(s.resume(shell), Err(SchedError::NotSuspended(_))));
        let mut full = Scheduler::new(1, 2, 1);
        full.adopt_current(0, "a", false).unwrap();
        full.spawn("idle", 0, true).unwrap();
        assert_eq!(full.spawn("b", 0, false), Err(SchedError::NoFreeSlot));
    }
}
