//! Reference rotary embedding and attention (mirrors `shaders/attention.wgsl`).
// PLACEHOLDER: being written.
use crate::backend::{AttentionDesc, RopeDesc};

pub(crate) fn rope(_x: &[f32], _angles: &[f32], _d: &RopeDesc, _inverse: bool) -> Vec<f32> {
    todo!()
}

pub(crate) fn rope_angle_grad(_y: &[f32], _dy: &[f32], _d: &RopeDesc) -> Vec<f32> {
    todo!()
}

pub(crate) fn attention(_q: &[f32], _k: &[f32], _v: &[f32], _d: &AttentionDesc) -> Vec<f32> {
    todo!()
}
