//! Launchers for shaders/matmul.wgsl and shaders/conv2d.wgsl.
// PLACEHOLDER: being written.
use super::{GpuBackend, GpuStorage};
use crate::backend::{ConvDesc, MatmulDesc};
use crate::error::Result;

impl GpuBackend {
    pub(crate) fn matmul_gpu(
        &self,
        _a: &GpuStorage,
        _b: &GpuStorage,
        _bias: Option<&GpuStorage>,
        _d: &MatmulDesc,
    ) -> Result<GpuStorage> {
        todo!()
    }

    pub(crate) fn conv2d_gpu(
        &self,
        _x: &GpuStorage,
        _w: &GpuStorage,
        _bias: Option<&GpuStorage>,
        _d: &ConvDesc,
    ) -> Result<GpuStorage> {
        todo!()
    }

    pub(crate) fn conv2d_weight_grad_gpu(
        &self,
        _x: &GpuStorage,
        _dy: &GpuStorage,
        _d: &ConvDesc,
    ) -> Result<GpuStorage> {
        todo!()
    }
}
