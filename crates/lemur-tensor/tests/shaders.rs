//! Every shader in `shaders/` parses and validates with naga (no GPU needed), and the registry
//! embeds every file that exists on disk.

use lemur_tensor::gpu::SHADERS;

#[test]
fn every_shader_validates_with_naga() {
    for (name, src) in SHADERS {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(src)));
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(src)));
        assert!(
            !module.entry_points.is_empty(),
            "{name}.wgsl has no entry point"
        );
    }
}

#[test]
fn registry_matches_the_shaders_directory() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("shaders dir")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".wgsl")
                .map(String::from)
        })
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = SHADERS.iter().map(|(n, _)| n.to_string()).collect();
    registered.sort();
    assert_eq!(
        on_disk, registered,
        "shaders/ and the registry in gpu/kernels.rs disagree"
    );
}

#[test]
fn every_shader_has_a_header_comment() {
    for (name, src) in SHADERS {
        assert!(
            src.trim_start().starts_with("//"),
            "{name}.wgsl must start with a header comment"
        );
    }
}
