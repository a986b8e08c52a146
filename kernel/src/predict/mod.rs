//! Predictive assembly: the task profiler, the next-task model, and what they decide.
//!
//! Every task request (`run`, `replay`) is scored against the last prediction, observed by the
//! order-k Markov model (`atoll_predict::markov`), and followed by a new prediction. Each of its
//! first three candidates is acted on by its own confidence (permille): at or above the *high*
//! threshold its chunk and the chunk's providers are queued for the pre-assembly worker (which
//! assembles them into the chunk cache on an idle core); at or above the *low* threshold they
//! are only fetched and validated (content hash and WebAssembly validation, so a corrupt or
//! refused chunk is known before it is asked for); below, nothing happens. Finished tasks feed
//! the profiler (runs, cycles per call against the manifest's estimate, transitions).
//!
//! The model and profiler start from the image's recorded usage profile (`profile export`
//! prints what this boot adds; `chunkc profile merge` folds it into the image).

pub mod replay;
mod worker;

use alloc::string::String;
use alloc::vec::Vec;

use atoll_predict::markov::{Markov, Prediction};
use atoll_predict::profile::Profiler;
use spin::Mutex;

use crate::chunks::{self, Loaded};

pub use worker::{WorkerFigures, figures as worker_figures, idle as worker_idle};

/// Model order unless the image or `predict order` says otherwise.
pub const DEFAULT_ORDER: usize = 2;
/// Pre-assemble at or above this confidence (permille) unless configured.
pub const DEFAULT_HIGH: u32 = 500;
/// Fetch and validate at or above this confidence (permille) unless configured.
pub const DEFAULT_LOW: u32 = 200;
/// Candidates acted on per prediction.
pub const ACT_ON: usize = 3;

/// How predictions are acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Pre-assemble at or above this confidence (permille).
    pub high: u32,
    /// Fetch and validate at or above this confidence (permille).
    pub low: u32,
    /// Whether predictions are acted on at all (`predict off` still predicts and scores).
    pub acting: bool,
}

/// Prediction quality since boot (or since `replay` reset it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accuracy {
    /// Requests that had a prediction before them.
    pub scored: u64,
    /// ... whose first candidate was the task requested.
    pub top1: u64,
    /// ... whose first three candidates held it.
    pub top3: u64,
}

struct Engine {
    profiler: Profiler,
    model: Markov,
    /// The model as seeded from the image, for `replay`'s cold starts.
    seeded: Markov,
    settings: Settings,
    last: Prediction,
    accuracy: Accuracy,
}

static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    let mut guard = ENGINE.lock();
    let e = guard.get_or_insert_with(|| {
        let model = Markov::new(DEFAULT_ORDER);
        Engine {
            profiler: Profiler::new(),
            seeded: model.clone(),
            model,
            settings: Settings {
                high: DEFAULT_HIGH,
                low: DEFAULT_LOW,
                acting: true,
            },
            last: Prediction::default(),
            accuracy: Accuracy::default(),
        }
    });
    f(e)
}

/// Seeds the profiler and model from the loaded image's usage profiles, applies the image's
/// engine settings (cache bound and policy, model order, thresholds) and starts the
/// pre-assembly worker. Call once the image is loaded and the scheduler runs.
pub fn init() {
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return;
    };
    let s = image.workload().settings;
    let order = if s.order == 0 {
        DEFAULT_ORDER
    } else {
        usize::from(s.order)
    };
    with(|e| {
        let mut model = Markov::new(order);
        for chunk in image.chunks() {
            let m = &chunk.manifest;
            for t in &m.profile.tasks {
                e.profiler
                    .seed_task(&t.task, t.count, m.resources.cycles_per_call);
                model.seed_frequency(&t.task, t.count);
            }
            for t in &m.profile.transitions {
                e.profiler.seed_transition(&t.from, &t.to, t.count);
                model.seed_transition(&t.from, &t.to, t.count);
            }
            for x in &m.exports {
                let task = alloc::format!("{}.{}", chunk.name, x.name);
                e.profiler.seed_task(&task, 0, m.resources.cycles_per_call);
            }
        }
        e.seeded = model.clone();
        e.model = model;
        if s.high_permille != 0 {
            e.settings.high = u32::from(s.high_permille);
        }
        if s.low_permille != 0 {
            e.settings.low = u32::from(s.low_permille);
        }
    });
    if s.cache_limit != 0 {
        let _ = crate::pae::cache::set_limit(s.cache_limit);
    }
    match s.policy {
        1 => crate::pae::cache::set_policy(atoll_predict::cache::Policy::Lru),
        2 => crate::pae::cache::set_policy(atoll_predict::cache::Policy::Lfu),
        _ => {}
    }
    match worker::start() {
        Ok(core) => log::info!("pre-assembly worker on core {core}"),
        Err(e) => log::error!("no pre-assembly worker: {e}"),
    }
}

/// What [`on_request`] found about the prediction that preceded the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scored {
    /// There was a prediction to score.
    pub scored: bool,
    /// The task was its first candidate.
    pub top1: bool,
    /// The task was among its first three.
    pub top3: bool,
}

/// A request for `task` arrives: the last prediction is scored, the model observes it, and the
/// next prediction is made and (if acting) acted on.
pub fn on_request(task: &str) -> Scored {
    let (next, settings, scored) = with(|e| {
        let mut scored = Scored::default();
        if e.last.order.is_some() {
            scored = Scored {
                scored: true,
                top1: e.last.top() == Some(task),
                top3: e.last.in_top(task, 3),
            };
            e.accuracy.scored += 1;
            e.accuracy.top1 += u64::from(scored.top1);
            e.accuracy.top3 += u64::from(scored.top3);
        }
        e.model.observe(task);
        e.last = e.model.predict();
        (e.last.clone(), e.settings, scored)
    });
    if settings.acting {
        act(&next, settings);
    }
    scored
}

fn act(p: &Prediction, s: Settings) {
    for (i, c) in p.candidates.iter().take(ACT_ON).enumerate() {
        let confidence = p.confidence_of(i);
        let Some((chunk, _)) = c.task.split_once('.') else {
            continue;
        };
        let job = if confidence >= s.high {
            worker::Job::Assemble
        } else if confidence >= s.low {
            worker::Job::Validate
        } else {
            continue;
        };
        let Ok(order) = crate::pae::dependency_order(chunk) else {
            continue;
        };
        for name in order {
            worker::enqueue(job, &name);
        }
    }
}

/// A task ended after `cycles` in generated code (`ok`: it returned normally).
pub fn on_finished(task: &str, cycles: u64, ok: bool) {
    with(|e| e.profiler.record(task, cycles, ok));
}

/// The current prediction and the history it follows.
pub fn current() -> (Prediction, Vec<String>, Settings, usize) {
    with(|e| {
        (
            e.last.clone(),
            e.model.history().iter().map(|s| String::from(*s)).collect(),
            e.settings,
            e.model.order(),
        )
    })
}

/// Prediction accuracy so far.
pub fn accuracy() -> Accuracy {
    with(|e| e.accuracy)
}

/// Changes the model's order (1..=8).
pub fn set_order(k: usize) {
    with(|e| {
        e.model.set_order(k);
        e.seeded.set_order(k);
        e.last = e.model.predict();
    });
}

/// Changes the thresholds.
pub fn set_thresholds(high: u32, low: u32) {
    with(|e| {
        e.settings.high = high;
        e.settings.low = low;
    });
}

/// Turns acting on predictions on or off (predictions are still made and scored).
pub fn set_acting(on: bool) {
    with(|e| e.settings.acting = on);
}

/// Puts the model back to what the image seeded (history and accuracy cleared).
pub fn reset_model() {
    with(|e| {
        e.model = e.seeded.clone();
        e.model.reset_history();
        e.last = e.model.predict();
        e.accuracy = Accuracy::default();
    });
}

/// Runs `f` on the profiler.
pub fn with_profiler<R>(f: impl FnOnce(&Profiler) -> R) -> R {
    with(|e| f(&e.profiler))
}
