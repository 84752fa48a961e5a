//! The running maximum along one axis, O(1) per cell whatever the width
//! (van Herk 1992; Gil & Werman 1993): block-wise prefix and suffix maxima.

/// `out[i] = max(x[i − half ..= i + half])`, the window clipped at the ends.
/// `prefix` and `suffix` are scratch buffers (resized as needed).
pub fn running_max(x: &[f32], half: usize, out: &mut Vec<f32>, prefix: &mut Vec<f32>, suffix: &mut Vec<f32>) {
    let n = x.len();
    out.clear();
    if n == 0 {
        return;
    }
    let w = 2 * half + 1;
    // The input padded with −∞ on both sides, so that every window is w
    // cells: ext[i ..= i + w − 1] is the window of x[i]. In blocks of w
    // cells, prefix[j] = max from the block start to j and suffix[j] = max
    // from j to the block end; a window of w cells spans at most two blocks,
    // so its maximum is max(suffix[first], prefix[last]).
    let len = n + 2 * half;
    let ext = |j: usize| {
        if j < half || j >= half + n {
            f32::NEG_INFINITY
        } else {
            x[j - half]
        }
    };
    prefix.clear();
    prefix.extend((0..len).map(ext));
    suffix.clear();
    suffix.extend_from_slice(prefix);
    for j in 1..len {
        if j % w != 0 {
            prefix[j] = prefix[j].max(prefix[j - 1]);
        }
    }
    for j in (0..len - 1).rev() {
        if (j + 1) % w != 0 {
            suffix[j] = suffix[j].max(suffix[j + 1]);
        }
    }
    out.extend((0..n).map(|i| suffix[i].max(prefix[i + w - 1])));
}
