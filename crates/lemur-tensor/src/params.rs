//! Named parameters and their safetensors checkpoints.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Named tensors on the host: name -> (shape, row-major f32 values), as read from or
/// written to safetensors.
pub type HostTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// An ordered set of named trainable tensors (names follow the reference implementation's
/// `state_dict` keys, e.g. `blocks.0.msa.qkv_proj.weight`).
pub struct ParamStore<B: Backend> {
    params: Vec<(String, Tensor<B>)>,
}

impl<B: Backend> Default for ParamStore<B> {
    fn default() -> Self {
        Self { params: Vec::new() }
    }
}

impl<B: Backend> std::fmt::Debug for ParamStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ParamStore({} tensors, {} values)",
            self.params.len(),
            self.count()
        )
    }
}

impl<B: Backend> ParamStore<B> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a parameter initialised from `data`; names must be unique.
    pub fn add(
        &mut self,
        backend: &B,
        name: &str,
        data: &[f32],
        shape: &[usize],
    ) -> Result<Tensor<B>> {
        if self.get(name).is_some() {
            return Err(Error::Invalid {
                op: "ParamStore::add",
                detail: format!("duplicate parameter `{name}`"),
            });
        }
        let t = Tensor::param(backend, backend.upload(data)?, shape)?;
        if data.len() != t.numel() {
            return Err(Error::Shape {
                op: "ParamStore::add",
                detail: format!("`{name}`: {} values for shape {shape:?}", data.len()),
            });
        }
        self.params.push((name.to_string(), t.clone()));
        Ok(t)
    }

    pub fn get(&self, name: &str) -> Option<&Tensor<B>> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<B>)> {
        self.params.iter().map(|(n, t)| (n.as_str(), t))
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn count(&self) -> usize {
        self.params.iter().map(|(_, t)| t.numel()).sum()
    }

    pub fn zero_grad(&self) {
        for (_, t) in &self.params {
            t.zero_grad();
        }
    }

    /// Host copies of every parameter, by name.
    pub async fn to_host(&self) -> Result<HostTensors> {
        let mut out = BTreeMap::new();
        for (n, t) in &self.params {
            out.insert(n.clone(), (t.shape().to_vec(), t.to_vec_async().await?));
        }
        Ok(out)
    }

    /// Overwrites every parameter from host tensors: each key must be present with the right
    /// shape, and no unknown key may be left over.
    pub fn load_host(&self, tensors: &HostTensors, source: &Path) -> Result<()> {
        for (name, t) in &self.params {
            let (shape, data) = tensors.get(name).ok_or_else(|| Error::Param {
                path: source.to_path_buf(),
                key: name.clone(),
                detail: "missing from the file".into(),
            })?;
            if shape.as_slice() != t.shape() {
                return Err(Error::Param {
                    path: source.to_path_buf(),
                    key: name.clone(),
                    detail: format!("shape {shape:?} in the file, model expects {:?}", t.shape()),
                });
            }
            t.set_storage(t.backend().upload(data)?)?;
        }
        if let Some(extra) = tensors.keys().find(|k| self.get(k).is_none()) {
            return Err(Error::Param {
                path: source.to_path_buf(),
                key: extra.clone(),
                detail: "unexpected key: the model has no such parameter".into(),
            });
        }
        Ok(())
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(
        &self,
        path: &Path,
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<()> {
        let host = pollster::block_on(self.to_host())?;
        write_safetensors(path, &host, metadata)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(&self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_host(&read_safetensors(&bytes, path)?, path)
    }
}

/// Parses safetensors bytes into f32 host tensors. F32, F16 and BF16 tensors are accepted,
/// the half-precision ones widened to f32 exactly (subnormals, infinities and NaN included);
/// any malformed or truncated content, a byte length that disagrees with the shape, or another
/// dtype is an error naming the file (and the key where there is one).
pub fn read_safetensors(bytes: &[u8], path: &Path) -> Result<HostTensors> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        // safetensors reports a length mismatch without the tensor's name; find it.
        if let Some((key, detail)) = find_bad_length(bytes) {
            return Error::Param {
                path: path.to_path_buf(),
                key,
                detail,
            };
        }
        Error::Safetensors {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        // Checked: a shape is numbers from the file, and a wrapped product could equal the
        // data's length.
        let need = view
            .shape()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        let width = match view.dtype() {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            other => {
                return Err(Error::Param {
                    path: path.to_path_buf(),
                    key: name,
                    detail: format!("dtype {other:?}, expected F32, F16 or BF16"),
                });
            }
        };
        let need = need.and_then(|n| n.checked_mul(width));
        // Deserialisation has checked this already; a mismatch here must not silently drop
        // a tail of values.
        if need != Some(view.data().len()) {
            return Err(Error::Param {
                path: path.to_path_buf(),
                key: name,
                detail: format!(
                    "{} bytes for {:?} of shape {:?}, which needs {}",
                    view.data().len(),
                    view.dtype(),
                    view.shape(),
                    need.map_or("more than 2^64".into(), |n| n.to_string())
                ),
            });
        }
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        };
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}

/// The first tensor whose byte range in the header disagrees with its dtype and shape, and
/// what is wrong with it; `None` if the header does not parse or every length is right.
fn find_bad_length(bytes: &[u8]) -> Option<(String, String)> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let mut tensors: Vec<(&String, &serde_json::Value)> = header
        .as_object()?
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .collect();
    tensors.sort_by_key(|(_, t)| t["data_offsets"][0].as_u64());
    tensors.into_iter().find_map(|(key, t)| {
        let dtype = t["dtype"].as_str()?;
        let width: u64 = match dtype {
            "F64" | "I64" | "U64" | "C64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "I8" | "U8" | "BOOL" => 1,
            d if d.starts_with("F8") => 1,
            _ => return None,
        };
        let shape: Vec<u64> = t["shape"]
            .as_array()?
            .iter()
            .map(|d| d.as_u64())
            .collect::<Option<_>>()?;
        let need = shape.iter().try_fold(width, |a, &d| a.checked_mul(d))?;
        let (s, e) = (
            t["data_offsets"][0].as_u64()?,
            t["data_offsets"][1].as_u64()?,
        );
        let have = e.checked_sub(s)?;
        (have != need).then(|| {
            (
                key.clone(),
                format!("{have} bytes for {dtype} of shape {shape:?}, which needs {need}"),
            )
        })
    })
}

/// Writes f32 host tensors to `path` atomically: a temporary file in the same directory,
/// renamed over the target only once complete, so a crash never leaves a torn checkpoint.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_safetensors(
    path: &Path,
    tensors: &HostTensors,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, (s, d))| {
            (
                n.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
                s.clone(),
            )
        })
        .collect();
    use safetensors::tensor::TensorView;
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, b, s)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| Error::Param {
                    path: path.to_path_buf(),
                    key: n.clone(),
                    detail: e.to_string(),
                })?,
            ))
        })
        .collect::<Result<_>>()?;
    let data = safetensors::serialize(views, metadata).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    write_atomic(path, &data)
}

/// Write-then-rename in the target's directory.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        // A full disk must not also leave a partial temporary file behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}
