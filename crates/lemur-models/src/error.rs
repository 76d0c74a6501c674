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

/// The error of a loss given a context (B, C, L, H, W) of another shape than its target's.
pub(crate) fn check_context<B: lemur_tensor::Backend>(
    model: &'static str,
    x: &lemur_tensor::Tensor<B>,
    context: &lemur_tensor::Tensor<B>,
) -> Result<()> {
    if context.shape() == x.shape() {
        return Ok(());
    }
    Err(Error::Input {
        model,
        got: context.shape().to_vec(),
        expected: format!("the target's shape {:?}", x.shape()),
    })
}
