//! The app takes a directory of imported runs (`lemur-app --weights DIR`, read by
//! `bundle.rs`): the three reference runs imported as `autoencoder/`, `diffusion/` and
//! `surrogate/`, then the app's own headless rollout (the first emulated frame, on the CPU
//! backend, on the Euler solver's truth) with the diffusion and the surrogate emulator.

mod common;

use common::{runs_dir, scratch};
use lemur_app::app::{LaunchOptions, headless_first_frame};
use lemur_app::bundle::Bundle;
use lemur_lola::import::{ImportArgs, import};

#[test]
fn the_app_rolls_out_imported_runs() {
    let dir = scratch("app");
    for (src, out) in [
        ("ae", "autoencoder"),
        ("diffusion", "diffusion"),
        ("surrogate", "surrogate"),
    ] {
        import(&ImportArgs {
            src: runs_dir().join(src),
            out: dir.join(out),
            autoencoder: None,
            grid: Some([32, 32]),
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let bundle = Bundle::parse(&Bundle::read_dir(&dir).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (bundle.window, bundle.stride, bundle.grid),
        (5, 4, [32, 32])
    );
    assert_eq!(bundle.dataset_name, "euler_all");
    assert_eq!(bundle.autoencoder.config.hid_channels, vec![8, 16, 32, 32]);
    assert_eq!(bundle.diffusion.config.label_features, 3);
    let mut frames = Vec::new();
    for surrogate in [false, true] {
        let opts = LaunchOptions {
            weights: Some(dir.display().to_string()),
            surrogate,
            ensemble: Some(2),
            steps: Some(2),
            horizon: Some(4),
            ..Default::default()
        };
        let frame = headless_first_frame(&opts).unwrap_or_else(|e| panic!("{e}"));
        // The fingerprint lists sampled values of the first emulated frame.
        let values: Vec<f32> = frame
            .trim_matches(['[', ']'])
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            values.len() > 10 && values.iter().all(|v| v.is_finite()),
            "{frame}"
        );
        eprintln!("app, surrogate {surrogate}: first frame {frame}");
        frames.push(values);
    }
    assert_ne!(
        frames[0], frames[1],
        "the diffusion and the surrogate emulator differ"
    );
}
