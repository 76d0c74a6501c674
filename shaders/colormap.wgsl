// Colour mapping of one channel of a field into an RGBA8 texture, so that decoded fields are
// drawn without a readback (the app binds the texture in egui).
//
// Shape legend: the field is [C, H, W] starting at element `offset` of the buffer (member n of
// an [N, C, H, W] buffer: offset = n*C*H*W); only channel `channel` is read. The LUT is 256
// packed RGBA8 colours (r in the low byte, a in the high byte: unpack4x8unorm's order).
// texel (x = w, y = h) = lut[clamp(round((v - lo) * scale), 0, 255)], round to nearest even,
// with scale = 255 / (hi - lo) computed on the host: WGSL division is only accurate to 2.5
// ULP, so dividing here could pick a neighbouring entry at a rounding boundary and differ
// from the CPU reference (crates/lemur-tensor/src/gpu/colormap.rs), which repeats every step.
// scale == 0 marks a degenerate range (hi == lo, or not finite): every finite value takes the
// middle entry lut[128]. Non-finite values are a fixed grey, 0xff808080, whatever the LUT.
// Dispatch: 8x8 invocations per workgroup over (W, H): ceil(W/8) x ceil(H/8) x 1 workgroups.

struct Params {
    offset: u32,
    channel: u32,
    height: u32,
    width: u32,
    lo: f32,
    hi: f32,
    scale: f32,  // 255 / (hi - lo), or 0 for a degenerate range
    _pad0: u32,
}

const NONFINITE: u32 = 0xff808080u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> field: array<f32>;              // [offset + C*H*W] f32, [C, H, W] from offset
@group(0) @binding(2) var<storage, read> lut: array<u32>;                // [256] packed RGBA8
@group(0) @binding(3) var out: texture_storage_2d<rgba8unorm, write>;    // (W, H) texels

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    let h = gid.y;
    if (w >= params.width || h >= params.height) {
        return;
    }
    let hw = params.height * params.width;
    let v = field[params.offset + params.channel * hw + h * params.width + w];
    var packed: u32;
    // Bit test, not v != v: WGSL lets compilers assume floats are finite, and they may fold
    // a comparison-based check away.
    if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
        packed = NONFINITE;
    } else if (params.scale == 0.0) {
        packed = lut[128];
    } else {
        let t = clamp(round((v - params.lo) * params.scale), 0.0, 255.0);
        packed = lut[u32(t)];
    }
    textureStore(out, vec2<i32>(i32(w), i32(h)), unpack4x8unorm(packed));
}
