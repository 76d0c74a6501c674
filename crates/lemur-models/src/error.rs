/// Errors of model construction and use; tensor errors pass through with their op and shapes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tensor(#[from] lemur_tensor::Error),
    #[error("invalid model configuration: {0}")]
    Config(String),
    #[error(
        "{model}: input of shape {got:?} does not match the configuration (expected {expected})"
    )]
    Input {
        model: &'static str,
        got: Vec<usize>,
        expected: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
