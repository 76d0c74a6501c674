//! The lemur app: `cargo run --release -p lemur-app` (desktop) or `trunk serve` (browser).

#[cfg(not(target_arch = "wasm32"))]
fn main() -> anyhow::Result<()> {
    use lemur_app::{BackendPref, LaunchOptions};
    // SAFETY: the first statement of `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        lemur_tensor::gpu::quiet_mesa_without_session()
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = LaunchOptions::default();
    let mut first_frame = false;
    let mut i = 0;
    let value = |i: usize, flag: &str| -> anyhow::Result<String> {
        args.get(i + 1)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value (see --help)"))
    };
    let number = |i: usize, flag: &str| -> anyhow::Result<usize> {
        let v = value(i, flag)?;
        v.parse()
            .map_err(|_| anyhow::anyhow!("{flag} {v}: not a whole number"))
    };
    while i < args.len() {
        let flag = args[i].as_str();
        match flag {
            "--backend" => {
                opts.backend = match value(i, flag)?.as_str() {
                    "gpu" => BackendPref::Gpu,
                    "cpu" => BackendPref::Cpu,
                    "auto" => BackendPref::Auto,
                    other => anyhow::bail!("--backend {other}: expected gpu, cpu or auto"),
                }
            }
            "--ensemble" => opts.ensemble = Some(number(i, flag)?),
            "--steps" => opts.steps = Some(number(i, flag)?),
            "--horizon" => opts.horizon = Some(number(i, flag)?),
            "--seed" => opts.seed = Some(number(i, flag)? as u64),
            "--setup" => opts.setup = Some(number(i, flag)?),
            "--sampler" => opts.sampler = Some(value(i, flag)?),
            "--weights" => opts.weights = Some(value(i, flag)?),
            "--surrogate" => {
                opts.surrogate = true;
                i += 1;
                continue;
            }
            "--first-frame" => {
                first_frame = true;
                i += 1;
                continue;
            }
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => anyhow::bail!("unknown option {other} (see --help)"),
        }
        i += 2;
    }
    if first_frame {
        let fp = lemur_app::app::headless_first_frame(&opts)?;
        println!("{fp}");
        return Ok(());
    }
    let native_options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1500.0, 900.0])
            .with_title("lemur: latent emulator"),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: lemur_app::wgpu_options(),
        ..Default::default()
    };
    eframe::run_native(
        "lemur",
        native_options,
        Box::new(|cc| Ok(Box::new(lemur_app::LemurApp::new(cc, opts)))),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}

#[cfg(not(target_arch = "wasm32"))]
const HELP: &str =
    "lemur-app: live latent rollouts of the pretrained emulator beside the Euler solver

options (all optional; every one can be changed in the window):
  --backend gpu|cpu|auto   compute backend (auto: the GPU unless it is a software adapter)
  --ensemble N             ensemble members (default 8 on a GPU, 2 on the CPU)
  --steps N                sampler steps per window (default 16, 8 on the CPU)
  --sampler NAME           ab, eab, euler, ddim, ddpm, heun or pc (default ab, order 3)
  --horizon N              latent frames to predict (default 24)
  --seed N                 sampler seed and random initial condition
  --setup K                a named initial condition (0-3) instead of a random one
  --surrogate              start with the deterministic surrogate
  --weights DIR            runs to load instead of the embedded ones (e.g. web/pretrained/euler64)
  --first-frame            no window: emulate on the CPU backend and print the fingerprint of
                           the first emulated frame (JSON), as the web page reports it";

#[cfg(target_arch = "wasm32")]
fn main() {
    use wasm_bindgen::JsCast;
    console_error_panic_hook::set_once();
    let opts = lemur_app::platform::url_options();
    wasm_bindgen_futures::spawn_local(async move {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .expect("a document");
        let canvas = document
            .get_element_by_id("lemur_canvas")
            .and_then(|c| c.dyn_into::<web_sys::HtmlCanvasElement>().ok())
            .expect("index.html has a canvas with id lemur_canvas");
        let web_options = eframe::WebOptions {
            wgpu_options: lemur_app::wgpu_options(),
            ..Default::default()
        };
        let started = eframe::WebRunner::new()
            .start(
                canvas,
                web_options,
                Box::new(|cc| Ok(Box::new(lemur_app::LemurApp::new(cc, opts)))),
            )
            .await;
        if let Err(e) = started {
            let msg = format!("the app could not start: {e:?}");
            lemur_app::platform::report("error", &msg);
            lemur_app::platform::report("state", "error");
            if let Some(el) = document.get_element_by_id("lemur_loading") {
                el.set_text_content(Some(&msg));
            }
        }
    });
}
