//! Support for the workspace's tests (not part of the runtime's API): a visible record of GPU
//! tests skipped with `LEMUR_TEST_CPU_ONLY=1`.
//!
//! libtest captures a passing test's output, so a GPU test that returns early under
//! `LEMUR_TEST_CPU_ONLY=1` used to read "ok" like one that ran. [`skip_gpu`] says so on stderr
//! (shown with `--nocapture`) and appends one line per skip to the file named by
//! `LEMUR_TEST_SKIP_LOG`, which `scripts/test.sh` sets, counts and reports.

use std::io::Write;

/// True when `LEMUR_TEST_CPU_ONLY=1` asks to skip the GPU backend; each such call records the
/// skip of `what` (e.g. "the GPU backend") in the current test, named by its thread.
pub fn skip_gpu(what: &str) -> bool {
    if !std::env::var("LEMUR_TEST_CPU_ONLY").is_ok_and(|v| v == "1") {
        return false;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("(unnamed test)");
    // The test binary, without cargo's hash suffix (`vit_parity-0123abcd` -> `vit_parity`).
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, _)) => name.to_string(),
            None => s,
        })
        .unwrap_or_default();
    let line = format!("skipped: {binary} {test}: {what} (LEMUR_TEST_CPU_ONLY=1)\n");
    eprint!("{line}");
    if let Some(path) = std::env::var_os("LEMUR_TEST_SKIP_LOG") {
        // One short write to a file opened for appending: lines from concurrent tests and
        // test binaries do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("LEMUR_TEST_SKIP_LOG={}: {e}", path.to_string_lossy());
        }
    }
    true
}
