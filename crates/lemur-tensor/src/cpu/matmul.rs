//! Reference matmul and convolution (mirrors `shaders/matmul.wgsl`, `shaders/conv2d.wgsl`).
// PLACEHOLDER: being written.
use crate::backend::{ConvDesc, MatmulDesc};

pub(crate) fn matmul(_a: &[f32], _b: &[f32], _bias: Option<&[f32]>, _d: &MatmulDesc) -> Vec<f32> {
    todo!()
}

pub(crate) fn conv2d(_x: &[f32], _w: &[f32], _bias: Option<&[f32]>, _d: &ConvDesc) -> Vec<f32> {
    todo!()
}

pub(crate) fn conv2d_weight_grad(_x: &[f32], _dy: &[f32], _d: &ConvDesc) -> Vec<f32> {
    todo!()
}
