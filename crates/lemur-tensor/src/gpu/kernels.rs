//! The shader registry: every WGSL file, embedded at compile time (so the wasm build has them
//! too), looked up by kernel name.

/// (kernel name, WGSL source) for every file in `shaders/`.
pub const SHADERS: &[(&str, &str)] = &[
    (
        "elementwise",
        include_str!("../../../../shaders/elementwise.wgsl"),
    ),
    ("layout", include_str!("../../../../shaders/layout.wgsl")),
    ("reduce", include_str!("../../../../shaders/reduce.wgsl")),
    ("random", include_str!("../../../../shaders/random.wgsl")),
    ("adamw", include_str!("../../../../shaders/adamw.wgsl")),
    ("matmul", include_str!("../../../../shaders/matmul.wgsl")),
    ("conv2d", include_str!("../../../../shaders/conv2d.wgsl")),
    ("norm", include_str!("../../../../shaders/norm.wgsl")),
    ("adaln", include_str!("../../../../shaders/adaln.wgsl")),
    ("sampler", include_str!("../../../../shaders/sampler.wgsl")),
    (
        "attention",
        include_str!("../../../../shaders/attention.wgsl"),
    ),
    (
        "colormap",
        include_str!("../../../../shaders/colormap.wgsl"),
    ),
];

/// The source of `kernel`; panics on an unknown name, which is a programming error caught by
/// the registry test.
pub fn shader_source(kernel: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(name, _)| *name == kernel)
        .map(|(_, src)| *src)
        .unwrap_or_else(|| panic!("no shader named `{kernel}` in the registry"))
}
