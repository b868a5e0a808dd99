//! The driver every fuzz target shares (tests/catalog_fuzz.rs, tests/fuzz_*.rs): proptest
//! mutations of real inputs, a case budget or a time budget, and a watchdog for endless loops.
//!
//! Why proptest rather than cargo-fuzz: it needs no nightly toolchain and no extra binary, runs in
//! `cargo test` in CI, and shrinks a failing input to a small list of edits that reads like a bug
//! report. The mutations are structure-aware (XML attribute values, TOML strings, PE header
//! fields), which reaches the parsers' own checks far more often than blind bit flips.
//!
//! Budgets, read from the environment:
//! - nothing set: the target's CI case count (small, so the whole fuzz suite stays within ~30 s);
//! - `HIVE_FUZZ_CASES=N`: exactly N cases per target;
//! - `HIVE_FUZZ_SECONDS=S`: cases until S seconds have passed, then the count is printed
//!   (run with `--nocapture` to see it).
//!
//! A case that runs longer than `HIVE_FUZZ_HANG_SECONDS` (default 60) is an endless loop as far as
//! we are concerned: the watchdog prints the target and the input and ends the test process.

#![allow(dead_code)] // each test binary uses a different part

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// How many cases a target runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Cases(u64),
    Time(Duration),
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
    )
}

/// The budget the environment asks for, or `ci_cases`.
pub fn budget(ci_cases: u64) -> Budget {
    if let Some(s) = env_number("HIVE_FUZZ_SECONDS") {
        return Budget::Time(Duration::from_secs(s));
    }
    Budget::Cases(env_number("HIVE_FUZZ_CASES").unwrap_or(ci_cases))
}

/// What one case ended with: the input was accepted (parsed) or refused with a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused,
}

/// The tallies of a finished run, for the caller's own assertions.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub cases: u64,
    pub accepted: u64,
    pub elapsed: Duration,
}

struct Watch {
    /// Cases started so far; the watchdog checks that it moves.
    started: AtomicU64,
    /// The input of the case in flight, printed if it never ends.
    current: Mutex<String>,
    done: std::sync::atomic::AtomicBool,
}

fn hang_limit() -> Duration {
    Duration::from_secs(env_number("HIVE_FUZZ_HANG_SECONDS").unwrap_or(60))
}

fn watchdog(name: String, watch: Arc<Watch>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let limit = hang_limit();
        let mut last = (watch.started.load(Ordering::SeqCst), Instant::now());
        while !watch.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            let now = watch.started.load(Ordering::SeqCst);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > limit {
                let input = watch.current.lock().map(|s| s.clone()).unwrap_or_default();
                eprintln!(
                    "{name}: case #{now} has run for more than {limit:?}: an endless loop?\ninput: {input}"
                );
                std::process::exit(101);
            }
        }
    })
}

/// Run `check` on values of `strategy` within the budget. `check` panics (or fails an assertion)
/// on a bug; proptest then shrinks the input and this function panics with it.
pub fn run<S>(name: &str, ci_cases: u64, strategy: S, check: impl Fn(S::Value) -> Outcome) -> Tally
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = budget(ci_cases);
    let started = Instant::now();
    let watch = Arc::new(Watch {
        started: AtomicU64::new(0),
        current: Mutex::new(String::new()),
        done: false.into(),
    });
    let dog = watchdog(name.to_string(), watch.clone());
    let accepted = AtomicUsize::new(0);
    let cases = AtomicU64::new(0);
    let one = |v: S::Value| {
        watch.started.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = watch.current.lock() {
            *c = format!("{v:?}");
        }
        cases.fetch_add(1, Ordering::Relaxed);
        if check(v) == Outcome::Accepted {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };
    // Time budgets run in batches, each with a fresh random seed, until the time is up; a batch
    // is sized from the cases' pace so that slow targets do not overshoot the budget by much.
    let (mut batch, deadline) = match budget {
        Budget::Cases(n) => (n, None),
        Budget::Time(d) => (8, Some(started + d)),
    };
    loop {
        let mut runner = TestRunner::new(Config {
            cases: u32::try_from(batch).unwrap_or(u32::MAX),
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, one) {
            watch.done.store(true, Ordering::SeqCst);
            panic!("{name}: {e}");
        }
        match deadline {
            Some(d) if Instant::now() < d => {
                let done = cases.load(Ordering::Relaxed).max(1);
                let per_case = started.elapsed().as_secs_f64() / done as f64;
                let left = (d - Instant::now()).as_secs_f64();
                batch = ((left / per_case.max(1e-6)) as u64).clamp(1, 256);
            }
            _ => break,
        }
    }
    watch.done.store(true, Ordering::SeqCst);
    let _ = dog.join();
    let tally = Tally {
        cases: cases.into_inner(),
        accepted: accepted.into_inner() as u64,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "{name}: {} cases in {:.1?}, no panic, no hang ({} accepted, the rest refused with a typed error)",
        tally.cases, tally.elapsed, tally.accepted
    );
    tally
}

// ---- byte mutations ---------------------------------------------------------------------------

/// What a target's input looks like, so that mutations hit the parser's own checks.
pub struct Grammar {
    /// Bytes that mean something to the format (`<`, `"`, `=`, ...), written over a random byte.
    pub bytes: &'static [u8],
    /// Fragments inserted at a random position (and repeated, for nesting bombs).
    pub tokens: &'static [&'static str],
    /// Hostile values written into a slot (see `slots`).
    pub values: &'static [&'static str],
    /// (opening, closing byte) pairs: the text between them is a value slot (`="` .. `"`).
    pub slots: &'static [(&'static [u8], u8)],
    /// (open, close) pairs wrapped around a position many times over, keeping the input
    /// well-formed while nesting it deeply (`<prod:Branch>` .. `</prod:Branch>`): parsers that
    /// recurse per level overflow the stack on these, which a blind token insert never reaches.
    pub nests: &'static [(&'static str, &'static str)],
}

/// One edit of the input.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Write a significant byte at a position.
    Set(usize, usize),
    /// Delete a range.
    Delete(usize, usize),
    /// Copy a range to another position.
    Duplicate(usize, usize, usize),
    /// Cut the input.
    Truncate(usize),
    /// Insert a token `n` times at a position.
    Insert(usize, usize, u16),
    /// Replace the next value slot after a position with a hostile value.
    Value(usize, usize, usize),
    /// Write a little-endian number into a known field (binary formats).
    Field(usize, usize),
    /// Wrap a position in `n` levels of a nesting pair: n opens, then n closes.
    Nest(usize, usize, u32),
}

/// Numbers that break length and offset arithmetic.
pub const NUMBERS: [u64; 16] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x1000,
    0x7fff,
    0xffff,
    0x10000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fff0,
    0xffff_ffff,
    0x0fff_ffff,
];

/// A strategy for 1..8 edits of an input described by `g`. `fields` is how many binary fields
/// the target offers to [`Mutation::Field`] (0 for text formats).
pub fn mutations(g: &'static Grammar, fields: usize) -> impl Strategy<Value = Vec<Mutation>> {
    let nb = g.bytes.len().max(1);
    let nt = g.tokens.len().max(1);
    let nv = g.values.len().max(1);
    let ns = g.slots.len().max(1);
    let nf = fields.max(1);
    let w_tok = if g.tokens.is_empty() { 0 } else { 2 };
    let w_val = if g.values.is_empty() || g.slots.is_empty() {
        0
    } else {
        8
    };
    let w_field = if fields == 0 { 0 } else { 8 };
    let nn = g.nests.len().max(1);
    let w_nest = if g.nests.is_empty() { 0 } else { 2 };
    let one = prop_oneof![
        4 => (any::<usize>(), 0..nb).prop_map(|(p, b)| Mutation::Set(p, b)),
        2 => (any::<usize>(), 1usize..200).prop_map(|(p, n)| Mutation::Delete(p, n)),
        2 => (any::<usize>(), 1usize..400, any::<usize>())
            .prop_map(|(p, n, to)| Mutation::Duplicate(p, n, to)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        w_tok => (any::<usize>(), 0..nt, prop_oneof![3 => 1u16..4, 1 => 1u16..3000])
            .prop_map(|(p, t, n)| Mutation::Insert(p, t, n)),
        w_val => (any::<usize>(), 0..ns, 0..nv).prop_map(|(p, s, v)| Mutation::Value(p, s, v)),
        w_field => (0..nf, 0..NUMBERS.len() + 2).prop_map(|(f, v)| Mutation::Field(f, v)),
        // Depths around the importers' cap, and far beyond it (a stack overflow needs thousands).
        w_nest => (any::<usize>(), 0..nn, prop_oneof![
            4 => 1u32..300,
            1 => 300u32..20_000,
            1 => 20_000u32..200_001,
        ])
        .prop_map(|(p, t, n)| Mutation::Nest(p, t, n)),
    ];
    prop::collection::vec(one, 1..8)
}

fn replace_after(d: &mut Vec<u8>, from: usize, open: &[u8], close: u8, value: &str) {
    let Some(i) = d[from..].windows(open.len()).position(|w| w == open) else {
        return;
    };
    let start = from + i + open.len();
    let Some(j) = d[start..].iter().position(|&b| b == close) else {
        return;
    };
    d.splice(start..start + j, value.bytes());
}

/// A binary field: where it is and how wide (1, 2, 4 or 8 bytes).
#[derive(Debug, Clone, Copy)]
pub struct FieldAt {
    pub offset: usize,
    pub width: usize,
}

/// Apply `muts` to `input`. `fields` are the binary fields [`Mutation::Field`] may set; the values
/// beyond [`NUMBERS`] are the input's length and length - 1 (classic off-by-one bait).
pub fn apply(g: &Grammar, input: &[u8], fields: &[FieldAt], muts: &[Mutation]) -> Vec<u8> {
    let mut d = input.to_vec();
    for m in muts {
        if d.is_empty() {
            break;
        }
        let len = d.len();
        match *m {
            Mutation::Set(p, b) => d[p % len] = g.bytes.get(b).copied().unwrap_or(0),
            Mutation::Delete(p, n) => {
                let s = p % len;
                d.drain(s..(s + n).min(len));
            }
            Mutation::Duplicate(p, n, to) => {
                let s = p % len;
                let chunk = d[s..(s + n).min(len)].to_vec();
                let at = to % len;
                d.splice(at..at, chunk);
            }
            Mutation::Truncate(p) => d.truncate(p % len),
            Mutation::Insert(p, t, n) => {
                if let Some(tok) = g.tokens.get(t) {
                    let at = p % (len + 1);
                    let bytes = tok.repeat(n as usize);
                    d.splice(at..at, bytes.into_bytes());
                }
            }
            Mutation::Value(p, s, v) => {
                if let (Some((open, close)), Some(val)) = (g.slots.get(s), g.values.get(v)) {
                    replace_after(&mut d, p % len, open, *close, val);
                }
            }
            Mutation::Nest(p, t, n) => {
                if let Some((open, close)) = g.nests.get(t) {
                    let at = p % (len + 1);
                    let mut wrapped = open.repeat(n as usize).into_bytes();
                    wrapped.extend_from_slice(close.repeat(n as usize).as_bytes());
                    d.splice(at..at, wrapped);
                }
            }
            Mutation::Field(f, v) => {
                let Some(field) = fields.get(f % fields.len().max(1)) else {
                    continue;
                };
                let value = match v.checked_sub(NUMBERS.len()) {
                    None => NUMBERS[v],
                    Some(0) => len as u64,
                    Some(_) => len as u64 - 1,
                };
                let bytes = value.to_le_bytes();
                if let Some(dst) = d.get_mut(field.offset..field.offset + field.width) {
                    dst.copy_from_slice(&bytes[..field.width]);
                }
            }
        }
    }
    d
}

/// The workspace root (this package's manifest directory).
pub fn workspace() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture from `../shared/fixtures`, as bytes.
pub fn fixture(rel: &str) -> Vec<u8> {
    let p = workspace().join("../shared/fixtures").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}
