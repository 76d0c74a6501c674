//! Images of rollouts (pending lemur-viz).
use lemur_train::emulate::Prediction;
use std::path::Path;
pub fn rollout_images(
    _out: &Path,
    _channels: &[String],
    _truth: Option<&[f32]>,
    _pred: &Prediction,
    _scale: usize,
    _stride: usize,
) -> anyhow::Result<usize> {
    Ok(0)
}
