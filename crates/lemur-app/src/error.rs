use thiserror::Error;

/// Everything that can go wrong in the app: loading weights, building models, emulating,
/// exporting. Messages name the file, tensor or setting at fault.
#[derive(Debug, Error)]
pub enum AppError {
    #[error("{file}: {detail}")]
    Weights { file: String, detail: String },
    #[error("{file}: checkpoint field `{field}`: {detail}")]
    Checkpoint {
        file: String,
        field: &'static str,
        detail: String,
    },
    #[error("downloading {url}: {detail}")]
    Download { url: String, detail: String },
    #[error("setting `{name}` = {value}: {detail}")]
    Setting {
        name: &'static str,
        value: String,
        detail: String,
    },
    #[error("the solver: {0}")]
    Solver(#[from] lemur_solvers::Error),
    #[error(transparent)]
    Model(#[from] lemur_models::Error),
    #[error(transparent)]
    Tensor(#[from] lemur_tensor::Error),
    #[error("export to {path}: {detail}")]
    Export { path: String, detail: String },
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;
