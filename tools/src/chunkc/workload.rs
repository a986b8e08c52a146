//! The image's workload section from the manifest (`[engine]` and `[[trace]]`), and
//! `chunkc profile merge IMAGE RECORD -o IMAGE`, which folds a kernel's `profile export` record
//! back into an image's usage profiles.

use std::path::Path;

use atoll_predict::profile::Record;
use chunk_image::{
    Chunk, EngineSettings, Image, Program, TaskFrequency, Trace, Transition, Workload,
    write_image_full,
};

use super::error::ChunkcError;
use super::manifest::ManifestFile;

/// Whether `task` is `chunk.export` of a chunk in `chunks`.
fn task_exists(chunks: &[Chunk], task: &str) -> bool {
    task.split_once('.').is_some_and(|(c, e)| {
        chunks
            .iter()
            .any(|ch| ch.name == c && ch.manifest.exports.iter().any(|x| x.name == e))
    })
}

/// The workload section the manifest asks for (`None` without `[engine]` and traces). Each
/// trace is parsed and every task it names must exist.
pub fn of_manifest(
    file: &ManifestFile,
    base: &Path,
    chunks: &[Chunk],
) -> Result<Option<Workload>, String> {
    if file.engine.is_none() && file.traces.is_empty() {
        return Ok(None);
    }
    let mut settings = EngineSettings::default();
    if let Some(e) = &file.engine {
        settings.cache_limit = e.cache_limit.unwrap_or(0);
        settings.policy = match e.policy.as_deref() {
            None => 0,
            Some("lru") => 1,
            Some("lfu") => 2,
            Some(p) => return Err(format!("[engine] policy `{p}`: expected lru or lfu")),
        };
        settings.order = e.order.unwrap_or(0);
        if settings.order > 8 {
            return Err("[engine] order must be 1-8".into());
        }
        settings.high_permille = e.high_confidence.unwrap_or(0);
        settings.low_permille = e.low_confidence.unwrap_or(0);
        if settings.high_permille > 1000 || settings.low_permille > 1000 {
            return Err("[engine] confidences are permille (0-1000)".into());
        }
    }
    let mut traces = Vec::new();
    for t in &file.traces {
        let path = base.join(&t.file);
        let body = std::fs::read_to_string(&path)
            .map_err(|e| format!("trace `{}`: {}: {e}", t.name, path.display()))?;
        let steps = atoll_predict::trace::parse(&body)
            .map_err(|e| format!("trace `{}` ({}): {e}", t.name, path.display()))?;
        if let Some(s) = steps.iter().find(|s| !task_exists(chunks, &s.task)) {
            return Err(format!(
                "trace `{}`: `{}` is not an export of a chunk in this set",
                t.name, s.task
            ));
        }
        traces.push(Trace {
            name: t.name.clone(),
            body,
        });
    }
    Ok(Some(Workload { settings, traces }))
}

/// Adds `record`'s runs and transitions to the usage profiles of `chunks` (a task's runs go to
/// its chunk, a transition to the chunk of its first task). Returns how many lines were folded.
pub fn merge_record(chunks: &mut [Chunk], record: &Record) -> Result<usize, String> {
    let chunk_of = |task: &str| task.split_once('.').map(|(c, _)| c.to_string());
    for t in &record.tasks {
        if !task_exists(chunks, &t.task) {
            return Err(format!("record names `{}`, not in this image", t.task));
        }
    }
    for t in &record.transitions {
        for task in [&t.from, &t.to] {
            if !task_exists(chunks, task) {
                return Err(format!("record names `{task}`, not in this image"));
            }
        }
    }
    let mut folded = 0;
    for t in &record.tasks {
        let name = chunk_of(&t.task).unwrap_or_default();
        let Some(chunk) = chunks.iter_mut().find(|c| c.name == name) else {
            continue;
        };
        let tasks = &mut chunk.manifest.profile.tasks;
        match tasks.iter_mut().find(|f| f.task == t.task) {
            Some(f) => f.count = f.count.saturating_add(t.runs),
            None => tasks.push(TaskFrequency {
                task: t.task.clone(),
                count: t.runs,
            }),
        }
        folded += 1;
    }
    for t in &record.transitions {
        let name = chunk_of(&t.from).unwrap_or_default();
        let Some(chunk) = chunks.iter_mut().find(|c| c.name == name) else {
            continue;
        };
        let list = &mut chunk.manifest.profile.transitions;
        match list.iter_mut().find(|x| x.from == t.from && x.to == t.to) {
            Some(x) => x.count = x.count.saturating_add(t.count),
            None => list.push(Transition {
                from: t.from.clone(),
                to: t.to.clone(),
                count: t.count,
            }),
        }
        folded += 1;
    }
    Ok(folded)
}

/// `chunkc profile merge IMAGE RECORD -o OUT`: the image with the record folded into its
/// profiles; programs and the workload section are kept.
pub fn profile_merge(image: &Path, record: &Path, out: &Path) -> Result<String, ChunkcError> {
    let bytes = std::fs::read(image).map_err(|e| ChunkcError::io(image, e))?;
    let parsed = Image::parse(&bytes)?;
    let text = std::fs::read_to_string(record).map_err(|e| ChunkcError::io(record, e))?;
    let bad = |message: String| ChunkcError::Manifest {
        path: record.to_path_buf(),
        message,
    };
    let record = Record::parse(&text).map_err(|e| bad(e.to_string()))?;
    let mut chunks = parsed.to_chunks();
    let programs: Vec<Program> = parsed.to_programs();
    let workload = (parsed.major_version() >= 3).then(|| parsed.workload().to_workload());
    let folded = merge_record(&mut chunks, &record).map_err(bad)?;
    let new = write_image_full(&chunks, &programs, workload.as_ref())?;
    std::fs::write(out, &new).map_err(|e| ChunkcError::io(out, e))?;
    Ok(format!(
        "wrote {}: {folded} profile lines folded into {} chunks",
        out.display(),
        chunks.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chunk_image::{Export, FuncSig, Manifest, Profile};

    fn chunk(name: &str, exports: &[&str]) -> Chunk {
        Chunk {
            name: name.into(),
            module: Vec::new(),
            manifest: Manifest {
                exports: exports
                    .iter()
                    .map(|e| Export {
                        name: (*e).into(),
                        func_index: 0,
                        sig: FuncSig::default(),
                    })
                    .collect(),
                profile: Profile {
                    tasks: vec![TaskFrequency {
                        task: format!("{name}.{}", exports[0]),
                        count: 10,
                    }],
                    transitions: Vec::new(),
                },
                ..Manifest::default()
            },
        }
    }

    #[test]
    fn merge_adds_runs_and_transitions_to_the_right_chunks() {
        let mut chunks = vec![chunk("a", &["x", "y"]), chunk("b", &["z"])];
        let record = Record::parse(
            "atoll-profile 1\ntask a.x 5 100\ntask a.y 2 10\ntask b.z 1 1\n\
             transition a.x b.z 4\ntransition b.z a.x 1\n",
        )
        .unwrap();
        assert_eq!(merge_record(&mut chunks, &record).unwrap(), 5);
        let a = &chunks[0].manifest.profile;
        assert_eq!(a.tasks[0].count, 15);
        assert_eq!((a.tasks[1].task.as_str(), a.tasks[1].count), ("a.y", 2));
        assert_eq!(a.transitions.len(), 1);
        assert_eq!(a.transitions[0].count, 4);
        // Merging again adds again.
        merge_record(&mut chunks, &record).unwrap();
        assert_eq!(chunks[0].manifest.profile.transitions[0].count, 8);
        assert_eq!(chunks[1].manifest.profile.tasks[0].count, 12);
    }

    #[test]
    fn merge_refuses_tasks_the_image_does_not_have() {
        let mut chunks = vec![chunk("a", &["x"])];
        let before = chunks.clone();
        for text in [
            "atoll-profile 1\ntask a.nope 1 1\n",
            "atoll-profile 1\ntask c.x 1 1\n",
            "atoll-profile 1\ntransition a.x c.x 1\n",
        ] {
            let r = Record::parse(text).unwrap();
            assert!(merge_record(&mut chunks, &r).is_err(), "{text}");
            assert_eq!(chunks, before, "nothing changes on a refused record");
        }
    }
}
