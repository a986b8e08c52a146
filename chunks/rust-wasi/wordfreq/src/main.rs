//! wordfreq: counts the words of the files named on the command line (`-`, or no file at all,
//! is standard input) and prints the most frequent ones, a word-length histogram and totals.
//!
//! `wordfreq [-n TOP] FILE...`

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::ExitCode;

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut top = 10usize;
    if args.first().map(String::as_str) == Some("-n") {
        match args.get(1).and_then(|n| n.parse().ok()) {
            Some(n) => top = n,
            None => {
                eprintln!("wordfreq: -n needs a number");
                return ExitCode::from(64);
            }
        }
        args.drain(..2);
    }
    let mut texts = Vec::new();
    if args.is_empty() {
        args.push("-".into());
    }
    for name in &args {
        if name == "-" {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("wordfreq: standard input: {e}");
                return ExitCode::from(2);
            }
            texts.push(("-".to_string(), s));
            continue;
        }
        match std::fs::read_to_string(name) {
            Ok(s) => texts.push((name.clone(), s)),
            Err(e) => {
                eprintln!("wordfreq: {name}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut lengths: BTreeMap<usize, u32> = BTreeMap::new();
    let mut total = 0u32;
    for (name, text) in &texts {
        let mut here = 0;
        for w in words(text) {
            *lengths.entry(w.chars().count()).or_default() += 1;
            *counts.entry(w).or_default() += 1;
            here += 1;
        }
        println!("{name}: {here} words, {} lines, {} bytes", text.lines().count(), text.len());
        total += here;
    }
    let mut ranked: Vec<(&String, &u32)> = counts.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let widest = ranked.iter().take(top).map(|(w, _)| w.len()).max().unwrap_or(4);
    println!("{:>4}  {:<widest$}  {:>5}  share", "rank", "word", "count");
    for (i, (word, n)) in ranked.iter().take(top).enumerate() {
        let share = f64::from(**n) * 100.0 / f64::from(total.max(1));
        let bar = "#".repeat((share * 2.0).round() as usize);
        println!("{:>4}  {word:<widest$}  {n:>5}  {share:5.2}% {bar}", i + 1);
    }
    println!("word lengths:");
    for (len, n) in &lengths {
        println!("  {len:>2} {n:>6}");
    }
    let longest = counts
        .keys()
        .max_by(|a, b| a.len().cmp(&b.len()).then_with(|| b.cmp(a)))
        .cloned()
        .unwrap_or_default();
    println!("total {total} words, {} distinct, longest `{longest}`", counts.len());
    ExitCode::SUCCESS
}
