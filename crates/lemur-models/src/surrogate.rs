//! The deterministic surrogate (DESIGN.md section 5): the ViT backbone on `x * mask` with the
//! mask as condition channels, modulated by the label embedding (or per-block learned tables
//! when there are no labels), trained with the MSE over the whole window.

use lemur_tensor::{Backend, Tensor};

use crate::diffusion::TrainDraw;
use crate::error::{Error, Result};
use crate::nn::{Builder, Linear};
use crate::vit::{Dropout, Vit, VitConfig, vit_param_count};

pub struct Surrogate<B: Backend> {
    pub config: VitConfig,
    backbone: Vit<B>,
    label: Option<(Linear<B>, Linear<B>)>,
}

impl<B: Backend> Surrogate<B> {
    /// Parameters under `backbone.*` and `label_embedding.*`, as in the reference.
    pub fn new(cfg: &VitConfig, b: &mut Builder<'_, B>) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.emb_features;
        let mod_features = if cfg.label_features > 0 { d } else { 0 };
        let backbone = Vit::new(
            cfg,
            cfg.channels,
            cfg.channels,
            cfg.channels,
            mod_features,
            &mut b.sub("backbone"),
        )?;
        let label = if cfg.label_features > 0 {
            Some((
                Linear::new(&mut b.sub("label_embedding.0"), cfg.label_features, d, true)?,
                Linear::new(&mut b.sub("label_embedding.2"), d, d, true)?,
            ))
        } else {
            None
        };
        Ok(Self {
            config: cfg.clone(),
            backbone,
            label,
        })
    }

    pub fn param_count(cfg: &VitConfig) -> usize {
        let d = cfg.emb_features;
        let (mod_features, labels) = if cfg.label_features > 0 {
            (d, cfg.label_features * d + d + d * d + d)
        } else {
            (0, 0)
        };
        vit_param_count(cfg, cfg.channels, cfg.channels, cfg.channels, mod_features) + labels
    }

    /// `S(x * mask, mask)`; mask broadcasts to x (e.g. (B, 1, L, 1, 1)).
    pub fn forward(
        &self,
        x: &Tensor<B>,
        mask: &Tensor<B>,
        label: Option<&Tensor<B>>,
    ) -> Result<Tensor<B>> {
        self.forward_with(x, mask, label, None)
    }

    fn forward_with(
        &self,
        x: &Tensor<B>,
        mask: &Tensor<B>,
        label: Option<&Tensor<B>>,
        dropout: Option<Dropout>,
    ) -> Result<Tensor<B>> {
        let emb = match (&self.label, label) {
            (Some((l0, l2)), Some(l)) => Some(l2.forward(&l0.forward(l)?.silu()?)?),
            (None, None) => None,
            _ => {
                return Err(Error::Input {
                    model: "Surrogate",
                    got: label.map(|l| l.shape().to_vec()).unwrap_or_default(),
                    expected: format!(
                        "labels (B, {}) exactly when label_features > 0",
                        self.config.label_features
                    ),
                });
            }
        };
        let mask = mask.broadcast_to(x.shape())?;
        self.backbone
            .forward(&x.mul(&mask)?, emb.as_ref(), Some(&mask), dropout)
    }

    /// `mean((x - S(x * mask, mask))^2)`.
    pub fn loss(
        &self,
        x: &Tensor<B>,
        label: Option<&Tensor<B>>,
        mask: &Tensor<B>,
        draw: TrainDraw,
        train: bool,
    ) -> Result<Tensor<B>> {
        self.loss_with_context(x, x, label, mask, draw, train)
    }

    /// `mean((t - S(c * mask, mask))^2)` with `t = c` at the context positions and `x` at the
    /// others: [`Self::loss`] seen through a context `c` (B, C, L, H, W) other than the target
    /// `x`, such as `x` with noise on it.
    pub fn loss_with_context(
        &self,
        x: &Tensor<B>,
        context: &Tensor<B>,
        label: Option<&Tensor<B>>,
        mask: &Tensor<B>,
        draw: TrainDraw,
        train: bool,
    ) -> Result<Tensor<B>> {
        crate::error::check_context("surrogate loss context", x, context)?;
        let dropout = train.then(|| Dropout {
            seed: draw.stream(3),
        });
        let y = self.forward_with(context, mask, label, dropout)?;
        let target = Tensor::select(&mask.broadcast_to(x.shape())?, context, x)?;
        Ok(target.sub(&y)?.square()?.mean_all()?)
    }
}
