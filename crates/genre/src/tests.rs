use super::*;

/// Three clusters of 2-d points with a little noise, 12 tracks each.
fn clusters() -> (Vec<Vec<f32>>, Vec<String>, Vec<String>) {
    let centres = [(0.0f32, 0.0f32), (4.0, 0.0), (0.0, 4.0)];
    let mut s = 12345u64;
    let mut noise = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 1000) as f32 / 1000.0 - 0.5
    };
    let (mut rows, mut labels, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for (c, &(x, y)) in centres.iter().enumerate() {
        for i in 0..12 {
            rows.push(vec![x + noise(), y + noise(), noise()]);
            labels.push(format!("class{c}"));
            groups.push(format!("g{c}-{}", i / 2));
        }
    }
    (rows, labels, groups)
}

fn small() -> GenreConfig {
    GenreConfig {
        k: 4,
        hidden: 16,
        epochs: 150,
        dropout: 0.1,
        metric: Metric::Euclidean,
        ..GenreConfig::default()
    }
}

#[test]
fn separable_clusters_are_learned_and_new_tracks_join_inductively() {
    let (rows, labels, _) = clusters();
    let names: Vec<String> = (0..rows.len()).map(|i| format!("t{i}.wav")).collect();
    let c = Classifier::train(&rows, &labels, &names, "test-3", &small()).unwrap();
    let p = c.predict(&[vec![4.1, 0.2, 0.0], vec![0.1, 3.9, 0.1]]).unwrap();
    assert_eq!(p[0].label, "class1");
    assert_eq!(p[1].label, "class2");
    assert!(p[0].probability > 0.5);
    assert_eq!(p[0].neighbours.len(), 4);
    assert!(c.predict(&[vec![1.0]]).is_err(), "wrong feature length");

    // Saved and loaded, it answers the same.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genre.safetensors");
    c.save(&path).unwrap();
    let back = Classifier::load(&path).unwrap();
    let q = back.predict(&[vec![4.1, 0.2, 0.0]]).unwrap();
    assert_eq!(q[0].label, "class1");
    assert!((q[0].probability - p[0].probability).abs() < 1e-5);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["genre.json", "genre.safetensors"], "no temporaries");
    let card = std::fs::read_to_string(dir.path().join("genre.json")).unwrap();
    assert!(!card.contains('\n'), "the card (with the training graph) stays compact");
    std::fs::remove_file(dir.path().join("genre.json")).unwrap();
    assert!(matches!(Classifier::load(&path), Err(GenreError::Io { path, .. }) if path.ends_with("genre.json")));
}

#[test]
fn folds_keep_groups_together_and_spread_classes() {
    let (_, labels, groups) = clusters();
    let ids: Vec<usize> = labels.iter().map(|l| l[5..].parse().unwrap()).collect();
    let f = eval::folds(&ids, &groups, 3);
    for (i, g) in groups.iter().enumerate() {
        for (j, h) in groups.iter().enumerate() {
            if g == h {
                assert_eq!(f[i], f[j]);
            }
        }
    }
    for fold in 0..3 {
        for class in 0..3 {
            assert!(
                (0..ids.len()).any(|i| f[i] == fold && ids[i] == class),
                "fold {fold} class {class}"
            );
        }
    }
}

#[test]
fn cross_validation_scores_every_method_on_separable_data() {
    let (rows, labels, groups) = clusters();
    let ids: Vec<usize> = labels.iter().map(|l| l[5..].parse().unwrap()).collect();
    let f = eval::folds(&ids, &groups, 3);
    let res = eval::cross_validate(&rows, &ids, 3, &f, &small(), false, &|_, _| {}).unwrap();
    let trans = eval::cross_validate(&rows, &ids, 3, &f, &small(), true, &|_, _| {}).unwrap();
    assert_eq!(res.len(), 3);
    for r in res.iter().chain(&trans) {
        assert_eq!(r.fold_accuracy.len(), 3);
        assert_eq!(r.confusion.iter().flatten().sum::<usize>(), rows.len());
        assert!(r.accuracy > 0.9, "{:?}: {}", r.method, r.accuracy);
    }
}
