//! Data-parallel loops that use rayon on native targets and run serially on wasm32.
//!
//! Every closure writes only its own chunk, so results do not depend on the
//! number of threads.

/// Calls `f(index, chunk)` for each `chunk_len`-sized chunk of `data`.
pub(crate) fn for_chunks<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
    #[cfg(target_arch = "wasm32")]
    {
        data.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// Maps `0..n` through `f` and reduces with `max` (exact, so order-independent).
pub(crate) fn max_over(n: usize, f: impl Fn(usize) -> f64 + Sync + Send) -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(f).reduce(|| 0.0, f64::max)
    }
    #[cfg(target_arch = "wasm32")]
    {
        (0..n).map(f).fold(0.0, f64::max)
    }
}
