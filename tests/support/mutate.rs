//! Seeded mutation testing of file readers, shared by the `mutate*` tests of several crates
//! (each includes this file with `#[path]`; it is not a test target of its own).
//!
//! Every case is one seed: the mutated input is a pure function of the seed, so a failure
//! prints the seeds that reproduce it (`LEMUR_MUTATION_SEED=S cargo test ...` runs only that
//! one). `LEMUR_MUTATIONS=N` sets how many seeds each format runs (10,000 by default, so CI
//! stays fast; a longer run is the same command with a bigger N).
//!
//! A panic in a reader is caught and counted with its seed and message; memory is bounded by
//! [`Capped`], the test binary's global allocator, which aborts the whole binary (after
//! printing the format and seed) on any single allocation above [`MAX_ALLOC`]: a reader that
//! sizes a buffer from an unchecked number in the file fails the test even if the machine
//! could have satisfied it.

#![allow(unsafe_code)] // the allocator wrapper below is the only unsafe code, in tests only
#![allow(dead_code)] // each test uses its own subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

/// The largest single allocation a reader may make while a mutation runs. The fixtures are a
/// few kilobytes to a few megabytes, so anything near this is sized from a corrupt field.
pub const MAX_ALLOC: usize = 256 << 20;

thread_local! {
    /// The format and seed running on this thread, for the allocator's message.
    static CURRENT: Cell<Option<(&'static str, u64)>> = const { Cell::new(None) };
    /// The message of the last panic on this thread (the hook stores it, the runner takes it).
    static LAST_PANIC: Cell<Option<String>> = const { Cell::new(None) };
}

/// The system allocator with a cap on single allocations while a mutation runs.
pub struct Capped;

fn check_size(size: usize) {
    if size <= MAX_ALLOC {
        return;
    }
    if let Some((format, seed)) = CURRENT.with(Cell::get) {
        // Printing must not allocate a large block itself; a formatted line to unbuffered
        // stderr does not.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "mutation {format} seed {seed}: the reader asked for one allocation of {size} bytes \
             (cap {MAX_ALLOC}); rerun with LEMUR_MUTATION_SEED={seed}"
        );
    }
}

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC && CURRENT.with(Cell::get).is_some() {
            check_size(layout.size());
            // A null return makes the caller abort the process: the test fails loudly.
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC && CURRENT.with(Cell::get).is_some() {
            check_size(layout.size());
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC && CURRENT.with(Cell::get).is_some() {
            check_size(new_size);
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// splitmix64: tiny, fast and good enough to pick mutations; no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Seeds per format: `LEMUR_MUTATIONS`, else `default`.
pub fn count(default: u64) -> u64 {
    std::env::var("LEMUR_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seeds to run: one given by `LEMUR_MUTATION_SEED`, else `0..count(default)`.
pub fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("LEMUR_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(s) => vec![s],
        None => (0..count(default)).collect(),
    }
}

/// Values that break size arithmetic: zero, one, the edges of every integer width, and
/// numbers just past what a file could hold.
pub const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 53,
    (1 << 53) + 1,
    i64::MAX as u64,
    u64::MAX - 7,
    u64::MAX,
];

/// One byte-level edit of `b`: a truncation, a bit flip, an interesting byte or word (with
/// the old value's neighbours), an insertion, a deletion or a duplicated range.
pub fn mutate_bytes_once(rng: &mut Rng, b: &mut Vec<u8>) {
    if b.is_empty() {
        b.push(rng.next_u64() as u8);
        return;
    }
    let at = rng.below(b.len());
    match rng.below(9) {
        0 => b.truncate(at),
        1 => b[at] ^= 1 << rng.below(8),
        2 => b[at] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff]),
        3 | 4 => {
            let width = *rng.pick(&[2usize, 4, 8]);
            let at = at.min(b.len().saturating_sub(width));
            let end = (at + width).min(b.len());
            let mut old = [0u8; 8];
            old[..end - at].copy_from_slice(&b[at..end]);
            let old = u64::from_le_bytes(old);
            let v = match rng.below(4) {
                0 => old.wrapping_add(1),
                1 => old.wrapping_sub(1),
                2 => old.wrapping_shl(rng.below(40) as u32 + 1),
                _ => *rng.pick(&INTERESTING),
            };
            let bytes = v.to_le_bytes();
            b[at..end].copy_from_slice(&bytes[..end - at]);
        }
        5 => {
            let n = 1 + rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            b.splice(at..at, ins);
        }
        6 => {
            let n = 1 + rng.below(64.min(b.len() - at));
            b.drain(at..at + n);
        }
        7 => {
            let n = 1 + rng.below(64.min(b.len() - at));
            let dup = b[at..at + n].to_vec();
            let to = rng.below(b.len());
            b.splice(to..to, dup);
        }
        _ => {
            let n = 1 + rng.below(8.min(b.len() - at));
            for x in &mut b[at..at + n] {
                *x = rng.next_u64() as u8;
            }
        }
    }
}

/// One to four byte-level edits.
pub fn mutate_bytes(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_bytes_once(rng, &mut b);
    }
    b
}

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

/// Numbers that break readers: huge, negative, fractional, just past 2^53 and 2^64,
/// subnormal.
fn wild_number(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::from(0),
        1 => Value::from(-1),
        2 => Value::from(u64::MAX),
        3 => Value::from(i64::MIN),
        4 => Value::from(1u64 << 32),
        5 => Value::from((1u64 << 53) + 1),
        6 => serde_json::json!(1e308),
        7 => serde_json::json!(-1e308),
        8 => serde_json::json!(0.5),
        9 => serde_json::json!(5e-324),
        10 => Value::from(*rng.pick(&INTERESTING)),
        _ => Value::from(rng.next_u64() >> rng.below(64)),
    }
}

/// Any other kind of value in place of a node.
fn wrong_type(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::Null,
        1 => Value::Bool(true),
        2 => Value::String("NaN".into()),
        3 => serde_json::json!([]),
        4 => serde_json::json!({}),
        _ => wild_number(rng),
    }
}

/// One structural edit of a JSON document: a number replaced by a wild one, an array cut,
/// emptied, extended or resized, a string emptied or made long, a key removed or added, any
/// node replaced by another type.
pub fn mutate_json_once(rng: &mut Rng, doc: &mut Value) {
    let mut ps = Vec::new();
    pointers(doc, String::new(), &mut ps);
    let p = rng.pick(&ps).clone();
    let Some(node) = doc.pointer_mut(&p) else {
        return;
    };
    if rng.chance(0.15) {
        *node = wrong_type(rng);
        return;
    }
    match node {
        Value::Number(_) => *node = wild_number(rng),
        Value::Array(a) => match rng.below(5) {
            0 => a.clear(),
            1 if !a.is_empty() => {
                let n = rng.below(a.len());
                a.truncate(n);
            }
            2 if !a.is_empty() => {
                let last = a[a.len() - 1].clone();
                for _ in 0..1 + rng.below(3) {
                    a.push(last.clone());
                }
            }
            3 => a.push(wild_number(rng)),
            _ => {
                if !a.is_empty() {
                    let i = rng.below(a.len());
                    a[i] = wrong_type(rng);
                }
            }
        },
        Value::String(s) => match rng.below(5) {
            0 => s.clear(),
            1 => *s = "x".repeat(1 + rng.below(5000)),
            2 => *s = "../../../etc".into(),
            3 => *s = "NaN".into(),
            _ => s.push('\u{fffd}'),
        },
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            if !keys.is_empty() && rng.chance(0.6) {
                o.remove(rng.pick(&keys));
            } else {
                o.insert("unexpected".into(), wild_number(rng));
            }
        }
        Value::Bool(b) => *b = !*b,
        Value::Null => *node = wild_number(rng),
    }
}

/// A mutated JSON text: mostly structural edits (one to three), sometimes numbers swapped
/// for tokens that are not JSON (`NaN`, `Infinity`, `1e999`), sometimes byte edits of the
/// text.
pub fn mutate_json(rng: &mut Rng, base: &Value) -> Vec<u8> {
    match rng.below(10) {
        0..=5 => {
            let mut doc = base.clone();
            for _ in 0..1 + rng.below(3) {
                mutate_json_once(rng, &mut doc);
            }
            serde_json::to_vec_pretty(&doc).expect("a JSON value serialises")
        }
        6 | 7 => {
            let text = serde_json::to_string_pretty(base).expect("a JSON value serialises");
            // Replace one number token with a non-JSON or out-of-range one.
            let starts: Vec<usize> = text
                .char_indices()
                .filter(|&(i, c)| {
                    (c.is_ascii_digit() || c == '-')
                        && !text[..i].ends_with(|p: char| p.is_ascii_alphanumeric() || p == '.')
                })
                .map(|(i, _)| i)
                .collect();
            if starts.is_empty() {
                return text.into_bytes();
            }
            let s = *rng.pick(&starts);
            let e = s + text[s..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                .unwrap_or(text.len() - s);
            let token = *rng.pick(&[
                "NaN",
                "Infinity",
                "-Infinity",
                "1e999",
                "-1e999",
                "18446744073709551616",
                "-0",
                "1e-400",
                "99999999999999999999999999",
            ]);
            format!("{}{token}{}", &text[..s], &text[e..]).into_bytes()
        }
        _ => mutate_bytes(
            rng,
            &serde_json::to_vec_pretty(base).expect("a JSON value serialises"),
        ),
    }
}

/// What a campaign found.
#[derive(Debug, Default)]
pub struct Report {
    pub format: &'static str,
    pub cases: u64,
    /// Inputs the reader accepted (and the follow-up use of which did not panic).
    pub accepted: u64,
    /// Inputs the reader rejected with an error.
    pub rejected: u64,
    /// `(seed, message)` of every panic.
    pub panics: Vec<(u64, String)>,
    pub seconds: f64,
}

impl Report {
    /// Fails the test on any panic, listing the seeds, and checks that the mutations did
    /// exercise both outcomes (a campaign whose every input is rejected at the first byte, or
    /// accepted unchanged, proves little).
    pub fn assert_clean(&self) {
        eprintln!(
            "mutation {}: {} cases, {} accepted, {} rejected, {} panics, {:.1} s",
            self.format,
            self.cases,
            self.accepted,
            self.rejected,
            self.panics.len(),
            self.seconds
        );
        if !self.panics.is_empty() {
            let list: Vec<String> = self
                .panics
                .iter()
                .take(20)
                .map(|(s, m)| format!("  seed {s}: {m}"))
                .collect();
            panic!(
                "mutation {}: {} of {} cases panicked (rerun one with LEMUR_MUTATION_SEED):\n{}",
                self.format,
                self.panics.len(),
                self.cases,
                list.join("\n")
            );
        }
        assert_eq!(self.accepted + self.rejected, self.cases);
    }
}

/// Serialises the campaigns of one test binary: the panic hook is process-wide.
static HOOK: Mutex<()> = Mutex::new(());

/// Runs `check(seed)` for every seed, catching panics. `check` builds the mutated input from
/// the seed, feeds it to the reader and returns whether the reader accepted it (`Ok(true)`)
/// or rejected it with an error (`Ok(false)`); anything wrong with an accepted result is a
/// panic (an `assert!` inside `check`).
pub fn campaign(format: &'static str, seeds: &[u64], mut check: impl FnMut(u64) -> bool) -> Report {
    let _guard = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // Mutated strings can be long; the start of the message says enough.
        let msg: String = if msg.chars().count() > 300 {
            msg.chars().take(300).chain("...".chars()).collect()
        } else {
            msg
        };
        LAST_PANIC.with(|p| p.set(Some(format!("{msg}{at}"))));
    }));
    let start = Instant::now();
    let mut report = Report {
        format,
        ..Report::default()
    };
    for &seed in seeds {
        CURRENT.with(|c| c.set(Some((format, seed))));
        let outcome = catch_unwind(AssertUnwindSafe(|| check(seed)));
        CURRENT.with(|c| c.set(None));
        report.cases += 1;
        match outcome {
            Ok(true) => report.accepted += 1,
            Ok(false) => report.rejected += 1,
            Err(_) => {
                let msg = LAST_PANIC.with(|p| p.take()).unwrap_or_default();
                report.panics.push((seed, msg));
                report.rejected += 1;
            }
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    std::panic::set_hook(previous);
    report
}

/// A scratch directory for one campaign, removed when dropped: in `/dev/shm` where there is
/// one (each case writes a file, and a RAM disk makes that 30 times faster than a disk), else
/// under `tmp` (the target directory's).
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(tmp: &str, name: &str) -> Self {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() && tempfile_ok(shm) {
            shm.to_path_buf()
        } else {
            std::path::PathBuf::from(tmp)
        };
        let dir = base
            .join(format!("lemur-mutate-{}", std::process::id()))
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }
}

fn tempfile_ok(dir: &std::path::Path) -> bool {
    let probe = dir.join(format!("lemur-mutate-probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // The per-process parent, once its last campaign is done.
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
