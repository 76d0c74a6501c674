//! An exponential moving average of a run's weights (`--ema DECAY`).
//!
//! After every optimizer step each parameter's average moves towards it:
//! `avg <- avg + (1 - decay) (w - avg)`, which averages roughly the last `1 / (1 - decay)`
//! steps' weights. Averaging the iterates cancels part of the noise that a finite learning
//! rate leaves in them, the reason diffusion models are usually sampled from averaged
//! weights. The average starts as the run's first weights (its `--init` checkpoint's, or the
//! fresh initialisation).
//!
//! With an average, a checkpoint's `model.safetensors` holds the averaged weights, since
//! they are the ones to use (`eval`, `rollout`, the app, `--init` all read that file), and
//! the optimizer file keeps the raw weights training continues from as `<param>.raw`, beside
//! the optimizer's moments. Validation measures the averaged weights.

use lemur_tensor::{Backend, HostTensors, ParamStore, Tensor, no_grad};

use crate::error::{Result, TrainError};

/// The suffix of a raw weight in the optimizer file of a run with an average.
pub const RAW_SUFFIX: &str = "raw";

/// The averaged weights, one per parameter of the store, in its order.
pub struct Ema<B: Backend> {
    pub decay: f32,
    avg: Vec<Tensor<B>>,
}

impl<B: Backend> std::fmt::Debug for Ema<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ema(decay {}, {} tensors)", self.decay, self.avg.len())
    }
}

impl<B: Backend> Ema<B> {
    /// An average that starts at the current weights (copies: the optimizer may update the
    /// parameters' buffers in place).
    pub fn new(params: &ParamStore<B>, decay: f32) -> Result<Self> {
        let avg = params
            .iter()
            .map(|(_, p)| copy(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(Ema { decay, avg })
    }

    /// `avg <- avg + (1 - decay) (w - avg)` for every parameter.
    pub fn update(&mut self, params: &ParamStore<B>) -> Result<()> {
        let rate = 1.0 - self.decay;
        no_grad(|| {
            for (avg, (_, w)) in self.avg.iter_mut().zip(params.iter()) {
                let moved = avg.add(&w.detach().sub(avg)?.scale(rate)?)?;
                *avg = moved;
            }
            Ok(())
        })
    }

    /// Exchanges the parameters' values with the averages: called twice, it restores both.
    pub fn swap(&mut self, params: &ParamStore<B>) -> Result<()> {
        for (avg, (_, w)) in self.avg.iter_mut().zip(params.iter()) {
            let raw = w.storage();
            w.set_storage(avg.storage())?;
            *avg = Tensor::from_storage(w.backend(), raw, w.shape())?;
        }
        Ok(())
    }

    /// The averaged weights as host tensors, named like the parameters.
    pub async fn to_host(&self, params: &ParamStore<B>) -> Result<HostTensors> {
        let mut out = HostTensors::new();
        for (avg, (name, w)) in self.avg.iter().zip(params.iter()) {
            out.insert(
                name.to_string(),
                (w.shape().to_vec(), avg.to_vec_async().await?),
            );
        }
        Ok(out)
    }

    /// Resumes an average: the parameters hold the checkpoint's averaged weights (its model
    /// file) and `state` its optimizer file; the `<param>.raw` entries are removed from
    /// `state` and loaded into the parameters, the averages become the loaded weights.
    pub fn resume(
        params: &ParamStore<B>,
        decay: f32,
        state: &mut HostTensors,
        source: &std::path::Path,
    ) -> Result<Self> {
        let ema = Self::new(params, decay)?;
        for (name, w) in params.iter() {
            let key = format!("{name}.{RAW_SUFFIX}");
            let (shape, values) = state.remove(&key).ok_or_else(|| TrainError::Mismatch {
                path: source.to_path_buf(),
                detail: format!(
                    "`{key}` is missing: the run averages its weights (--ema {decay}), so its \
                     optimizer file must hold the raw weights it trains"
                ),
            })?;
            if shape.as_slice() != w.shape() {
                return Err(TrainError::Mismatch {
                    path: source.to_path_buf(),
                    detail: format!(
                        "`{key}` has shape {shape:?}, the model's `{name}` {:?}",
                        w.shape()
                    ),
                });
            }
            w.set_storage(w.backend().upload(&values)?)?;
        }
        Ok(ema)
    }
}

fn copy<B: Backend>(p: &Tensor<B>) -> Result<Tensor<B>> {
    // x * 1 is x exactly: a new buffer with the same bits.
    Ok(no_grad(|| p.detach().scale(1.0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lemur_tensor::CpuBackend;

    /// Weights set by hand at each of five steps: the average must be the decayed sum
    /// `decay^n w0 + sum_k (1 - decay) decay^(n-k) w_k` computed in f64, on a size that is no
    /// multiple of a workgroup; swapping twice restores both sets bit for bit.
    fn follows_the_exponential_average<B: Backend>(b: &B) {
        let n = 301;
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut params = ParamStore::new();
        let w = params.add(b, "w", &start, &[7, 43]).unwrap();
        params.add(b, "bias", &[0.5, -1.5], &[2]).unwrap();
        let decay = 0.9f32;
        let mut ema = Ema::new(&params, decay).unwrap();
        let mut want: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
        for step in 1..=5 {
            let now: Vec<f32> = (0..n)
                .map(|i| (i as f32 * 0.11 + step as f32).cos() * step as f32)
                .collect();
            w.set_storage(b.upload(&now).unwrap()).unwrap();
            ema.update(&params).unwrap();
            for (a, &v) in want.iter_mut().zip(&now) {
                *a = f64::from(decay) * *a + (1.0 - f64::from(decay)) * f64::from(v);
            }
        }
        let host = pollster::block_on(ema.to_host(&params)).unwrap();
        let got = &host["w"].1;
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!((f64::from(g) - e).abs() < 1e-5, "w[{i}]: {g} vs {e}");
        }
        // An untouched parameter keeps its value.
        assert_eq!(host["bias"], (vec![2], vec![0.5, -1.5]));
        let raw = pollster::block_on(params.to_host()).unwrap();
        ema.swap(&params).unwrap();
        assert_eq!(pollster::block_on(params.to_host()).unwrap(), host);
        ema.swap(&params).unwrap();
        assert_eq!(pollster::block_on(params.to_host()).unwrap(), raw);
        assert_eq!(pollster::block_on(ema.to_host(&params)).unwrap(), host);
    }

    lemur_tensor::test_device!(
        ema_follows_the_exponential_average,
        follows_the_exponential_average
    );

    #[test]
    fn resume_takes_the_raw_weights_and_names_a_missing_one() {
        let b = CpuBackend;
        let mut params = ParamStore::new();
        params.add(&b, "w", &[1.0, 2.0], &[2]).unwrap();
        let mut state = HostTensors::new();
        state.insert("w.exp_avg".into(), (vec![2], vec![0.0, 0.0]));
        state.insert("w.raw".into(), (vec![2], vec![3.0, 4.0]));
        let source = std::path::Path::new("run/step-00000002/optimizer.safetensors");
        let ema = Ema::resume(&params, 0.99, &mut state, source).unwrap();
        assert_eq!(
            pollster::block_on(params.to_host()).unwrap()["w"].1,
            [3.0, 4.0]
        );
        assert_eq!(
            pollster::block_on(ema.to_host(&params)).unwrap()["w"].1,
            [1.0, 2.0]
        );
        assert_eq!(state.keys().collect::<Vec<_>>(), ["w.exp_avg"]);

        let err = Ema::resume(&params, 0.99, &mut state, source)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`w.raw` is missing"), "{err}");
        assert!(err.contains("step-00000002/optimizer.safetensors"), "{err}");
        state.insert("w.raw".into(), (vec![3], vec![0.0; 3]));
        let err = Ema::resume(&params, 0.99, &mut state, source)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`w.raw` has shape [3]"), "{err}");
    }
}
