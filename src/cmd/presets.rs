//! The model presets of `assets/presets/`, embedded in the binary so that an installed `lemur`
//! needs no source tree. A `--config`/`--preset` value is a preset name (`small`, or the full
//! `autoencoder-small`), or else a path to a JSON file.

use anyhow::{Result, bail};

/// Every embedded preset: (full name, JSON text).
pub const PRESETS: &[(&str, &str)] = &[
    (
        "autoencoder-tiny",
        include_str!("../../assets/presets/autoencoder-tiny.json"),
    ),
    (
        "autoencoder-small",
        include_str!("../../assets/presets/autoencoder-small.json"),
    ),
    (
        "autoencoder-paper",
        include_str!("../../assets/presets/autoencoder-paper.json"),
    ),
    (
        "denoiser-tiny",
        include_str!("../../assets/presets/denoiser-tiny.json"),
    ),
    (
        "denoiser-small",
        include_str!("../../assets/presets/denoiser-small.json"),
    ),
    (
        "denoiser-paper",
        include_str!("../../assets/presets/denoiser-paper.json"),
    ),
    (
        "surrogate-tiny",
        include_str!("../../assets/presets/surrogate-tiny.json"),
    ),
    (
        "surrogate-small",
        include_str!("../../assets/presets/surrogate-small.json"),
    ),
    (
        "surrogate-paper",
        include_str!("../../assets/presets/surrogate-paper.json"),
    ),
];

/// The embedded preset `name` (`small` or `autoencoder-small` for `kind` "autoencoder").
pub fn builtin(kind: &str, name: &str) -> Option<&'static str> {
    let full = if name.contains('-') {
        name.to_string()
    } else {
        format!("{kind}-{name}")
    };
    PRESETS
        .iter()
        .find(|(n, _)| *n == full && n.starts_with(&format!("{kind}-")))
        .map(|(_, text)| *text)
}

/// The names accepted for `kind`, for error messages: `tiny, small, paper (or autoencoder-tiny, ...)`.
pub fn names(kind: &str) -> String {
    let full: Vec<&str> = PRESETS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.starts_with(&format!("{kind}-")))
        .collect();
    let short: Vec<&str> = full.iter().map(|n| &n[kind.len() + 1..]).collect();
    format!("{} (or {})", short.join(", "), full.join(", "))
}

/// The JSON text of `value`: an embedded preset of `kind`, or else an existing file.
/// `flag` names the option in errors.
pub fn resolve(flag: &str, kind: &str, value: &str) -> Result<String> {
    if let Some(text) = builtin(kind, value) {
        return Ok(text.to_string());
    }
    let path = std::path::Path::new(value);
    if path.is_file() {
        return std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()));
    }
    bail!(
        "{flag} {value}: neither a built-in {kind} preset nor a file; the presets are {}",
        names(kind)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_names_resolve_and_unknown_ones_list_the_presets() {
        let small = resolve("--config", "autoencoder", "small").unwrap();
        assert_eq!(
            small,
            resolve("--config", "autoencoder", "autoencoder-small").unwrap()
        );
        assert!(small.contains('{'));
        assert_ne!(
            resolve("--preset", "denoiser", "tiny").unwrap(),
            resolve("--preset", "surrogate", "tiny").unwrap()
        );
        // A preset of another kind is not taken for this one.
        assert!(builtin("autoencoder", "denoiser-small").is_none());
        let e = resolve("--config", "autoencoder", "huge")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--config huge"), "{e}");
        assert!(e.contains("tiny, small, paper"), "{e}");
        assert!(e.contains("autoencoder-small"), "{e}");
    }
}
