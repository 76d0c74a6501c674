//! Records the source's git commit at build time as `LEMUR_GIT_REVISION` (`"unknown"` outside a
//! git checkout or without git), so run provenance never runs git at run time.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let revision = Command::new("git")
        .args(["-C", &manifest, "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LEMUR_GIT_REVISION={revision}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the ref it points to (a commit).
    let git_dir = Command::new("git")
        .args(["-C", &manifest, "rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    if let Some(git_dir) = git_dir {
        let git_dir = Path::new(&git_dir);
        let head = git_dir.join("HEAD");
        println!("cargo:rerun-if-changed={}", head.display());
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(reference) = text.strip_prefix("ref:")
        {
            let reference = git_dir.join(reference.trim());
            println!("cargo:rerun-if-changed={}", reference.display());
            // A packed ref (after `git gc`) lives here instead.
            println!(
                "cargo:rerun-if-changed={}",
                git_dir.join("packed-refs").display()
            );
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
