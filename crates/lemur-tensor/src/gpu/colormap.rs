//! Launcher and CPU reference for shaders/colormap.wgsl: one channel of a field drawn into an
//! RGBA8 texture through a 256-entry colour table.

use bytemuck::{Pod, Zeroable};

use super::{GpuBackend, GpuStorage};
use crate::error::{Result, invalid, shape_err};

/// The colour of NaN and infinite values (opaque mid grey, packed like the LUT entries), which
/// no colour table can produce by accident for a finite value's meaning.
pub const COLORMAP_NONFINITE: u32 = 0xff80_8080;

/// Entry used for every finite value when the range is degenerate (`hi == lo`, or not finite).
const MIDDLE: usize = 128;

/// Mirrors `Params` in shaders/colormap.wgsl. Build it with [`ColormapParams::new`]; the public
/// fields may be changed afterwards, since the private `scale` is recomputed from `lo` and `hi`
/// at every use.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct ColormapParams {
    /// Element index of the field's first value in the buffer (member n of an [N, C, H, W]
    /// buffer: `n * C * H * W`).
    pub offset: u32,
    /// The channel drawn, `< C`.
    pub channel: u32,
    /// H: texture height and rows of the field.
    pub height: u32,
    /// W: texture width and columns of the field.
    pub width: u32,
    /// Value drawn with entry 0.
    pub lo: f32,
    /// Value drawn with entry 255.
    pub hi: f32,
    scale: f32,
    _pad0: u32,
}

impl ColormapParams {
    pub fn new(offset: u32, channel: u32, height: u32, width: u32, lo: f32, hi: f32) -> Self {
        Self {
            offset,
            channel,
            height,
            width,
            lo,
            hi,
            scale: 0.0,
            _pad0: 0,
        }
        .prepared()
    }

    /// A copy with `scale = 255 / (hi - lo)` rounded to f32 (0 marks a degenerate range). Both
    /// the kernel and [`colormap_cpu`] multiply by this one host-computed value, so their
    /// indices agree bit for bit (a division on the device is not correctly rounded).
    fn prepared(mut self) -> Self {
        self.scale = if self.lo.is_finite() && self.hi.is_finite() && self.lo != self.hi {
            // In f64 the difference of two f32 never overflows; a range narrower than
            // 255 / f32::MAX would make the scale infinite, and inf * 0 at v == lo is NaN.
            let s = 255.0 / (self.hi as f64 - self.lo as f64);
            (s as f32).clamp(-f32::MAX, f32::MAX)
        } else {
            0.0
        };
        self
    }

    /// Elements the field buffer must hold: `offset + (channel + 1) * H * W`.
    fn needed(&self) -> Option<u64> {
        let hw = self.height as u64 * self.width as u64;
        (self.channel as u64 + 1)
            .checked_mul(hw)?
            .checked_add(self.offset as u64)
    }
}

/// The packed colour of one value under prepared params.
fn texel(v: f32, p: &ColormapParams, lut: &[u32; 256]) -> u32 {
    if !v.is_finite() {
        COLORMAP_NONFINITE
    } else if p.scale == 0.0 {
        lut[MIDDLE]
    } else {
        // WGSL's round() is round-half-to-even; f32::round would round halves away from zero.
        let t = ((v - p.lo) * p.scale).round_ties_even().clamp(0.0, 255.0);
        lut[t as usize]
    }
}

/// CPU reference of [`GpuBackend::colormap`]: the texels row-major [H, W], packed RGBA8 (r in
/// the low byte), with exactly the kernel's arithmetic:
/// `lut[clamp(round_ties_even((v - lo) * scale), 0, 255)]`, `scale = 255 / (hi - lo)` in f32;
/// [`COLORMAP_NONFINITE`] for NaN and infinities; `lut[128]` for every finite value when
/// `hi == lo` (or either is not finite).
///
/// # Panics
/// If `field` is shorter than `offset + (channel + 1) * H * W`.
pub fn colormap_cpu(field: &[f32], params: &ColormapParams, lut: &[u32; 256]) -> Vec<u32> {
    let p = params.prepared();
    let (h, w) = (p.height as usize, p.width as usize);
    let start = p.offset as usize + p.channel as usize * h * w;
    field[start..start + h * w]
        .iter()
        .map(|&v| texel(v, &p, lut))
        .collect()
}

/// Colour tables kept on the device; an app uses a few, and re-uploading one per frame and
/// panel would churn buffers.
const LUT_CACHE: usize = 8;

impl GpuBackend {
    /// Records the colour mapping of channel `params.channel` of the [C, H, W] field at
    /// `params.offset` of `field` into `target`, a view of a 2-D `Rgba8Unorm` texture of size
    /// (W, H) with `STORAGE_BINDING` usage: texel (x = w, y = h) gets the colour of
    /// `field[offset + channel*H*W + h*W + w]` as in [`colormap_cpu`], bit for bit.
    ///
    /// Like every op it is recorded after the work already recorded (so it sees the field's
    /// final values) and submitted at the next flush (`flush`, `read`, `sync`, `work_done`):
    /// flush before submitting a frame that samples `target`.
    pub fn colormap(
        &self,
        field: &GpuStorage,
        params: &ColormapParams,
        lut: &[u32; 256],
        target: &wgpu::TextureView,
    ) -> Result<()> {
        let p = params.prepared();
        let (h, w) = (p.height, p.width);
        let needed = p.needed();
        if needed.is_none_or(|n| n > field.len as u64) {
            return Err(shape_err(
                "colormap",
                format!(
                    "channel {} of a [C, {h}, {w}] field at offset {} needs {} elements, the \
                     buffer holds {}",
                    p.channel,
                    p.offset,
                    needed.map_or("more than 2^64".into(), |n| n.to_string()),
                    field.len
                ),
            ));
        }
        if field.len > u32::MAX as usize {
            return Err(invalid(
                "colormap",
                format!(
                    "a field buffer of {} elements exceeds the kernel's u32 indices",
                    field.len
                ),
            ));
        }
        let tex = target.texture();
        if tex.dimension() != wgpu::TextureDimension::D2
            || tex.width() != w
            || tex.height() != h
            || tex.format() != wgpu::TextureFormat::Rgba8Unorm
            || !tex.usage().contains(wgpu::TextureUsages::STORAGE_BINDING)
        {
            return Err(shape_err(
                "colormap",
                format!(
                    "target texture is {:?} {}x{} {:?} with usage {:?}; a [C, {h}, {w}] field \
                     needs a D2 {w}x{h} Rgba8Unorm texture with STORAGE_BINDING usage",
                    tex.dimension(),
                    tex.width(),
                    tex.height(),
                    tex.format(),
                    tex.usage()
                ),
            ));
        }
        let lut_buffer = self.lut_buffer(lut);
        let resources = [
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &field.buffer,
                offset: 0,
                size: wgpu::BufferSize::new((field.len.max(1) * 4) as u64),
            }),
            lut_buffer.as_entire_binding(),
            wgpu::BindingResource::TextureView(target),
        ];
        self.dispatch_resources(
            "colormap",
            "main",
            &p,
            &resources,
            [w.div_ceil(8), h.div_ceil(8), 1],
        );
        Ok(())
    }

    fn lut_buffer(&self, lut: &[u32; 256]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        let mut luts = self.inner.luts.borrow_mut();
        if let Some(i) = luts.iter().position(|(l, _)| l == lut) {
            let entry = luts.remove(i);
            let buffer = entry.1.clone();
            luts.push(entry);
            return buffer;
        }
        // Initialised at creation, so no recorded work can race with the upload.
        let buffer = self
            .inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("lemur colormap lut"),
                contents: bytemuck::cast_slice(lut),
                usage: wgpu::BufferUsages::STORAGE,
            });
        self.count(|c| c.uploads += 1);
        if luts.len() >= LUT_CACHE {
            luts.remove(0);
        }
        luts.push((*lut, buffer.clone()));
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> [u32; 256] {
        std::array::from_fn(|i| 0xff00_0000 | i as u32)
    }

    #[test]
    fn cpu_reference_rounds_half_to_even_and_clamps() {
        let lut = ramp();
        // lo = 0, hi = 255: scale 1, so the index is round_ties_even(v) clamped.
        let field = [0.5, 1.5, 2.5, 254.5, -3.0, 300.0, 127.49, f32::NAN];
        let p = ColormapParams::new(0, 0, 2, 4, 0.0, 255.0);
        let got: Vec<u32> = colormap_cpu(&field, &p, &lut)
            .iter()
            .map(|c| c & 0xff)
            .collect();
        assert_eq!(got, vec![0, 2, 2, 254, 0, 255, 127, 0x80]);
        assert_eq!(colormap_cpu(&field, &p, &lut)[7], COLORMAP_NONFINITE);
    }

    #[test]
    fn degenerate_ranges_take_the_middle_entry() {
        let lut = ramp();
        let field = [-1.0, 0.0, 7.0, f32::INFINITY];
        for (lo, hi) in [(2.0, 2.0), (f32::NAN, 1.0), (0.0, f32::INFINITY)] {
            let p = ColormapParams::new(0, 0, 1, 4, lo, hi);
            assert_eq!(
                colormap_cpu(&field, &p, &lut),
                vec![lut[128], lut[128], lut[128], COLORMAP_NONFINITE],
                "lo {lo} hi {hi}"
            );
        }
    }

    #[test]
    fn reversed_and_tiny_ranges_stay_in_the_table() {
        let lut = ramp();
        // hi < lo draws the field inverted.
        let p = ColormapParams::new(0, 0, 1, 3, 1.0, 0.0);
        let got: Vec<u32> = colormap_cpu(&[1.0, 0.5, 0.0], &p, &lut)
            .iter()
            .map(|c| c & 0xff)
            .collect();
        assert_eq!(got, vec![0, 128, 255]);
        // A range of one ulp near 1e-30: 255 / (hi - lo) overflows f32, so the scale
        // saturates instead of becoming infinite (inf * 0 at v == lo would be NaN).
        let lo = 1.0e-30_f32;
        let hi = f32::from_bits(lo.to_bits() + 1);
        let p = ColormapParams::new(0, 0, 1, 3, lo, hi);
        assert_eq!(p.scale, f32::MAX);
        let got: Vec<u32> = colormap_cpu(&[lo, 1.0, -1.0], &p, &lut)
            .iter()
            .map(|c| c & 0xff)
            .collect();
        assert_eq!(got, vec![0, 255, 0]);
    }

    #[test]
    fn params_mirror_the_wgsl_struct() {
        // Eight 4-byte fields, as in shaders/colormap.wgsl's Params.
        assert_eq!(std::mem::size_of::<ColormapParams>(), 32);
        let p = ColormapParams::new(3, 1, 5, 7, -1.0, 1.0);
        let words: &[u32] = bytemuck::cast_slice(bytemuck::bytes_of(&p));
        assert_eq!(&words[..4], &[3, 1, 5, 7]);
        assert_eq!(f32::from_bits(words[6]), 127.5);
    }
}
