//! Launchers for shaders/attention.wgsl.
// PLACEHOLDER: being written.
use super::{GpuBackend, GpuStorage};
use crate::backend::{AttentionDesc, RopeDesc};
use crate::error::Result;

impl GpuBackend {
    pub(crate) fn rope_gpu(
        &self,
        _x: &GpuStorage,
        _angles: &GpuStorage,
        _d: &RopeDesc,
        _inverse: bool,
    ) -> Result<GpuStorage> {
        todo!()
    }

    pub(crate) fn rope_angle_grad_gpu(
        &self,
        _y: &GpuStorage,
        _dy: &GpuStorage,
        _d: &RopeDesc,
    ) -> Result<GpuStorage> {
        todo!()
    }

    pub(crate) fn attention_gpu(
        &self,
        _q: &GpuStorage,
        _k: &GpuStorage,
        _v: &GpuStorage,
        _d: &AttentionDesc,
    ) -> Result<GpuStorage> {
        todo!()
    }
}
