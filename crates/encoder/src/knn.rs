//! k-nearest-neighbour graphs on the host. The distance matrix comes from a
//! matrix product on the device; selecting neighbours is a partial sort per
//! row, done here because the indices carry no gradient (and a framework
//! top-k is a full sort, measured ~3× slower per training step).

/// For each row of a `rows × cols` distance matrix (per graph, `graphs` of
/// them stacked), the column indices of the `k · dilation` smallest distances,
/// sorted ascending, keeping every `dilation`-th (dilated kNN, ViG). The node
/// itself (distance 0) is normally first. Returns `graphs · rows · k` indices,
/// each offset by `graph · cols` so that they index a flattened node list.
pub fn knn_indices(dist: &[f32], graphs: usize, rows: usize, cols: usize, k: usize, dilation: usize) -> Vec<i64> {
    assert_eq!(dist.len(), graphs * rows * cols, "distance matrix size");
    let d = dilation.max(1);
    let span = (k * d).min(cols);
    let mut out = Vec::with_capacity(graphs * rows * k);
    let mut idx: Vec<u32> = Vec::with_capacity(cols);
    for g in 0..graphs {
        for r in 0..rows {
            let row = &dist[(g * rows + r) * cols..(g * rows + r + 1) * cols];
            idx.clear();
            idx.extend(0..cols as u32);
            let cmp = |a: &u32, b: &u32| row[*a as usize].total_cmp(&row[*b as usize]).then(a.cmp(b));
            if span < cols {
                idx.select_nth_unstable_by(span - 1, cmp);
                idx.truncate(span);
            }
            idx.sort_unstable_by(cmp);
            let offset = (g * cols) as i64;
            let mut taken = 0;
            for j in idx.iter().step_by(d) {
                if taken == k {
                    break;
                }
                out.push(offset + *j as i64);
                taken += 1;
            }
            // Fewer nodes than k·d: repeat the nearest so every node has k neighbours.
            while taken < k {
                out.push(offset + idx[0] as i64);
                taken += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_first_with_self_and_dilation() {
        // Points on a line at 0, 1, 3, 6, 10: squared distances.
        let x = [0.0f32, 1.0, 3.0, 6.0, 10.0];
        let dist: Vec<f32> = x
            .iter()
            .flat_map(|a| x.iter().map(move |b| (a - b) * (a - b)))
            .collect();
        let nn = knn_indices(&dist, 1, 5, 5, 3, 1);
        assert_eq!(&nn[..3], &[0, 1, 2], "node 0: itself, then 1, then 3");
        // Node 2 (at 3): itself, node 1 (distance² 4), then nodes 0 and 3 tie at 9: the lower index wins.
        assert_eq!(&nn[6..9], &[2, 1, 0]);
        // Dilation 2 keeps ranks 0, 2, 4.
        let dil = knn_indices(&dist, 1, 5, 5, 2, 2);
        assert_eq!(&dil[..2], &[0, 2]);
    }

    #[test]
    fn graphs_are_offset_into_the_flat_node_list() {
        let dist = vec![0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0, 0.0];
        let nn = knn_indices(&dist, 2, 2, 2, 2, 1);
        assert_eq!(nn, vec![0, 1, 1, 0, 2, 3, 3, 2]);
    }

    #[test]
    fn more_neighbours_than_nodes_repeat_the_nearest() {
        let nn = knn_indices(&[0.0, 1.0, 1.0, 0.0], 1, 2, 2, 3, 1);
        assert_eq!(nn, vec![0, 1, 0, 1, 0, 1]);
    }
}
