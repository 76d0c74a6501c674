//! What differs between the desktop and the browser: where the weights come from, where
//! exports go, and how the app reports its state (DOM attributes on the page, which the
//! browser test reads; a table in memory natively, which the native tests read).

use crate::LaunchOptions;
use crate::bundle::RunFiles;
use crate::engine::Pending;
use crate::error::Result;

pub use imp::*;

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;
    use crate::bundle::Bundle;
    use crate::error::AppError;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::OnceLock;
    use web_time::Instant;

    static START: OnceLock<Instant> = OnceLock::new();

    thread_local! {
        static REPORTED: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    }

    /// The embedded runs of `--set`, or those in `--weights DIR`.
    pub fn load_runs(opts: &LaunchOptions) -> Result<Pending<Result<[RunFiles; 3]>>> {
        START.get_or_init(Instant::now);
        let files = match &opts.weights {
            Some(dir) => Bundle::read_dir(std::path::Path::new(dir)),
            None => Ok(Bundle::embedded_files(opts.set)),
        };
        Ok(Box::pin(std::future::ready(files)))
    }

    pub fn report(key: &str, value: &str) {
        log::info!("{key} = {value}");
        REPORTED.with(|r| r.borrow_mut().insert(key.to_string(), value.to_string()));
    }

    /// The last value reported under `key` on this thread.
    pub fn reported(key: &str) -> Option<String> {
        REPORTED.with(|r| r.borrow().get(key).cloned())
    }

    pub fn since_start_ms() -> Option<f64> {
        START.get().map(|t| t.elapsed().as_secs_f64() * 1e3)
    }

    /// Bytes downloaded and expected: nothing is downloaded natively.
    pub fn progress() -> (f64, f64) {
        (0.0, 0.0)
    }

    /// Writes `<dir>/<name>` (default dir `lemur-export` in the working directory), to a
    /// temporary name first.
    pub fn save(dir: Option<&str>, name: &str, bytes: &[u8], _mime: &str) -> Result<String> {
        let dir = std::path::Path::new(dir.unwrap_or("lemur-export"));
        let path = dir.join(name);
        let err = |e: String| AppError::Export {
            path: path.display().to_string(),
            detail: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        lemur_tensor::params::write_atomic(&path, bytes).map_err(|e| err(e.to_string()))?;
        Ok(format!("wrote {}", path.display()))
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::bundle::{PretrainedSet, RUNS, checkpoint_dir};
    use crate::error::AppError;
    use std::cell::RefCell;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::JsFuture;

    thread_local! {
        /// (loaded, total) bytes per weight file.
        static PROGRESS: RefCell<Vec<(f64, f64)>> = const { RefCell::new(Vec::new()) };
    }

    /// The checkpoints of a set's runs. They travel inside the wasm (a few KB each); they
    /// also name the browser cache, so a retrained run is never served from a stale cache.
    fn checkpoints(set: PretrainedSet) -> [&'static str; 3] {
        macro_rules! set {
            ($set:literal) => {
                [
                    include_str!(concat!(
                        "../../../web/pretrained/",
                        $set,
                        "/autoencoder/checkpoint.json"
                    )),
                    include_str!(concat!(
                        "../../../web/pretrained/",
                        $set,
                        "/diffusion/checkpoint.json"
                    )),
                    include_str!(concat!(
                        "../../../web/pretrained/",
                        $set,
                        "/surrogate/checkpoint.json"
                    )),
                ]
            };
        }
        match set {
            PretrainedSet::Euler64 => set!("euler64"),
            PretrainedSet::Rb128x32 => set!("rb128x32"),
        }
    }

    fn cache_name(checkpoints: &[Vec<u8>]) -> String {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for c in checkpoints {
            for &b in c {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        format!("lemur-pretrained-{h:016x}")
    }

    fn js_err(url: &str, e: JsValue) -> AppError {
        AppError::Download {
            url: url.into(),
            detail: e.as_string().unwrap_or_else(|| format!("{e:?}")),
        }
    }

    /// Fetches the f16 weights of the three runs of the chosen set, `pretrained/<set>/<run>/`
    /// (from the browser's cache when it has them), reporting progress for the loading bar.
    ///
    /// `weights=URL` loads other runs instead: `URL/<run>/checkpoint.json` first (its own
    /// configuration and statistics, so the runs may be of any system and size), then the
    /// weights beside it (packed runs, as `scripts/pack-pretrained.py` writes them) or, where
    /// there are none, in the checkpoint directory it names (a run as `lemur train` writes it).
    pub fn load_runs(opts: &LaunchOptions) -> Result<Pending<Result<[RunFiles; 3]>>> {
        let custom = opts.weights.is_some();
        let base = opts
            .weights
            .as_deref()
            .map(|b| b.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("pretrained/{}", opts.set.dir()));
        let embedded = checkpoints(opts.set);
        PROGRESS.with(|p| *p.borrow_mut() = vec![(0.0, 0.0); RUNS.len()]);
        Ok(Box::pin(async move {
            let mut checkpoints = Vec::new();
            for (i, run) in RUNS.iter().enumerate() {
                checkpoints.push(if custom {
                    download(&format!("{base}/{run}/checkpoint.json"), i).await?
                } else {
                    embedded[i].as_bytes().to_vec()
                });
            }
            // The checkpoints name the cache, so a retrained run is never served stale.
            let cache = cache_name(&checkpoints);
            let futures: Vec<_> = RUNS
                .iter()
                .enumerate()
                .map(|(i, run)| fetch(&cache, format!("{base}/{run}/model.safetensors"), i))
                .collect();
            let mut out = Vec::new();
            for ((i, f), checkpoint) in futures.into_iter().enumerate().zip(checkpoints) {
                let mut source = format!("{base}/{}", RUNS[i]);
                let weights = match f.await? {
                    Some(w) => w,
                    None if custom => {
                        let file = format!("{source}/checkpoint.json");
                        source = format!("{source}/{}", checkpoint_dir(&file, &checkpoint)?);
                        let url = format!("{source}/model.safetensors");
                        fetch(&cache, url.clone(), i)
                            .await?
                            .ok_or_else(|| not_found(&url))?
                    }
                    None => return Err(not_found(&format!("{source}/model.safetensors"))),
                };
                out.push(RunFiles {
                    source,
                    checkpoint,
                    weights,
                });
            }
            hide_loading();
            let [a, b, c]: [RunFiles; 3] = out.try_into().expect("three runs");
            Ok([a, b, c])
        }))
    }

    fn not_found(url: &str) -> AppError {
        AppError::Download {
            url: url.into(),
            detail: "HTTP status 404 (not found)".into(),
        }
    }

    async fn cached(name: &str, url: &str) -> Option<(web_sys::Cache, Option<Vec<u8>>)> {
        let caches = web_sys::window()?.caches().ok()?;
        let cache: web_sys::Cache = JsFuture::from(caches.open(name))
            .await
            .ok()?
            .dyn_into()
            .ok()?;
        let hit = JsFuture::from(cache.match_with_str(url)).await.ok()?;
        let bytes = match hit.dyn_into::<web_sys::Response>() {
            Ok(resp) => {
                let buf = JsFuture::from(resp.array_buffer().ok()?).await.ok()?;
                Some(js_sys::Uint8Array::new(&buf).to_vec())
            }
            Err(_) => None,
        };
        Some((cache, bytes))
    }

    /// The file at `url`, from the cache `cache` or downloaded into it; `None` when the server
    /// has no such file.
    async fn fetch(cache: &str, url: String, slot: usize) -> Result<Option<Vec<u8>>> {
        let cache = cached(cache, &url).await;
        if let Some((_, Some(bytes))) = &cache {
            let n = bytes.len() as f64;
            PROGRESS.with(|p| p.borrow_mut()[slot] = (n, n));
            return Ok(Some(bytes.clone()));
        }
        let Some(bytes) = request(&url, slot).await? else {
            return Ok(None);
        };
        if let Some((cache, None)) = cache {
            let arr = js_sys::Uint8Array::from(bytes.as_slice());
            if let Ok(resp) = web_sys::Response::new_with_opt_buffer_source(Some(&arr)) {
                // A failed cache write only costs a download next time.
                let _ = JsFuture::from(cache.put_with_str(&url, &resp)).await;
            }
        }
        Ok(Some(bytes))
    }

    async fn download(url: &str, slot: usize) -> Result<Vec<u8>> {
        request(url, slot).await?.ok_or_else(|| not_found(url))
    }

    /// GET `url`, reporting progress in `slot`; `None` for HTTP 404.
    async fn request(url: &str, slot: usize) -> Result<Option<Vec<u8>>> {
        let xhr = web_sys::XmlHttpRequest::new().map_err(|e| js_err(url, e))?;
        xhr.open("GET", url).map_err(|e| js_err(url, e))?;
        xhr.set_response_type(web_sys::XmlHttpRequestResponseType::Arraybuffer);
        let (tx, rx) = futures_channel::oneshot::channel::<std::result::Result<(), String>>();
        let tx = std::rc::Rc::new(RefCell::new(Some(tx)));
        let progress =
            Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
                let total = if e.length_computable() {
                    e.total()
                } else {
                    0.0
                };
                PROGRESS.with(|p| p.borrow_mut()[slot] = (e.loaded(), total));
                show_progress();
            });
        let done_tx = tx.clone();
        let onload = Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = done_tx.borrow_mut().take() {
                let _ = tx.send(Ok(()));
            }
        });
        let fail_tx = tx.clone();
        let onerror = Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = fail_tx.borrow_mut().take() {
                let _ = tx.send(Err("network error".into()));
            }
        });
        xhr.set_onprogress(Some(progress.as_ref().unchecked_ref()));
        xhr.set_onload(Some(onload.as_ref().unchecked_ref()));
        xhr.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        xhr.send().map_err(|e| js_err(url, e))?;
        let r = rx.await.map_err(|_| AppError::Download {
            url: url.into(),
            detail: "the request was dropped".into(),
        })?;
        drop((progress, onload, onerror));
        r.map_err(|detail| AppError::Download {
            url: url.into(),
            detail,
        })?;
        let status = xhr.status().unwrap_or(0);
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(AppError::Download {
                url: url.into(),
                detail: format!("HTTP status {status}"),
            });
        }
        let buf = xhr.response().map_err(|e| js_err(url, e))?;
        Ok(Some(js_sys::Uint8Array::new(&buf).to_vec()))
    }

    fn element(id: &str) -> Option<web_sys::Element> {
        web_sys::window()?.document()?.get_element_by_id(id)
    }

    /// The page's own progress bar (the canvas is hidden under it until the runs are loaded).
    fn show_progress() {
        let (done, total) = progress();
        if let Some(bar) = element("lemur_progress") {
            let _ = bar.set_attribute("max", &format!("{}", total.max(1.0)));
            let _ = bar.set_attribute("value", &format!("{done}"));
        }
        if let Some(text) = element("lemur_loading_text") {
            text.set_text_content(Some(&format!(
                "Downloading the pretrained emulator: {:.1} of {:.1} MB",
                done / 1e6,
                total / 1e6
            )));
        }
    }

    fn hide_loading() {
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id("lemur_loading"))
        {
            el.remove();
        }
    }

    /// Sets `data-lemur-<key>` on the page's body (the browser test reads them).
    pub fn report(key: &str, value: &str) {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute(&format!("data-lemur-{key}"), value);
        }
        if key == "error" || key == "state" {
            web_sys::console::log_1(&format!("lemur {key}: {value}").into());
        }
        // A failure before the canvas is shown goes on the loading screen itself.
        if key == "error"
            && let (Some(loading), Some(text)) =
                (element("lemur_loading"), element("lemur_loading_text"))
        {
            let _ = loading.class_list().add_1("failed");
            text.set_text_content(Some(&format!("lemur could not start: {value}")));
        }
    }

    pub fn since_start_ms() -> Option<f64> {
        web_sys::window()?.performance().map(|p| p.now())
    }

    pub fn progress() -> (f64, f64) {
        PROGRESS.with(|p| {
            p.borrow()
                .iter()
                .fold((0.0, 0.0), |(a, b), (l, t)| (a + l, b + t))
        })
    }

    /// Offers `bytes` as a download named `name`.
    pub fn save(_dir: Option<&str>, name: &str, bytes: &[u8], mime: &str) -> Result<String> {
        let err = |e: JsValue| AppError::Export {
            path: name.into(),
            detail: format!("{e:?}"),
        };
        let arr = js_sys::Array::new();
        arr.push(&js_sys::Uint8Array::from(bytes));
        let opts = web_sys::BlobPropertyBag::new();
        opts.set_type(mime);
        let blob =
            web_sys::Blob::new_with_u8_array_sequence_and_options(&arr, &opts).map_err(err)?;
        let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(err)?;
        let doc = web_sys::window()
            .and_then(|w| w.document())
            .ok_or_else(|| err(JsValue::from_str("no document")))?;
        let a: web_sys::HtmlAnchorElement = doc
            .create_element("a")
            .map_err(err)?
            .dyn_into()
            .map_err(|_| err(JsValue::from_str("not an anchor")))?;
        a.set_href(&url);
        a.set_download(name);
        a.click();
        let _ = web_sys::Url::revoke_object_url(&url);
        Ok(format!("downloaded {name}"))
    }

    /// Launch options from the page's query string: `set`, `ensemble`, `seed`, `steps`,
    /// `horizon`, `overlap`, `sampler`, `model=surrogate`, `setup`, `field`, `backend=gpu|cpu`,
    /// `weights` (a base URL). An unknown `set` is an error on the page that names the accepted
    /// values.
    pub fn url_options() -> Result<LaunchOptions> {
        let mut o = LaunchOptions::default();
        let Some(search) = web_sys::window().and_then(|w| w.location().search().ok()) else {
            return Ok(o);
        };
        let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
            return Ok(o);
        };
        if let Some(set) = params.get("set") {
            o.set = PretrainedSet::parse(&set)?;
        }
        let num = |k: &str| params.get(k).and_then(|v| v.parse::<usize>().ok());
        o.ensemble = num("ensemble");
        o.steps = num("steps");
        o.horizon = num("horizon");
        o.overlap = num("overlap");
        o.setup = num("setup");
        o.seed = params.get("seed").and_then(|v| v.parse().ok());
        o.sampler = params.get("sampler");
        o.surrogate = params.get("model").as_deref() == Some("surrogate");
        o.field = params.get("field");
        o.weights = params.get("weights");
        o.backend = match params.get("backend").as_deref() {
            Some("cpu") => crate::BackendPref::Cpu,
            Some("gpu") => crate::BackendPref::Gpu,
            _ => crate::BackendPref::Auto,
        };
        Ok(o)
    }
}
