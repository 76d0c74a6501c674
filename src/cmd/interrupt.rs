//! Ctrl-C (SIGINT) and SIGTERM for the commands that write lasting outputs (`train`,
//! `generate`): the first signal sets a flag that the work looks at between units it can stop
//! after cleanly (an optimizer step, a trajectory); a second one quits at once. Other commands
//! keep the default behaviour (the signal ends the process), as they leave nothing half-made.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The exit status of a process ended by SIGINT, as shells report it (128 + 2).
pub const EXIT_INTERRUPTED: u8 = 130;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// A directory the second (immediate) interrupt removes before quitting: generate's partial
/// dataset.
static ABANDON: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Installs the handler (once per process) and returns the flag the first signal sets.
/// `what` says what happens next, e.g. "finishing the current step, then saving a checkpoint".
pub fn install(what: &'static str) -> anyhow::Result<Arc<AtomicBool>> {
    if let Some(flag) = STOP.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let seen = AtomicUsize::new(0);
    let set = flag.clone();
    #[cfg(not(target_arch = "wasm32"))]
    ctrlc::set_handler(move || {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            set.store(true, Ordering::SeqCst);
            eprintln!(
                "\nlemur: interrupted; {what} (interrupt again to quit at once, losing that work)"
            );
        } else {
            // Every lasting output is written atomically (temporary file or directory, then
            // rename), so quitting here corrupts nothing: at worst a hidden temporary is left.
            let abandoned = ABANDON.lock().ok().and_then(|mut p| p.take());
            if let Some(dir) = &abandoned {
                let _ = std::fs::remove_dir_all(dir);
            }
            eprintln!("\nlemur: interrupted again; quitting at once");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    })
    .map_err(|e| anyhow::anyhow!("installing the Ctrl-C handler: {e}"))?;
    #[cfg(target_arch = "wasm32")]
    let _ = (what, seen, set);
    Ok(STOP.get_or_init(|| flag).clone())
}

/// Whether an interrupt was received (false when no handler is installed).
pub fn requested() -> bool {
    STOP.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Sets (or with `None` clears) the directory an immediate second interrupt removes.
pub fn abandon_on_quit(dir: Option<PathBuf>) {
    if let Ok(mut slot) = ABANDON.lock() {
        *slot = dir;
    }
}

/// The error that ends an interrupted command: `main` prints it and exits with
/// [`EXIT_INTERRUPTED`] instead of 1.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}
