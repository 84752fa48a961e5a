//! The contrastive loss: symmetric NT-Xent (SimCLR), optionally with extra
//! negatives from a memory of earlier batches.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Symmetric NT-Xent over `z1`, `z2` (B, D), L2-normalised, temperature `tau`.
///
/// Each of the 2B embeddings must pick out its partner among the other
/// 2B − 1 in-batch embeddings and the `extra` negatives (Q, D), which are
/// constants (no gradient), e.g. embeddings of earlier batches.
pub fn nt_xent(z1: Tensor<2>, z2: Tensor<2>, tau: f64, extra: Option<Tensor<2>>) -> Tensor<1> {
    let [b, _] = z1.dims();
    let device = z1.device();
    let z = Tensor::cat(vec![z1, z2], 0);
    let sim = z
        .clone()
        .matmul(z.clone().transpose())
        .div_scalar(tau)
        .mask_fill(Tensor::<2>::eye(2 * b, &device).bool(), -1e9);
    let logits = match extra {
        Some(q) if q.dims()[0] > 0 => {
            let q = Tensor::<2>::from_inner(q.inner());
            Tensor::cat(vec![sim, z.matmul(q.transpose()).div_scalar(tau)], 1)
        }
        _ => sim,
    };
    let partner: Vec<i64> = (0..2 * b).map(|i| ((i + b) % (2 * b)) as i64).collect();
    let partner = Tensor::<2, Int>::from_data(TensorData::new(partner, [2 * b, 1]), &device);
    log_softmax(logits, 1).gather(1, partner).mean().neg()
}
