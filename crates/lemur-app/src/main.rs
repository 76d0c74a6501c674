//! The lemur app: `cargo run --release -p lemur-app` (desktop) or `trunk serve` (browser).

#[cfg(not(target_arch = "wasm32"))]
fn main() -> anyhow::Result<()> {
    use lemur_app::LaunchOptions;
    use lemur_app::app::Command;
    // SAFETY: the first statement of `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        lemur_tensor::gpu::quiet_mesa_without_session()
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match LaunchOptions::from_args(&args)? {
        Command::Help => {
            println!("{HELP}");
            return Ok(());
        }
        Command::FirstFrame(opts) => {
            let fp = lemur_app::app::headless_first_frame(&opts)?;
            println!("{fp}");
            return Ok(());
        }
        Command::Window(opts) => opts,
    };
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
    "lemur-app: live latent rollouts of the pretrained emulators beside the built-in solvers

options (all optional; every one can be changed in the window):
  --set NAME               the embedded runs: euler64 (Euler, periodic 64x64, the default) or
                           rb128x32 (Rayleigh-Bénard 128x32)
  --backend gpu|cpu|auto   compute backend (auto: the GPU unless it is a software adapter)
  --ensemble N             ensemble members (default 8 on a GPU, 2 on the CPU)
  --steps N                sampler steps per window (default 16, 8 on the CPU)
  --sampler NAME           ab, eab, euler, ddim, ddpm, heun or pc (default ab, order 3)
  --horizon N              latent frames to predict (default 24)
  --overlap N              frames each window takes from the previous one (default: the
                           diffusion run's recommendation, 1 for the embedded sets)
  --seed N                 sampler seed and random initial condition
  --setup K                a named initial condition (0-3, Euler only) instead of a random one
  --surrogate              start with the deterministic surrogate
  --field NAME             the field shown first: a stored channel (e.g. pressure) or the
                           derived speed or vorticity
  --weights DIR            runs to load instead of the embedded ones (e.g. web/pretrained/euler64)
  --first-frame            no window: emulate on the CPU backend and print the fingerprint of
                           the first emulated frame (JSON), as the web page reports it";

#[cfg(target_arch = "wasm32")]
fn main() {
    use wasm_bindgen::JsCast;
    console_error_panic_hook::set_once();
    let opts = match lemur_app::platform::url_options() {
        Ok(o) => o,
        Err(e) => {
            lemur_app::platform::report("error", &format!("the page's URL: {e}"));
            lemur_app::platform::report("state", "error");
            return;
        }
    };
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
