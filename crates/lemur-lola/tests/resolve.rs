//! How an emulator run finds its autoencoder: `--autoencoder` (a lemur run, or a reference run
//! imported beside `--out` on the way, and reused by the next emulator), an autoencoder run
//! already next to `--out`, and the `autoencoder` link the reference leaves in the run.

mod common;

use common::{copy_run, runs_dir, scratch};
use lemur_lola::import::{ImportArgs, import};

fn args(
    src: std::path::PathBuf,
    out: std::path::PathBuf,
    ae: Option<std::path::PathBuf>,
) -> ImportArgs {
    ImportArgs {
        src,
        out,
        autoencoder: ae,
        grid: Some([32, 32]),
    }
}

#[test]
fn a_reference_autoencoder_is_imported_once_beside_its_emulators() {
    let dir = scratch("resolve_reference");
    let ae_src = runs_dir().join("ae");
    let dif = import(&args(
        runs_dir().join("diffusion"),
        dir.join("diffusion"),
        Some(ae_src.clone()),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let sub = dif
        .imported_autoencoder
        .expect("the reference autoencoder was imported");
    assert_eq!(sub.out, dir.join("autoencoder"));
    assert_eq!(sub.tensors, 60);
    assert_eq!(
        dif.autoencoder.as_ref().unwrap().0,
        std::path::absolute(dir.join("autoencoder")).unwrap()
    );
    // The surrogate of the same autoencoder reuses that import.
    let sur = import(&args(
        runs_dir().join("surrogate"),
        dir.join("surrogate"),
        Some(ae_src),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(sur.imported_autoencoder.is_none());
    let how = &sur.autoencoder.as_ref().unwrap().1;
    assert!(how.contains("imported before"), "{how}");
    // Without --autoencoder, the run next to --out is found.
    let again = import(&args(
        runs_dir().join("surrogate"),
        dir.join("surrogate2"),
        None,
    ))
    .unwrap();
    let how = &again.autoencoder.as_ref().unwrap().1;
    assert!(
        how.contains("next to --out") && !how.contains("note"),
        "{how}"
    );
}

#[test]
fn the_reference_link_leads_to_the_autoencoder() {
    let dir = scratch("resolve_link");
    let src = dir.join("src");
    copy_run(&runs_dir().join("surrogate"), &src);
    std::os::unix::fs::symlink(runs_dir().join("ae"), src.join("autoencoder")).unwrap();
    let out = dir.join("emulators").join("surrogate");
    let done = import(&args(src.clone(), out, None)).unwrap_or_else(|e| panic!("{e}"));
    let (ae, how) = done.autoencoder.unwrap();
    assert!(
        how.starts_with("the link") && how.ends_with("(imported)"),
        "{how}"
    );
    assert_eq!(
        ae,
        std::path::absolute(dir.join("emulators/autoencoder")).unwrap()
    );
    // Two autoencoder runs next to --out, none recorded as this run's: ambiguous, say which.
    import(&args(
        runs_dir().join("ae"),
        dir.join("emulators/other-ae"),
        None,
    ))
    .unwrap();
    let plain = dir.join("plain");
    copy_run(&runs_dir().join("surrogate"), &plain);
    let e = import(&args(plain, dir.join("emulators/surrogate2"), None))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("several autoencoder runs")
            && e.contains("other-ae")
            && e.contains("--autoencoder"),
        "{e}"
    );
}

#[test]
fn ae_run_is_followed_when_it_exists_here() {
    let dir = scratch("resolve_ae_run");
    let src = dir.join("src");
    copy_run(&runs_dir().join("diffusion"), &src);
    let cfg = src.join("config.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let ae = runs_dir().join("ae");
    let text = text.replace(
        "ae_run: /tmp/lola-public/ae",
        &format!("ae_run: {}", ae.display()),
    );
    std::fs::write(&cfg, text).unwrap();
    let done =
        import(&args(src, dir.join("runs/diffusion"), None)).unwrap_or_else(|e| panic!("{e}"));
    let (path, how) = done.autoencoder.unwrap();
    assert!(
        how.starts_with("ae_run") && how.ends_with("(imported)"),
        "{how}"
    );
    assert_eq!(
        path,
        std::path::absolute(dir.join("runs/autoencoder")).unwrap()
    );
    // `ae_run: null` is a pixel-space emulator, which lemur does not have.
    let src = dir.join("pixel");
    copy_run(&runs_dir().join("surrogate"), &src);
    let cfg = src.join("config.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("ae_run: /tmp/lola-public/ae", "ae_run: null"),
    )
    .unwrap();
    let e = import(&args(src, dir.join("pixel-out"), None))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`ae_run`") && e.contains("physical fields"),
        "{e}"
    );
}
