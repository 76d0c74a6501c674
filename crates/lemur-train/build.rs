//! Records the source's git commit at build time as `LEMUR_GIT_REVISION` (`"unknown"` outside a
//! git checkout or without git), so run provenance never runs git at run time.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let revision = git(&manifest, "HEAD").unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LEMUR_GIT_REVISION={revision}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the ref it points to (a commit).
    if let Some(git_dir) = git(&manifest, "--absolute-git-dir") {
        let git_dir = Path::new(&git_dir);
        let head = git_dir.join("HEAD");
        println!("cargo:rerun-if-changed={}", head.display());
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(reference) = text.strip_prefix("ref:")
        {
            // Branch refs live in the common directory (another one in a linked worktree);
            // git prints it relative to `manifest` unless it is elsewhere.
            let common = git(&manifest, "--git-common-dir")
                .map_or_else(|| git_dir.to_path_buf(), |c| Path::new(&manifest).join(c));
            let reference = common.join(reference.trim());
            println!("cargo:rerun-if-changed={}", reference.display());
            // A packed ref (after `git gc`) lives here instead.
            let packed = common.join("packed-refs");
            println!("cargo:rerun-if-changed={}", packed.display());
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}

/// `git -C dir rev-parse arg`, or `None` without git or outside a checkout.
fn git(dir: &str, arg: &str) -> Option<String> {
    Command::new("git")
        .args(["-C", dir, "rev-parse", arg])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
