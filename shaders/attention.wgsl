// Rotary embedding with learned angles (forward, inverse, angle gradient) and a fused
// attention forward, softmax(q k^T * scale) v, that never stores the (T, T) scores.
//
// Shape legend: B batch, heads, T tokens, D channels per head (even for rope, <= 128 for
// attention), half = D/2, BH = B*heads.
//
// `rope`: x (B, heads, T, D), angles (T, heads*half); head h rotates the channel pair
//   (2i, 2i+1) of token t by a = sign * angles[t, h*half + i]:
//   (x0, x1) -> (x0 cos a - x1 sin a, x0 sin a + x1 cos a); sign -1 is the inverse rotation,
//   which is also the backward for x. One invocation per pair. Dispatch: 1-D over
//   B*heads*T*half, 256 per workgroup (x/y split, index = (wg.y * num_workgroups.x + wg.x)
//   * 256 + lid.x).
// `rope_angle_grad`: d angles (T, heads*half) from the forward's output y and dy:
//   sum over b of dy1*y0 - dy0*y1 (d y0/da = -y1, d y1/da = y0). One invocation per angle,
//   looping over the batch, so no atomics and no second reduction pass. Dispatch: 1-D over
//   T*heads*half as above.
// `attention`: q, k, v, out (BH, T, D). Flash-attention forward: a workgroup owns `br` query
//   rows of one head and streams the keys in tiles of `bc` rows through workgroup memory,
//   keeping a running max m and sum l per query row (online softmax) and rescaling its
//   accumulators by exp(m_old - m_new) as the max grows. Invocation (r, lane) of the 256
//   (r = lid / lanes, lanes = 256 / br) accumulates channels lane + i*lanes, i < 4, of row r.
//   Workgroup memory: q block br*D <= 1024 floats, one key/value tile bc*D <= 2048 floats
//   (keys, then values, reusing the space), scores br*bc <= 512 floats: 14.2 KiB, within
//   WebGPU's default 16 KiB. The host picks br = 8 for D > 64 (else 16) and
//   bc = min(32, 2048 / D). Dispatch: (ceil(T / br), BH, 1).
// `attention_rows`: the same result with one invocation per query row and no workgroup
//   memory or barriers: the choice on CPU adapters (lavapipe), whose barriers cost more than
//   the arithmetic; on real GPUs its 256 private floats per invocation would spill. Keys and
//   values are read from global memory (shared by the rows of a head through the cache).
//   Dispatch: 1-D over BH*T as for rope.

struct RopeParams {
    batch: u32,
    heads: u32,
    tokens: u32,
    dim: u32,
    sign: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct AttnParams {
    bh: u32,
    tokens: u32,
    dim: u32,
    scale: f32,
    br: u32,
    bc: u32,
    lanes: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> rp: RopeParams;
@group(0) @binding(0) var<uniform> ap: AttnParams;

// The entry points share binding slots; each uses its own set.
@group(0) @binding(1) var<storage, read> in1: array<f32>;         // [B, heads, T, D] x (rope) | y (rope_angle_grad) | [BH, T, D] q
@group(0) @binding(2) var<storage, read> in2: array<f32>;         // [T, heads*half] angles (rope) | [B, heads, T, D] dy (rope_angle_grad) | [BH, T, D] k
@group(0) @binding(3) var<storage, read> in3: array<f32>;         // [BH, T, D] v (attention)
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;  // [B, heads, T, D] out (rope) | [T, heads*half] d angles
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;  // [BH, T, D] out (attention)

const WG: u32 = 256u;
// Stands in for -inf as the initial running max: exp(NEG_BIG - m) is 0 for any real m.
const NEG_BIG: f32 = -3.0e38;
const TWO_PI: f32 = 6.2831855;

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

// ---- rotary embedding --------------------------------------------------------------------

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let half = rp.dim / 2u;
    let idx = linear_id(wg, nwg, lid);
    if idx >= rp.batch * rp.heads * rp.tokens * half { return; }
    let i = idx % half;
    let row = idx / half; // (b * heads + h) * T + t
    let t = row % rp.tokens;
    let h = (row / rp.tokens) % rp.heads;
    let a0 = rp.sign * in2[(t * rp.heads + h) * half + i];
    // Reducing to [-pi, pi] first keeps hardware sin/cos (accurate only near zero on some
    // GPUs) close to the CPU's for learned angles of any size.
    let a = a0 - TWO_PI * round(a0 / TWO_PI);
    let c = cos(a);
    let s = sin(a);
    let k = row * rp.dim + 2u * i;
    let x0 = in1[k];
    let x1 = in1[k + 1u];
    out3[k] = x0 * c - x1 * s;
    out3[k + 1u] = x0 * s + x1 * c;
}

@compute @workgroup_size(256)
fn rope_angle_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let half = rp.dim / 2u;
    let idx = linear_id(wg, nwg, lid);
    if idx >= rp.tokens * rp.heads * half { return; }
    let i = idx % half;
    let th = idx / half; // t * heads + h
    let t = th / rp.heads;
    let h = th % rp.heads;
    var acc = 0.0;
    for (var b = 0u; b < rp.batch; b++) {
        let k = ((b * rp.heads + h) * rp.tokens + t) * rp.dim + 2u * i;
        acc += in2[k + 1u] * in1[k] - in2[k] * in1[k + 1u];
    }
    out3[idx] = acc;
}

// ---- fused attention forward -------------------------------------------------------------

var<workgroup> q_s: array<f32, 1024>;    // [br, D] scaled queries
var<workgroup> kv_s: array<f32, 2048>;   // [bc, D] keys, then values, of the current tile
var<workgroup> p_s: array<f32, 512>;     // [br, bc] scores, then softmax weights
var<workgroup> row_m: array<f32, 16>;    // [br] running max
var<workgroup> row_l: array<f32, 16>;    // [br] running sum of weights
var<workgroup> row_corr: array<f32, 16>; // [br] this tile's rescale of the accumulators

@compute @workgroup_size(256)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tid = lid.x;
    let t_len = ap.tokens;
    let d = ap.dim;
    let br = ap.br;
    let bc = ap.bc;
    let lanes = ap.lanes;
    let head = wg.y * t_len * d;
    let q0 = wg.x * br;

    // The q block is contiguous: rows q0.. of this head. Rows past T are zeros (never stored).
    let q_valid = min(br, t_len - q0) * d;
    for (var e = tid; e < br * d; e += WG) {
        var val = 0.0;
        if e < q_valid {
            val = in1[head + q0 * d + e] * ap.scale;
        }
        q_s[e] = val;
    }
    if tid < br {
        row_m[tid] = NEG_BIG;
        row_l[tid] = 0.0;
    }

    let r = tid / lanes;
    let lane = tid % lanes;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);

    let n_tiles = (t_len + bc - 1u) / bc;
    for (var tile = 0u; tile < n_tiles; tile++) {
        let k0 = tile * bc;
        let n_keys = min(bc, t_len - k0);
        let tile_valid = n_keys * d;
        // Orders the previous tile's reads of kv_s and p_s (and the first tile's setup).
        workgroupBarrier();
        for (var e = tid; e < bc * d; e += WG) {
            var val = 0.0;
            if e < tile_valid {
                val = in2[head + k0 * d + e];
            }
            kv_s[e] = val;
        }
        workgroupBarrier();

        // Scores. Each dot product starts at a channel offset that differs across the 32
        // neighbouring pairs, so their reads of q_s and kv_s fall in different banks.
        for (var p = tid; p < br * bc; p += WG) {
            let pr = p / bc;
            let j = p % bc;
            var s = NEG_BIG;
            if j < n_keys {
                var dot = 0.0;
                var c = (p % 32u) % d;
                for (var n = 0u; n < d; n++) {
                    dot += q_s[pr * d + c] * kv_s[j * d + c];
                    c += 1u;
                    if c == d {
                        c = 0u;
                    }
                }
                s = dot;
            }
            p_s[p] = s;
        }
        workgroupBarrier();

        // Values replace the keys while one invocation per row updates its softmax state
        // and turns its scores into weights exp(s - m_new).
        for (var e = tid; e < bc * d; e += WG) {
            var val = 0.0;
            if e < tile_valid {
                val = in3[head + k0 * d + e];
            }
            kv_s[e] = val;
        }
        if tid < br {
            let m_old = row_m[tid];
            var m_new = m_old;
            for (var j = 0u; j < n_keys; j++) {
                m_new = max(m_new, p_s[tid * bc + j]);
            }
            var sum = 0.0;
            for (var j = 0u; j < n_keys; j++) {
                let w = exp(p_s[tid * bc + j] - m_new);
                p_s[tid * bc + j] = w;
                sum += w;
            }
            let corr = exp(m_old - m_new);
            row_m[tid] = m_new;
            row_l[tid] = row_l[tid] * corr + sum;
            row_corr[tid] = corr;
        }
        workgroupBarrier();

        let corr = row_corr[r];
        for (var i = 0u; i < 4u; i++) {
            let c = lane + i * lanes;
            if c < d {
                var a = acc[i] * corr;
                for (var j = 0u; j < n_keys; j++) {
                    a += p_s[r * bc + j] * kv_s[j * d + c];
                }
                acc[i] = a;
            }
        }
    }

    let row = q0 + r;
    if row < t_len {
        let inv = 1.0 / row_l[r];
        for (var i = 0u; i < 4u; i++) {
            let c = lane + i * lanes;
            if c < d {
                out4[head + row * d + c] = acc[i] * inv;
            }
        }
    }
}

@compute @workgroup_size(256)
fn attention_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let idx = linear_id(wg, nwg, lid); // bh * T + query row
    if idx >= ap.bh * ap.tokens { return; }
    let d = ap.dim;
    let head = (idx / ap.tokens) * ap.tokens * d;
    var qr: array<f32, 128>;
    var acc: array<f32, 128>;
    for (var c = 0u; c < d; c++) {
        qr[c] = in1[idx * d + c] * ap.scale;
        acc[c] = 0.0;
    }
    var m = NEG_BIG;
    var l = 0.0;
    for (var j = 0u; j < ap.tokens; j++) {
        let kb = head + j * d;
        var s = 0.0;
        for (var c = 0u; c < d; c++) {
            s += qr[c] * in2[kb + c];
        }
        // Rescale only when the running max grows, which becomes rare along a row.
        if s > m {
            let corr = exp(m - s);
            l *= corr;
            for (var c = 0u; c < d; c++) {
                acc[c] *= corr;
            }
            m = s;
        }
        let p = exp(s - m);
        l += p;
        for (var c = 0u; c < d; c++) {
            acc[c] += p * in3[kb + c];
        }
    }
    let inv = 1.0 / l;
    for (var c = 0u; c < d; c++) {
        out4[idx * d + c] = acc[c] * inv;
    }
}
