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

/// Symmetric InfoNCE with momentum keys (MoCo v3 style): each query `q1[i]`
/// must pick out its partner's key `k2[i]` among all keys of the batch `k2`
/// and the `queue` of earlier keys, and `q2[i]` likewise among `k1` and the
/// queue. Keys and queue are constants (no gradient), so the queue can hold
/// many negatives that a slowly moving momentum encoder made consistent.
pub fn nt_xent_keys(
    q1: Tensor<2>,
    q2: Tensor<2>,
    k1: Tensor<2>,
    k2: Tensor<2>,
    tau: f64,
    queue: Option<Tensor<2>>,
) -> Tensor<1> {
    let [b, _] = q1.dims();
    let device = q1.device();
    let constant = |t: Tensor<2>| Tensor::<2>::from_inner(t.inner());
    let (k1, k2) = (constant(k1), constant(k2));
    let queue = queue.filter(|q| q.dims()[0] > 0).map(constant);
    let side = |q: Tensor<2>, k: Tensor<2>| {
        let keys = match &queue {
            Some(m) => Tensor::cat(vec![k, m.clone()], 0),
            None => k,
        };
        let logits = q.matmul(keys.transpose()).div_scalar(tau);
        let target: Vec<i64> = (0..b as i64).collect();
        let target = Tensor::<2, Int>::from_data(TensorData::new(target, [b, 1]), &device);
        log_softmax(logits, 1).gather(1, target).mean().neg()
    };
    (side(q1, k2) + side(q2, k1)).div_scalar(2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[[f32; 2]]) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), 2]), &Device::flex())
    }

    #[test]
    fn momentum_keys_loss_has_the_infonce_limits() {
        // Collapsed: every key looks the same → loss = ln(keys) = ln(2 + 3).
        let same = t(&[[1.0, 0.0], [1.0, 0.0]]);
        let queue = t(&[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]);
        let l = nt_xent_keys(same.clone(), same.clone(), same.clone(), same, 0.05, Some(queue)).into_scalar::<f32>();
        assert!((l - 5f32.ln()).abs() < 1e-4, "{l}");
        // Separated: each query matches only its own key → loss ≈ 0.
        let q = t(&[[1.0, 0.0], [0.0, 1.0]]);
        let queue = t(&[[-1.0, 0.0]]);
        let l = nt_xent_keys(q.clone(), q.clone(), q.clone(), q, 0.05, Some(queue)).into_scalar::<f32>();
        assert!(l < 1e-6, "{l}");
    }
}
