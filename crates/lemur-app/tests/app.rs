//! The desktop app end to end in egui_kittest: it loads the embedded runs by itself, rolls
//! out on the shared wgpu device (lavapipe here, `LEMUR_TEST_CPU_ONLY=1` for the CPU backend
//! without a renderer), draws real field images, and its controls work through the
//! accessibility tree.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use lemur_app::{BackendPref, LaunchOptions, LemurApp};

fn cpu_only() -> bool {
    std::env::var("LEMUR_TEST_CPU_ONLY").is_ok_and(|v| v == "1")
}

/// Fails with advice when no adapter exists (unless the run asked for the CPU only).
fn require_adapter() {
    // Recorded once per test (here, not in every `cpu_only()` call): the GPU half of the test
    // is skipped and the CPU backend stands in, which `scripts/test.sh` reports.
    if lemur_tensor::testing::skip_gpu("the GPU backend (the CPU one runs instead)") {
        return;
    }
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    assert!(
        !adapters.is_empty(),
        "no wgpu adapter: install Mesa's lavapipe (apt-get install mesa-vulkan-drivers) or set \
         LEMUR_TEST_CPU_ONLY=1 to test the CPU backend only"
    );
}

fn small(backend: BackendPref) -> LaunchOptions {
    LaunchOptions {
        backend,
        ensemble: Some(2),
        steps: Some(2),
        horizon: Some(4),
        ..Default::default()
    }
}

fn harness(opts: LaunchOptions) -> Harness<'static, LemurApp> {
    let b = Harness::builder().with_size([1500.0, 950.0]);
    let b = if cpu_only() { b } else { b.wgpu() };
    b.build_eframe(move |cc| LemurApp::new(cc, opts))
}

/// Steps frames until `done` holds (or fails after `limit` frames).
fn run_until(
    h: &mut Harness<'static, LemurApp>,
    limit: usize,
    what: &str,
    done: impl Fn(&LemurApp) -> bool,
) {
    for _ in 0..limit {
        h.step();
        let app = h.state();
        assert!(app.error.is_none(), "app error: {:?}", app.error);
        assert!(
            app.load_error().is_none(),
            "load error: {:?}",
            app.load_error()
        );
        if done(app) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("{what} did not happen within {limit} frames");
}

/// Luminance standard deviation of a rectangle of the rendered image.
fn pixel_std(img: &image::RgbaImage, r: egui::Rect) -> f64 {
    let mut vals = Vec::new();
    for y in r.min.y.ceil() as u32..r.max.y.floor() as u32 {
        for x in r.min.x.ceil() as u32..r.max.x.floor() as u32 {
            if x < img.width() && y < img.height() {
                let p = img.get_pixel(x, y).0;
                vals.push(0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64);
            }
        }
    }
    assert!(vals.len() > 100, "panel {r:?} is outside the image");
    let m = vals.iter().sum::<f64>() / vals.len() as f64;
    (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len() as f64).sqrt()
}

#[test]
fn app_rolls_out_draws_fields_and_its_controls_work() {
    require_adapter();
    let backend = if cpu_only() {
        BackendPref::Cpu
    } else {
        BackendPref::Gpu
    };
    let mut h = harness(small(backend));
    let t0 = std::time::Instant::now();
    run_until(&mut h, 20_000, "the first rollout", |a| {
        a.progress().1 > 0 && !a.rolling_out() && a.panel_rects.len() == 5
    });
    eprintln!("first rollout: {:.1} s", t0.elapsed().as_secs_f64());
    let app = h.state();
    let want = if cpu_only() { "cpu" } else { "gpu" };
    assert_eq!(app.backend_kind(), want);
    assert_eq!(app.progress(), (5, 5), "context + horizon frames");
    let first = lemur_app::platform::reported("first-frame").expect("the first frame is reported");
    let fp: Vec<f64> = serde_json::from_str(&first).unwrap();
    assert_eq!(fp.len(), 25);
    assert!(fp.iter().all(|v| v.is_finite()));
    // The same rollout on the CPU backend, without a window, starts from the same frame.
    let cpu = lemur_app::app::headless_first_frame(&small(BackendPref::Cpu)).unwrap();
    let cpu: Vec<f64> = serde_json::from_str(&cpu).unwrap();
    for (i, (a, b)) in fp.iter().zip(&cpu).enumerate() {
        assert!(
            (a - b).abs() <= 2e-3 + 2e-2 * b.abs(),
            "fingerprint [{i}]: app {a} vs CPU {b}"
        );
    }

    if !cpu_only() {
        let img = h.render().expect("render");
        let rects = h.state().panel_rects.clone();
        for (i, r) in rects.iter().enumerate() {
            let std = pixel_std(&img, *r);
            assert!(
                std > 3.0,
                "panel {i} at {r:?} is one colour (luminance std {std:.2})"
            );
        }
        img.save(concat!(env!("CARGO_TARGET_TMPDIR"), "/lemur-app.png"))
            .unwrap();
    }

    // Play/pause through its button (and the accessibility tree).
    assert!(h.state().view.playing);
    h.get_by_label("Pause").click();
    h.run_steps(2);
    assert!(!h.state().view.playing, "the pause button pauses");
    h.get_by_label("Play").click();
    h.run_steps(2);
    assert!(h.state().view.playing);

    // The field picker: pressure, then vorticity (a derived field).
    h.get_by_label("field").click();
    h.run_steps(2);
    h.get_by_label("vorticity").click();
    h.run_steps(2);
    assert_eq!(h.state().view.field, 6, "vorticity is the seventh field");

    // The ensemble size: a new rollout with 3 members, without reloading anything.
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "ensemble")
        .set_value_accesskit(3.0);
    h.run_steps(2);
    assert_eq!(h.state().settings.unwrap().ensemble, 3);
    run_until(&mut h, 20_000, "the rerun", |a| {
        a.progress() == (5, 5) && !a.rolling_out()
    });
}

/// The CPU backend computes on a worker thread natively; the window mirrors its frames.
#[test]
fn cpu_backend_rolls_out_on_a_worker_thread() {
    let mut h = Harness::builder()
        .with_size([1500.0, 950.0])
        .build_eframe(move |cc| LemurApp::new(cc, small(BackendPref::Cpu)));
    run_until(&mut h, 20_000, "the CPU rollout", |a| {
        a.progress() == (5, 5) && !a.rolling_out() && a.panel_rects.len() == 5
    });
    assert_eq!(h.state().backend_kind(), "cpu");
    let fp = lemur_app::platform::reported("first-frame").expect("the first frame is reported");
    let want = lemur_app::app::headless_first_frame(&small(BackendPref::Cpu)).unwrap();
    assert_eq!(
        fp, want,
        "the worker computes exactly what the CPU backend does"
    );
    // A new seed restarts the worker's rollout.
    let mut s = h.state().settings.unwrap();
    s.seed = 7;
    h.state_mut().settings = Some(s);
    h.get_by_label("Rerun").click();
    h.run_steps(2);
    run_until(&mut h, 20_000, "the rerun", |a| {
        a.progress() == (5, 5) && !a.rolling_out()
    });
    let again = lemur_app::platform::reported("first-frame").unwrap();
    assert_ne!(again, fp, "another seed, another ensemble");

    // The window overlap: 8 frames after 1 of context take windows of 5 frames 4 + 4 new
    // frames at overlap 1 (the embedded run's recommendation), 4 + 3 + 3 at overlap 2.
    for (overlap, windows) in [(None, 2), (Some(2), 3)] {
        let mut s = h.state().settings.unwrap();
        (s.horizon, s.overlap) = (8, overlap);
        h.state_mut().settings = Some(s);
        h.get_by_label("Rerun").click();
        h.run_steps(2);
        run_until(&mut h, 20_000, "the rerun", |a| {
            a.progress() == (9, 9) && !a.rolling_out()
        });
        assert_eq!(h.state().windows(), windows, "overlap {overlap:?}");
    }
    // An overlap the windows cannot take is refused, naming it.
    let mut s = h.state().settings.unwrap();
    s.overlap = Some(5);
    let err = s.validate(5).unwrap_err().to_string();
    assert!(
        err.contains("overlap") && err.contains("must be 1-4"),
        "{err}"
    );
}

/// Both exports write real files: a PNG of the panels and the rollout as safetensors with
/// the shapes `lemur rollout` writes.
#[test]
fn exports_write_the_panels_and_the_rollout() {
    require_adapter();
    let dir = std::env::temp_dir().join(format!("lemur-app-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = LaunchOptions {
        export_dir: Some(dir.display().to_string()),
        ..small(if cpu_only() {
            BackendPref::Cpu
        } else {
            BackendPref::Gpu
        })
    };
    let mut h = harness(opts);
    run_until(&mut h, 20_000, "the rollout", |a| {
        a.progress() == (5, 5) && !a.rolling_out() && a.panel_rects.len() == 5
    });
    h.get_by_label("Pause").click();
    h.run_steps(2);
    h.get_by_label("export panels (PNG)").click_accesskit();
    let png = dir.join(format!("lemur-energy-t{:03}.png", h.state().view.time));
    run_until(&mut h, 2_000, "the PNG export", |_| png.is_file());
    h.get_by_label("export rollout (safetensors)")
        .click_accesskit();
    let st = dir.join("lemur-rollout.safetensors");
    run_until(&mut h, 2_000, "the safetensors export", |_| st.is_file());
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let bytes = std::fs::read(&st).unwrap();
    let t = lemur_tensor::params::read_safetensors(&bytes, &st).unwrap();
    assert_eq!(t["prediction"].0, vec![2, 5, 5, 64, 64]);
    assert_eq!(t["mean"].0, vec![5, 5, 64, 64]);
    assert_eq!(t["spread"].0, vec![5, 5, 64, 64]);
    assert_eq!(t["truth"].0, vec![5, 5, 64, 64]);
    // The mean is the members' mean; the truth's density is positive.
    let (p, m) = (&t["prediction"].1, &t["mean"].1);
    let per = 5 * 5 * 64 * 64;
    for i in (0..per).step_by(97) {
        let want = 0.5 * (p[i] + p[per + i]);
        assert!(
            (m[i] - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "{i}: {} vs {want}",
            m[i]
        );
    }
    assert!(t["truth"].1[64 * 64..2 * 64 * 64].iter().all(|&v| v > 0.0));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Missing weights are an error in the window that names the file, not a blank canvas.
#[test]
fn missing_weights_are_a_clear_error() {
    let opts = LaunchOptions {
        weights: Some("/nonexistent/lemur-runs".into()),
        ..small(BackendPref::Cpu)
    };
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| LemurApp::new(cc, opts));
    h.run_steps(3);
    let err = h.state().load_error().expect("a load error").to_string();
    assert!(
        err.contains("/nonexistent/lemur-runs/autoencoder/checkpoint.json"),
        "{err}"
    );
    h.get_by_label("the pretrained runs could not be loaded");
}

/// `--field` names a field the runs do not have: the error lists those they have.
#[test]
fn an_unknown_field_is_a_clear_error() {
    use lemur_app::app::Command;
    let args: Vec<String> = ["--field", "buoyancy", "--backend", "cpu"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let Command::Window(o) = LaunchOptions::from_args(&args).unwrap() else {
        panic!("a window")
    };
    assert_eq!(o.field.as_deref(), Some("buoyancy"));
    let opts = LaunchOptions {
        field: o.field,
        ..small(BackendPref::Cpu)
    };
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| LemurApp::new(cc, opts));
    h.run_steps(3);
    let err = h.state().load_error().expect("an error").to_string();
    assert!(
        err.contains("field") && err.contains("buoyancy") && err.contains("vorticity"),
        "{err}"
    );
    assert!(h.state().session.is_none(), "no session starts");
}

/// A truncated weight file is an error naming it.
#[test]
fn corrupt_weights_name_the_file() {
    let dir = std::env::temp_dir().join(format!("lemur-app-corrupt-{}", std::process::id()));
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/pretrained/euler64");
    for run in lemur_app::bundle::RUNS {
        std::fs::create_dir_all(dir.join(run)).unwrap();
        for f in ["checkpoint.json", "model.safetensors"] {
            std::fs::copy(src.join(run).join(f), dir.join(run).join(f)).unwrap();
        }
    }
    let w = dir.join("diffusion/model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let files = lemur_app::bundle::Bundle::read_dir(&dir).unwrap();
    let err = lemur_app::bundle::Bundle::parse(&files)
        .unwrap_err()
        .to_string();
    assert!(err.contains("diffusion/model.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--weights` takes runs as `lemur train` writes them: the pointer `checkpoint.json` names
/// the checkpoint directory that holds the weights.
#[test]
fn runs_as_training_writes_them_load() {
    let dir = std::env::temp_dir().join(format!("lemur-app-runs-{}", std::process::id()));
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/pretrained/rb128x32");
    for run in lemur_app::bundle::RUNS {
        let step = dir.join(run).join("step-00000007");
        std::fs::create_dir_all(&step).unwrap();
        for f in ["checkpoint.json", "model.safetensors"] {
            std::fs::copy(src.join(run).join(f), step.join(f)).unwrap();
        }
        let mut pointer: serde_json::Value =
            serde_json::from_slice(&std::fs::read(src.join(run).join("checkpoint.json")).unwrap())
                .unwrap();
        pointer["dir"] = "step-00000007".into();
        std::fs::write(
            dir.join(run).join("checkpoint.json"),
            serde_json::to_vec(&pointer).unwrap(),
        )
        .unwrap();
    }
    let files = lemur_app::bundle::Bundle::read_dir(&dir).unwrap();
    assert!(
        files[1].source.ends_with("diffusion/step-00000007"),
        "{}",
        files[1].source
    );
    let b = lemur_app::bundle::Bundle::parse(&files).unwrap();
    assert_eq!(
        (b.dataset_name.as_str(), b.grid),
        ("rayleigh_benard", [128, 32])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The emulators must have learnt the autoencoder's latents: an autoencoder trained on is
/// refused, a decoder fine-tuned with its encoder frozen (`encoder_step`) is not.
#[test]
fn emulators_need_their_autoencoders_latents() {
    use lemur_app::bundle::{Bundle, PretrainedSet};
    let mut files = Bundle::embedded_files(PretrainedSet::Euler64);
    let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    let encoded = json(&files[1].checkpoint)["extra"]["autoencoder_step"]
        .as_u64()
        .unwrap();
    // An autoencoder trained on whole (no `encoder_step`: its latents are its own step's).
    let mut ae = json(&files[0].checkpoint);
    ae["step"] = (encoded + 500).into();
    ae["extra"].as_object_mut().unwrap().remove("encoder_step");
    files[0].checkpoint = serde_json::to_vec(&ae).unwrap();
    let Err(err) = Bundle::parse(&files).map(|_| ()) else {
        panic!("an autoencoder at another step parsed");
    };
    let err = err.to_string();
    assert!(
        err.contains(&format!(
            "trained on latents of autoencoder step Some({encoded}), the autoencoder encodes as \
             step Some({})",
            encoded + 500
        )),
        "{err}"
    );
    ae["extra"]["encoder_step"] = encoded.into();
    files[0].checkpoint = serde_json::to_vec(&ae).unwrap();
    let b = Bundle::parse(&files).unwrap();
    assert_eq!(b.grid, [64, 64]);
}

/// The diffusion run's recommended window overlap (`extra.rollout.overlap`) reaches the app;
/// one its windows cannot take names the file.
#[test]
fn the_recommended_overlap_is_read_and_checked() {
    use lemur_app::bundle::{Bundle, PretrainedSet};
    let overlaps =
        PretrainedSet::ALL.map(|set| Bundle::parse(&Bundle::embedded_files(set)).unwrap().overlap);
    // The embedded sets recommend none: overlap 2 was better on Euler's validation
    // trajectories but not on its test ones, for a third more denoiser calls.
    assert_eq!(overlaps, [1, 1]);
    let mut files = Bundle::embedded_files(PretrainedSet::Euler64);
    let mut dif: serde_json::Value = serde_json::from_slice(&files[1].checkpoint).unwrap();
    dif["extra"]["rollout"] = serde_json::json!({ "overlap": 2 });
    files[1].checkpoint = serde_json::to_vec(&dif).unwrap();
    assert_eq!(Bundle::parse(&files).unwrap().overlap, 2);
    dif["extra"]["rollout"]["overlap"] = 5.into();
    files[1].checkpoint = serde_json::to_vec(&dif).unwrap();
    let err = Bundle::parse(&files).unwrap_err().to_string();
    assert!(
        err.contains("diffusion/checkpoint.json")
            && err.contains("rollout.overlap 5: windows of 5 frames overlap by 1 to 4"),
        "{err}"
    );
}

/// Both embedded sets parse into bundles of their system's channels and grid.
#[test]
fn both_embedded_sets_parse() {
    use lemur_app::bundle::{Bundle, PretrainedSet};
    let want: [(&str, &[&str], [usize; 2], usize); 2] = [
        (
            "euler_multi_quadrants_periodicBC",
            &["energy", "density", "pressure", "momentum_x", "momentum_y"],
            [64, 64],
            3,
        ),
        (
            "rayleigh_benard",
            &["buoyancy", "pressure", "velocity_x", "velocity_y"],
            [128, 32],
            4,
        ),
    ];
    for (set, (name, channels, grid, labels)) in PretrainedSet::ALL.into_iter().zip(want) {
        let b = Bundle::parse(&Bundle::embedded_files(set)).unwrap();
        assert_eq!(b.dataset_name, name, "{set:?}");
        assert_eq!(b.stats.channels, channels, "{set:?}");
        assert_eq!(b.grid, grid, "{set:?}");
        assert_eq!(b.diffusion.config.label_features, labels, "{set:?}");
        assert_eq!((b.window, b.stride), (5, 4), "{set:?}");
        assert!(
            b.autoencoder.source.starts_with("web/pretrained/"),
            "{}",
            b.autoencoder.source
        );
    }
}

/// `--set` chooses the embedded runs (a bad value names the accepted ones); `--overlap` reaches
/// the first settings.
#[test]
fn the_launch_options_are_parsed() {
    use lemur_app::app::Command;
    use lemur_app::bundle::PretrainedSet;
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let Command::Window(o) = LaunchOptions::from_args(&args(&["--set", "rb128x32"])).unwrap()
    else {
        panic!("a window")
    };
    assert_eq!(o.set, PretrainedSet::Rb128x32);
    let Command::FirstFrame(o) =
        LaunchOptions::from_args(&args(&["--first-frame", "--ensemble", "3"])).unwrap()
    else {
        panic!("the first frame")
    };
    assert_eq!((o.set, o.ensemble), (PretrainedSet::Euler64, Some(3)));
    let err = LaunchOptions::from_args(&args(&["--set", "navier"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("navier") && err.contains("euler64, rb128x32"),
        "{err}"
    );
    let err = LaunchOptions::from_args(&args(&["--set"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--set") && err.contains("needs a value"),
        "{err}"
    );
    let Command::Window(o) = LaunchOptions::from_args(&args(&["--overlap", "2"])).unwrap() else {
        panic!("--overlap opens the window");
    };
    assert_eq!(o.overlap, Some(2));
    assert_eq!(o.settings(false, 24).unwrap().overlap, Some(2));
    assert_eq!(
        LaunchOptions::default()
            .settings(false, 24)
            .unwrap()
            .overlap,
        None
    );
    let err = LaunchOptions::from_args(&args(&["--steps", "x"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--steps") && err.contains("whole number"),
        "{err}"
    );
}

/// A Rayleigh-Bénard session on the CPU backend rolls out finite 128x32 frames in wide
/// panels, the worker computes what the headless path does, and the set picker switches
/// to the Euler runs and back to a new session.
#[test]
fn rayleigh_benard_session_and_switching_sets() {
    use lemur_app::app::Session;
    use lemur_app::bundle::PretrainedSet;
    let opts = LaunchOptions {
        set: PretrainedSet::Rb128x32,
        field: Some("vorticity".into()),
        ..small(BackendPref::Cpu)
    };
    let mut h = Harness::builder().with_size([1500.0, 950.0]).build_eframe({
        let opts = opts.clone();
        move |cc| LemurApp::new(cc, opts)
    });
    let t0 = std::time::Instant::now();
    run_until(&mut h, 40_000, "the Rayleigh-Bénard rollout", |a| {
        a.progress() == (5, 5) && !a.rolling_out() && a.panel_rects.len() == 5
    });
    eprintln!(
        "Rayleigh-Bénard rollout: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let app = h.state();
    assert_eq!(app.set(), Some(PretrainedSet::Rb128x32));
    let Some(Session::Cpu(sim)) = &app.session else {
        panic!("a CPU session")
    };
    assert_eq!(sim.models.grid, [128, 32]);
    assert_eq!(sim.truth.labels.len(), 4);
    assert!(sim.truth.computed() > 80, "the truth starts past the onset");
    // The 4 stored fields and the speed and vorticity derived from the velocity.
    assert_eq!(
        sim.models.layout.names,
        [
            "buoyancy",
            "pressure",
            "velocity_x",
            "velocity_y",
            "speed",
            "vorticity"
        ]
    );
    assert_eq!(app.view.field, 5, "--field vorticity");
    for f in &sim.job.frames {
        assert_eq!(f.members.shape(), &[2, 6, 128, 32]);
        assert!(f.members.to_vec().unwrap().iter().all(|v| v.is_finite()));
        let truth = f.truth.as_ref().expect("the truth of every frame");
        assert!(truth.to_vec().unwrap().iter().all(|v| v.is_finite()));
    }
    // The panels keep the grid's aspect (128 across, 32 up) and stay left of the plots
    // (at most 340 points wide on the right).
    for r in &app.panel_rects {
        assert!((r.width() / r.height() - 4.0).abs() < 0.05, "{r:?}");
        assert!(r.max.x <= 1500.0 - 340.0, "{r:?}");
    }
    let fp = lemur_app::platform::reported("first-frame").expect("the first frame is reported");
    assert_eq!(fp, lemur_app::app::headless_first_frame(&opts).unwrap());

    h.get_by_label("system").click();
    h.run_steps(2);
    h.get_by_label("Euler, periodic 64x64").click();
    h.run_steps(2);
    run_until(&mut h, 40_000, "the Euler rollout", |a| {
        a.set() == Some(PretrainedSet::Euler64)
            && a.progress() == (5, 5)
            && !a.rolling_out()
            && a.panel_rects.len() == 5
    });
    let app = h.state();
    let Some(Session::Cpu(sim)) = &app.session else {
        panic!("a CPU session")
    };
    assert_eq!(sim.models.grid, [64, 64]);
    assert_eq!(app.settings.unwrap().ensemble, 2, "the settings carry over");
}
