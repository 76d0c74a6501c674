//! The colour-map kernel against its CPU reference: texels must match exactly, on awkward
//! sizes (not multiples of the 8x8 workgroup), offsets into batched buffers, channels > 0,
//! non-finite values, rounding ties and degenerate ranges.

mod common;

use lemur_tensor::backend::Unary;
use lemur_tensor::gpu::{COLORMAP_NONFINITE, ColormapParams, colormap_cpu};
use lemur_tensor::{Backend, Error, GpuBackend, rng};

/// A random table, alpha included, so every byte of every entry is checked.
fn random_lut(seed: u64) -> [u32; 256] {
    std::array::from_fn(|i| rng::bits(seed, i as u64))
}

fn target(g: &GpuBackend, width: u32, height: u32) -> wgpu::Texture {
    g.device().create_texture(&wgpu::TextureDescriptor {
        label: Some("test colormap target"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

/// The texels row-major [H, W] as packed RGBA8 (r in the low byte). Copies go through a buffer
/// whose rows are padded to wgpu's 256-byte `COPY_BYTES_PER_ROW_ALIGNMENT`.
fn read_texture(g: &GpuBackend, tex: &wgpu::Texture) -> Vec<u32> {
    let (w, h) = (tex.width(), tex.height());
    let row = (w * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let staging = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test colormap readback"),
        size: (row * h) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = g
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("test colormap copy"),
        });
    enc.copy_texture_to_buffer(
        tex.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row),
                rows_per_image: Some(h),
            },
        },
        tex.size(),
    );
    g.queue().submit([enc.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    g.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let view = staging.slice(..).get_mapped_range().unwrap();
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in 0..h as usize {
        let line = &view[y * row as usize..][..w as usize * 4];
        out.extend(
            line.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    out
}

struct Case {
    members: usize,
    channels: usize,
    height: u32,
    width: u32,
    member: usize,
    channel: u32,
    lo: f32,
    hi: f32,
}

/// Draws the case on the GPU and the CPU. The field goes through a compute op first (x2, exact
/// in f32) recorded in the same pass, so the dispatch must see that op's output.
fn check(g: &GpuBackend, c: &Case, values: &[f32], seed: u64) {
    let lut = random_lut(seed);
    let hw = c.height as usize * c.width as usize;
    assert_eq!(values.len(), c.members * c.channels * hw);
    let x = g.upload(values).unwrap();
    let field = g.unary(Unary::Scale(2.0), &x).unwrap();
    let doubled: Vec<f32> = values.iter().map(|v| v * 2.0).collect();
    let params = ColormapParams::new(
        (c.member * c.channels * hw) as u32,
        c.channel,
        c.height,
        c.width,
        c.lo,
        c.hi,
    );
    let tex = target(g, c.width, c.height);
    let view = tex.create_view(&wgpu::TextureViewDescriptor {
        label: Some("test colormap target view"),
        ..Default::default()
    });
    g.colormap(&field, &params, &lut, &view).unwrap();
    pollster::block_on(g.work_done()).unwrap();
    let got = read_texture(g, &tex);
    let want = colormap_cpu(&doubled, &params, &lut);
    assert_eq!(got.len(), want.len());
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let v = doubled[params.offset as usize + c.channel as usize * hw + i];
        panic!(
            "{}x{} member {} channel {}: texel (x {}, y {}) of v = {v:e} is {:#010x}, CPU {:#010x}",
            c.height,
            c.width,
            c.member,
            c.channel,
            i % c.width as usize,
            i / c.width as usize,
            got[i],
            want[i]
        );
    }
}

/// Normal values with some NaN and infinities sprinkled in.
fn field_values(seed: u64, n: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|i| match rng::bits(seed ^ 0x5eed, i) % 23 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            _ => rng::normal(seed, i) * 1.5,
        })
        .collect()
}

#[test]
fn colormap_matches_cpu_on_awkward_sizes() {
    let Some(g) = common::gpu() else { return };
    let cases = [
        (1, 1, 1, 1, 0, 0),
        (1, 1, 7, 13, 0, 0),
        (1, 2, 29, 65, 0, 1),
        (3, 3, 64, 64, 1, 2),
        (2, 1, 9, 8, 1, 0),
    ];
    for (seed, &(members, channels, height, width, member, channel)) in cases.iter().enumerate() {
        let c = Case {
            members,
            channels,
            height,
            width,
            member,
            channel,
            lo: -2.0,
            hi: 2.5,
        };
        let n = members * channels * (height * width) as usize;
        check(&g, &c, &field_values(seed as u64, n), seed as u64 + 100);
    }
}

#[test]
fn colormap_rounds_ties_to_even_like_the_cpu() {
    let Some(g) = common::gpu() else { return };
    // lo = 0, hi = 255: scale 1, and the doubled k / 4 - 4 covers every multiple of 0.5 from -8 to 102
    // (halves included), so rounding halves away from zero anywhere would show.
    let (height, width) = (13, 17);
    let values: Vec<f32> = (0..height * width).map(|k| k as f32 / 4.0 - 4.0).collect();
    let c = Case {
        members: 1,
        channels: 1,
        height: height as u32,
        width: width as u32,
        member: 0,
        channel: 0,
        lo: 0.0,
        hi: 255.0,
    };
    check(&g, &c, &values, 7);
    let lut: [u32; 256] = std::array::from_fn(|i| i as u32);
    let p = ColormapParams::new(0, 0, 1, 3, 0.0, 255.0);
    assert_eq!(colormap_cpu(&[0.5, 1.5, 2.5], &p, &lut), vec![0, 2, 2]);
}

#[test]
fn colormap_degenerate_range_and_nonfinite_values() {
    let Some(g) = common::gpu() else { return };
    let (height, width) = (5, 11);
    let values = field_values(3, 2 * height * width);
    for (lo, hi) in [(0.25, 0.25), (f32::NAN, 1.0), (-1.0, f32::INFINITY)] {
        let c = Case {
            members: 1,
            channels: 2,
            height: height as u32,
            width: width as u32,
            member: 0,
            channel: 1,
            lo,
            hi,
        };
        check(&g, &c, &values, 11);
    }
    // What the CPU reference promises, so the GPU matches the documented behaviour too.
    let lut = random_lut(11);
    let p = ColormapParams::new(0, 0, 1, 3, 0.25, 0.25);
    assert_eq!(
        colormap_cpu(&[f32::NAN, -7.0, f32::NEG_INFINITY], &p, &lut),
        vec![COLORMAP_NONFINITE, lut[128], COLORMAP_NONFINITE]
    );
}

#[test]
fn colormap_rejects_short_fields_and_mismatched_targets() {
    let Some(g) = common::gpu() else { return };
    let lut = random_lut(1);
    let field = g.upload(&vec![0.0; 2 * 7 * 13]).unwrap();
    let tex = target(&g, 13, 7);
    let view = tex.create_view(&Default::default());
    // Channel 1 fits, channel 2 does not; neither does channel 1 shifted by one element.
    g.colormap(
        &field,
        &ColormapParams::new(0, 1, 7, 13, 0.0, 1.0),
        &lut,
        &view,
    )
    .unwrap();
    for p in [
        ColormapParams::new(0, 2, 7, 13, 0.0, 1.0),
        ColormapParams::new(1, 1, 7, 13, 0.0, 1.0),
    ] {
        let err = g.colormap(&field, &p, &lut, &view).unwrap_err();
        assert!(
            matches!(err, Error::Shape { op: "colormap", .. })
                && err.to_string().contains("[C, 7, 13]")
                && err.to_string().contains("holds 182"),
            "{err}"
        );
    }
    // Width and height swapped.
    let err = g
        .colormap(
            &field,
            &ColormapParams::new(0, 0, 13, 7, 0.0, 1.0),
            &lut,
            &view,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Shape { op: "colormap", .. }) && err.to_string().contains("13x7"),
        "{err}"
    );
    pollster::block_on(g.sync()).unwrap();
}
