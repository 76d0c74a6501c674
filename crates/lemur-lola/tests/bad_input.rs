//! Bad reference runs: damaged archives, hostile or malformed pickles, tensors that disagree
//! with the configuration, configurations lemur cannot honour, missing autoencoders. Each is
//! an error naming the file and the tensor, key or option, and `--out` is never left behind.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_run, pickle_of, rezip, runs_dir, scratch, unzip, with_pickle};
use lemur_lola::import::{ImportArgs, import};
use lemur_lola::pth::read_state_bytes;

fn fixture_state(run: &str) -> Vec<u8> {
    std::fs::read(runs_dir().join(run).join("state.pth")).unwrap()
}

fn err_of(bytes: &[u8]) -> String {
    read_state_bytes(bytes, Path::new("run/state.pth"))
        .map(|s| format!("unexpectedly read {} tensors", s.tensors.len()))
        .unwrap_err_or_msg()
}

trait ErrMsg {
    fn unwrap_err_or_msg(self) -> String;
}

impl<T: std::fmt::Debug> ErrMsg for Result<String, T>
where
    T: std::fmt::Display,
{
    fn unwrap_err_or_msg(self) -> String {
        match self {
            Ok(m) => panic!("{m}"),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn truncated_archives_are_refused_with_the_file_named() {
    let bytes = fixture_state("surrogate");
    for cut in [0, 10, bytes.len() / 3, bytes.len() - 30, bytes.len() - 1] {
        let e = err_of(&bytes[..cut]);
        assert!(e.starts_with("run/state.pth: "), "cut {cut}: {e}");
        assert!(e.contains("torch.save archive"), "cut {cut}: {e}");
    }
}

#[test]
fn a_corrupted_storage_fails_its_checksum_naming_the_entry() {
    let bytes = fixture_state("surrogate");
    let entries = unzip(&bytes);
    // Flip one bit in the middle of storage 5 (in place, so the zip structure is intact).
    let data = &entries.iter().find(|(n, _)| n == "state/data/5").unwrap().1;
    let at = bytes
        .windows(64)
        .position(|w| w == &data[1000..1064])
        .unwrap();
    let mut bad = bytes.clone();
    bad[at + 10] ^= 0x10;
    let e = err_of(&bad);
    assert!(
        e.contains("run/state.pth") && e.contains("state/data/5"),
        "{e}"
    );
    assert!(e.to_lowercase().contains("checksum"), "{e}");
}

/// `os.system('ls')` as a protocol-2 pickle.
fn os_system_pickle() -> Vec<u8> {
    let mut p = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02R".to_vec();
    p.extend(b"q\x03.");
    p
}

#[test]
fn a_pickle_calling_os_system_is_refused_before_anything_runs() {
    let entries = unzip(&fixture_state("surrogate"));
    let e = err_of(&rezip(&with_pickle(&entries, os_system_pickle())));
    assert!(
        e.contains("run/state.pth") && e.contains("`os.system`") && e.contains("not allowed"),
        "{e}"
    );
    // The same global reached by STACK_GLOBAL (protocol 4), and a builtin.
    let stack = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02ls\x85R.".to_vec();
    let e = err_of(&rezip(&with_pickle(&entries, stack)));
    assert!(e.contains("`os.system`"), "{e}");
    let eval = b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.".to_vec();
    let e = err_of(&rezip(&with_pickle(&entries, eval)));
    assert!(e.contains("`__builtin__.eval`"), "{e}");
}

#[test]
fn opcodes_outside_torch_save_are_refused_by_name() {
    let entries = unzip(&fixture_state("surrogate"));
    for (program, name) in [
        (
            b"\x80\x02ccollections\nOrderedDict\n)\x81.".to_vec(),
            "NEWOBJ",
        ),
        (b"\x80\x02(ios\nsystem\n.".to_vec(), "INST"),
        (b"\x80\x02\x82\x01.".to_vec(), "EXT1"),
        (b"\x80\x02S'x'\n.".to_vec(), "STRING"),
    ] {
        let e = err_of(&rezip(&with_pickle(&entries, program)));
        assert!(
            e.contains("run/state.pth") && e.contains(&format!("opcode {name}")),
            "{name}: {e}"
        );
    }
}

/// The surrogate's pickle with the first `(0, 48, 8)`-style size tuple of a tensor replaced.
fn replace_once(p: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let i = p
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the pickle");
    [&p[..i], to, &p[i + from.len()..]].concat()
}

#[test]
fn tensors_that_overrun_their_storage_are_refused_naming_the_tensor() {
    let entries = unzip(&fixture_state("surrogate"));
    let pickle = pickle_of(&entries);
    // `backbone.in_proj.weight` is (48, 8) with stride (8, 1) over 384 values: make it (49, 8).
    let bad = replace_once(&pickle, b"K\x00K0K\x08\x86", b"K\x00K1K\x08\x86");
    let e = err_of(&rezip(&with_pickle(&entries, bad)));
    assert!(
        e.contains("run/state.pth") && e.contains("`backbone.in_proj.weight`") && e.contains("384"),
        "{e}"
    );
    // A storage offset past the end.
    let bad = replace_once(&pickle, b"QK\x00K0K\x08\x86", b"QM\x00\x10K0K\x08\x86");
    let e = err_of(&rezip(&with_pickle(&entries, bad)));
    assert!(e.contains("`backbone.in_proj.weight`"), "{e}");
    // A stride-0 view asking for far more elements than the storage holds.
    let bad = replace_once(
        &pickle,
        b"K\x00K0K\x08\x86q\tK\x08K\x01\x86",
        b"K\x00J\x00\x00\x01\x00J\x00\x00\x01\x00\x86q\tK\x00K\x00\x86",
    );
    let e = err_of(&rezip(&with_pickle(&entries, bad)));
    assert!(
        e.contains("`backbone.in_proj.weight`") && e.contains("more than its storage's 384"),
        "{e}"
    );
    // A storage entry shorter than its element count.
    let mut short = entries.clone();
    for (n, d) in &mut short {
        if n == "state/data/0" {
            d.truncate(100);
        }
    }
    let e = err_of(&rezip(&short));
    assert!(
        e.contains("`backbone.in_proj.weight`") && e.contains("state/data/0"),
        "{e}"
    );
}

fn import_err(src: &Path, out: &Path, autoencoder: Option<PathBuf>) -> String {
    let e = import(&ImportArgs {
        src: src.into(),
        out: out.into(),
        autoencoder,
        grid: Some([32, 32]),
    })
    .map(|_| "unexpectedly imported".to_string())
    .unwrap_err_or_msg();
    // Never a half-written run, nor a leftover temporary directory.
    assert!(
        !out.exists(),
        "{} exists after a failed import",
        out.display()
    );
    let parent = out.parent().unwrap();
    if parent.is_dir() {
        for entry in std::fs::read_dir(parent).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".import-"), "leftover {name}");
        }
    }
    e
}

fn edit_config(run: &Path, from: &str, to: &str) {
    let p = run.join("config.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", p.display());
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// A scratch directory with the imported fixture autoencoder as `autoencoder/`.
fn with_autoencoder(name: &str) -> PathBuf {
    let dir = scratch(name);
    import(&ImportArgs {
        src: runs_dir().join("ae"),
        out: dir.join("autoencoder"),
        autoencoder: None,
        grid: Some([32, 32]),
    })
    .unwrap();
    dir
}

#[test]
fn weights_that_disagree_with_the_configuration_name_the_tensor_and_the_file() {
    let dir = with_autoencoder("disagree");
    let src = dir.join("src");
    copy_run(&runs_dir().join("diffusion"), &src);
    edit_config(&src, "hid_channels: 48", "hid_channels: 60");
    let e = import_err(&src, &dir.join("out"), None);
    assert!(
        e.contains("state.pth")
            && e.contains("`backbone.backbone.in_proj.weight`")
            && e.contains("[48, 8]")
            && e.contains("[60, 8]"),
        "{e}"
    );
    // A per-axis patch the weights were not trained with: the input projection's shape says so.
    copy_run(&runs_dir().join("diffusion"), &src);
    edit_config(&src, "patch_size: 1", "patch_size: [1, 2, 2]");
    let e = import_err(&src, &dir.join("out"), None);
    assert!(
        e.contains("`backbone.backbone.in_proj.weight`") && e.contains("[48, 32]"),
        "{e}"
    );
    // Fewer blocks than the state dict holds: the extra tensor is named.
    copy_run(&runs_dir().join("surrogate"), &src);
    edit_config(&src, "hid_blocks: 2", "hid_blocks: 1");
    let e = import_err(&src, &dir.join("out"), None);
    assert!(e.contains("`backbone.blocks.1."), "{e}");
}

#[test]
fn configurations_lemur_cannot_honour_name_the_option() {
    let dir = with_autoencoder("options");
    let src = dir.join("src");
    for (run, from, to, key) in [
        (
            "diffusion",
            "window_size: null",
            "window_size: 4",
            "`denoiser.window_size`",
        ),
        ("diffusion", "arch: vit", "arch: unet", "`denoiser.arch`"),
        (
            "diffusion",
            "rope: true",
            "rope: true\n  foo: 1",
            "`denoiser.foo`",
        ),
        (
            "diffusion",
            "distribution: uniform",
            "distribution: beta",
            "`denoiser.loss`",
        ),
        (
            "diffusion",
            "rho: 0.66",
            "rho: 0.5",
            "`trajectory.context.rho`",
        ),
        (
            "surrogate",
            "hid_blocks: 2",
            "hid_blocks: ${oops}",
            "`surrogate.hid_blocks`",
        ),
        (
            "ae",
            "attention_heads: {}",
            "attention_heads:\n    3: 4",
            "`ae.attention_heads`",
        ),
        ("ae", "0: log1p", "0: arcsinh", "`dataset.transform.0`"),
        (
            "ae",
            "saturation: softclip2",
            "saturation: tanh",
            "`ae.saturation`",
        ),
        (
            "ae",
            "- vrmse",
            "- vrmse\n    - similarity",
            "`ae.loss.losses`",
        ),
        ("ae", "    - 0.51", "    - -0.51", "`dataset.stats.std[0]`"),
        (
            "surrogate",
            "  - euler_multi_quadrants_openBC\n",
            "  - rayleigh_benard\n",
            "`dataset.augment`",
        ),
    ] {
        copy_run(&runs_dir().join(run), &src);
        edit_config(&src, from, to);
        let e = import_err(&src, &dir.join("out"), None);
        assert!(
            e.contains("config.yaml") && e.contains(key),
            "{run} {to:?}: {e}"
        );
    }
}

#[test]
fn a_configuration_without_a_model_block_says_which_blocks_it_needs() {
    let dir = scratch("no_model");
    let src = dir.join("src");
    copy_run(&runs_dir().join("surrogate"), &src);
    edit_config(&src, "surrogate:\n", "surrogate_typo:\n");
    let e = import_err(&src, &dir.join("out"), None);
    assert!(
        e.contains("config.yaml")
            && e.contains("ae | denoiser | surrogate")
            && e.contains("no model block"),
        "{e}"
    );
}

#[test]
fn a_missing_autoencoder_is_a_clear_error_listing_what_was_tried() {
    let dir = scratch("no_ae");
    let e = import_err(&runs_dir().join("diffusion"), &dir.join("out"), None);
    assert!(
        e.contains("no autoencoder")
            && e.contains("/tmp/lola-public/ae")
            && e.contains("--autoencoder"),
        "{e}"
    );
    let e = import_err(
        &runs_dir().join("surrogate"),
        &dir.join("out"),
        Some(dir.join("nowhere")),
    );
    assert!(e.contains("nowhere") && e.contains("does not exist"), "{e}");
    // A dangling `autoencoder` link, as the reference leaves on another machine.
    let src = dir.join("src");
    copy_run(&runs_dir().join("surrogate"), &src);
    std::os::unix::fs::symlink("/tmp/lola-public/missing-ae", src.join("autoencoder")).unwrap();
    let e = import_err(&src, &dir.join("out"), None);
    assert!(
        e.contains("points at the missing /tmp/lola-public/missing-ae"),
        "{e}"
    );
    // An autoencoder with other latent channels (its checkpoint metadata says 6).
    let ae = with_autoencoder("no_ae_channels").join("autoencoder");
    let pointer = ae.join("checkpoint.json");
    let text = std::fs::read_to_string(&pointer).unwrap();
    assert!(text.contains("\"lat_channels\": 4"));
    std::fs::write(
        &pointer,
        text.replace("\"lat_channels\": 4", "\"lat_channels\": 6"),
    )
    .unwrap();
    let e = import_err(&runs_dir().join("surrogate"), &dir.join("out"), Some(ae));
    assert!(
        e.contains("config.yaml") && e.contains("`surrogate.channels`") && e.contains("has 6"),
        "{e}"
    );
}

#[test]
fn an_existing_out_is_never_overwritten() {
    let dir = with_autoencoder("exists");
    let e = import_err_keep(&runs_dir().join("ae"), &dir.join("autoencoder"));
    assert!(e.contains("already exists"), "{e}");
}

fn import_err_keep(src: &Path, out: &Path) -> String {
    import(&ImportArgs {
        src: src.into(),
        out: out.into(),
        autoencoder: None,
        grid: Some([32, 32]),
    })
    .map(|_| "unexpectedly imported".to_string())
    .unwrap_err_or_msg()
}

#[test]
fn repeated_keys_and_deep_nesting_are_refused() {
    let entries = unzip(&fixture_state("surrogate"));
    let pickle = pickle_of(&entries);
    let dup = replace_once(
        &pickle,
        b"backbone.blocks.1.theta",
        b"backbone.blocks.0.theta",
    );
    let e = err_of(&rezip(&with_pickle(&entries, dup)));
    assert!(
        e.contains("`backbone.blocks.0.theta`") && e.contains("appears twice"),
        "{e}"
    );
    // A tuple nested 100 deep (dropping such a value recurses that deep).
    let mut deep = b"\x80\x02)".to_vec();
    deep.extend(std::iter::repeat_n(0x85u8, 100));
    deep.push(b'.');
    let e = err_of(&rezip(&with_pickle(&entries, deep)));
    assert!(e.contains("nested deeper than 64"), "{e}");
}
