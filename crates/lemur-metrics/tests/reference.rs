//! Reproduce the reference implementation's spectra, VRMSE and spread
//! (`fixtures/reference/metrics.safetensors`).

use lemur_metrics::{Binning, cross_correlation, field_metrics, power_spectrum};
use safetensors::SafeTensors;

/// `$LEMUR_REFERENCE_DIR`, else `$LEMUR_FIXTURES_DIR/reference`, else the shared folder beside
/// the workspace.
fn reference_dir() -> std::path::PathBuf {
    match (
        std::env::var_os("LEMUR_REFERENCE_DIR"),
        std::env::var_os("LEMUR_FIXTURES_DIR"),
    ) {
        (Some(dir), _) => dir.into(),
        (None, Some(root)) => std::path::PathBuf::from(root).join("reference"),
        (None, None) => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/reference"),
    }
}

fn tensor(st: &SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (data, t.shape().to_vec())
}

/// Max absolute difference relative to the reference output's largest magnitude.
fn assert_close(name: &str, ours: &[f64], reference: &[f32]) {
    assert_eq!(ours.len(), reference.len(), "{name}: length");
    let scale = reference
        .iter()
        .fold(0.0f64, |m, &r| m.max(f64::from(r).abs()));
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, &b)| (a - f64::from(b)).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= 1e-5 * scale,
        "{name}: max diff {worst} vs scale {scale}"
    );
}

#[test]
fn spectra_vrmse_and_spread_match_the_reference() {
    let path = reference_dir().join("metrics.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (u, us) = tensor(&st, "input.u");
    let (v, vs) = tensor(&st, "input.v_ensemble");
    let (channels, shape) = (us[0], us[1..].to_vec());
    let members = vs[0];
    assert_eq!(vs[1..], us[..]);
    let plane: usize = shape.iter().product();
    let binning = Binning::new(&shape);

    let (k_ref, ks) = tensor(&st, "output.k");
    assert_eq!(ks, [binning.bins()]);
    assert_close("k", &binning.k, &k_ref);

    let field = |x: &[f32], m: usize, c: usize| {
        x[(m * channels + c) * plane..(m * channels + c + 1) * plane].to_vec()
    };
    let mut power_u = Vec::new();
    let mut power_v = Vec::new();
    let mut cross = Vec::new();
    let mut vrmse = Vec::new();
    let mut spread = Vec::new();
    for c in 0..channels {
        power_u.extend(power_spectrum(&field(&u, 0, c), &shape, &binning));
        let members_c: Vec<f32> = (0..members).flat_map(|m| field(&v, m, c)).collect();
        let metrics = field_metrics(&field(&u, 0, c), &members_c, &shape, &binning);
        vrmse.push(metrics.vrmse);
        spread.push(metrics.spread);
    }
    for m in 0..members {
        for c in 0..channels {
            power_v.extend(power_spectrum(&field(&v, m, c), &shape, &binning));
            cross.extend(cross_correlation(
                &field(&u, 0, c),
                &field(&v, m, c),
                &shape,
                &binning,
            ));
        }
    }
    assert_close("power_u", &power_u, &tensor(&st, "output.power_u").0);
    assert_close("power_v", &power_v, &tensor(&st, "output.power_v").0);
    assert_close("cross_uv", &cross, &tensor(&st, "output.cross_uv").0);
    assert_close(
        "vrmse_per_channel",
        &vrmse,
        &tensor(&st, "output.vrmse_per_channel").0,
    );
    assert_close(
        "spread_per_channel",
        &spread,
        &tensor(&st, "output.spread_per_channel").0,
    );
}
