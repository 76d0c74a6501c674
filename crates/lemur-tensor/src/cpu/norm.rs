//! Reference normalisation and softmax (mirrors `shaders/norm.wgsl`).
// PLACEHOLDER: being written.
use crate::backend::NormDesc;

pub(crate) fn norm(_x: &[f32], _d: &NormDesc) -> (Vec<f32>, Vec<f32>) {
    todo!()
}

pub(crate) fn norm_backward(_y: &[f32], _rstd: &[f32], _dy: &[f32], _d: &NormDesc) -> Vec<f32> {
    todo!()
}

pub(crate) fn softmax(_x: &[f32], _rows: usize, _n: usize) -> Vec<f32> {
    todo!()
}

pub(crate) fn softmax_backward(_y: &[f32], _dy: &[f32], _rows: usize, _n: usize) -> Vec<f32> {
    todo!()
}
