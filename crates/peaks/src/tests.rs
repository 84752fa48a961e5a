use super::*;

/// Deterministic pseudo-random numbers in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_003) as f32 / 1_000_003.0
    }
}

#[test]
fn running_max_equals_the_naive_maximum() {
    let mut rng = Rng(7);
    let (mut out, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for n in [0usize, 1, 2, 5, 17, 100] {
        for half in [0usize, 1, 3, 8, 40] {
            let x: Vec<f32> = (0..n).map(|_| (rng.next() * 10.0).floor()).collect();
            running_max(&x, half, &mut out, &mut a, &mut b);
            let naive: Vec<f32> = (0..n)
                .map(|i| {
                    x[i.saturating_sub(half)..=(i + half).min(n - 1)]
                        .iter()
                        .fold(f32::MIN, |m, &v| m.max(v))
                })
                .collect();
            assert_eq!(out, naive, "n {n} half {half}");
        }
    }
}

/// The rule of the crate docs, by brute force over a whole spectrogram.
fn naive_peaks(cols: &[Vec<f32>], frames: usize, height: usize, floor: f32) -> Vec<(u32, u32)> {
    let (ht, hf) = (frames / 2, height / 2);
    let (n, bins) = (cols.len(), cols[0].len());
    let mut out = Vec::new();
    for c in 0..n {
        for f in 0..bins {
            let v = cols[c][f];
            let (t0, t1) = (c.saturating_sub(ht), (c + ht).min(n - 1));
            let (g0, g1) = (f.saturating_sub(hf), (f + hf).min(bins - 1));
            let mut is_max = v >= floor;
            for (t, col) in cols.iter().enumerate().take(t1 + 1).skip(t0) {
                for (g, &u) in col.iter().enumerate().take(g1 + 1).skip(g0) {
                    if u > v || (u == v && (t < c || (t == c && g < f))) {
                        is_max = false;
                    }
                }
            }
            let mut min = f32::INFINITY;
            for col in &cols[c.saturating_sub(1)..=(c + 1).min(n - 1)] {
                for &u in &col[f.saturating_sub(1)..=(f + 1).min(bins - 1)] {
                    min = min.min(u);
                }
            }
            if is_max && min < v {
                out.push((c as u32, f as u32));
            }
        }
    }
    out
}

#[test]
fn the_streaming_filter_equals_brute_force_including_ties_and_flats() {
    let mut rng = Rng(42);
    for (n, bins, frames, height, levels) in [
        (60, 30, 7, 5, 4.0),
        (200, 40, 31, 11, 50.0),
        (5, 20, 31, 11, 3.0),
        (120, 9, 3, 3, 2.0),
        (90, 64, 151, 75, 1000.0),
    ] {
        // Quantised values make ties and flat regions common.
        let cols: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..bins).map(|_| (rng.next() * levels).floor()).collect())
            .collect();
        let floor = 1.0;
        let mut p = PeakPicker::with_shape(bins, frames, height, floor);
        let mut got = Vec::new();
        for c in &cols {
            p.push(c, &mut |pk| got.push((pk.frame, pk.bin)));
        }
        p.finish(&mut |pk| got.push((pk.frame, pk.bin)));
        assert_eq!(
            got,
            naive_peaks(&cols, frames, height, floor),
            "{n}×{bins}, filter {frames}×{height}"
        );
    }
}

fn tone(hz: f64, start_s: f64, len_s: f64, total_s: f64, amp: f32) -> Vec<f32> {
    let sr = 16_000.0;
    (0..(total_s * sr) as usize)
        .map(|i| {
            let t = i as f64 / sr;
            if t >= start_s && t < start_s + len_s {
                amp * (2.0 * std::f64::consts::PI * hz * t).sin() as f32
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn tone_bursts_give_peaks_at_their_time_and_frequency_and_silence_none() {
    let cfg = PeakConfig::reference();
    let mut x = tone(500.0, 0.5, 0.1, 3.0, 0.5);
    for (a, b) in x.iter_mut().zip(tone(1500.0, 2.0, 0.1, 3.0, 0.5)) {
        *a += b;
    }
    let p = peaks(&x, &cfg).unwrap();
    assert!(!p.is_empty());
    for (hz, at) in [(500.0, 0.55), (1500.0, 2.05)] {
        let near: Vec<&Peak> = p
            .iter()
            .filter(|k| (k.hz(&cfg) - hz).abs() < 2.0 * cfg.bin_hz())
            .collect();
        assert!(!near.is_empty(), "no peak near {hz} Hz: {p:?}");
        let best = near.iter().max_by(|a, b| a.magnitude.total_cmp(&b.magnitude)).unwrap();
        assert!(
            (best.time_s(&cfg) - at).abs() < 0.1,
            "{hz} Hz at {} s",
            best.time_s(&cfg)
        );
        assert!((best.magnitude - 0.5).abs() < 0.1, "{best:?}");
    }
    // Nothing in the silence between and after the bursts.
    assert!(p.iter().all(|k| {
        let t = k.time_s(&cfg);
        (0.3..0.8).contains(&t) || (1.8..2.3).contains(&t)
    }));
    assert!(peaks(&vec![0.0; 16_000], &cfg).unwrap().is_empty());
}

#[test]
fn a_pitch_shift_scales_peak_frequencies() {
    let cfg = PeakConfig::query();
    let top = |hz: f64| {
        let p = peaks(&tone(hz, 0.2, 0.5, 1.0, 0.5), &cfg).unwrap();
        p.iter().max_by(|a, b| a.magnitude.total_cmp(&b.magnitude)).unwrap().bin as f64
    };
    let (a, b) = (top(1000.0), top(1200.0));
    assert!((b / a - 1.2).abs() < 0.02, "{a} → {b}");
}

/// Many partials with random onsets and decays: music-like peak structure.
fn busy_signal(seconds: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let n = (seconds * 16_000.0) as usize;
    let mut x = vec![0.0f32; n];
    for _ in 0..(seconds * 12.0) as usize {
        let hz = 80.0 + 3500.0 * rng.next() as f64;
        let start = (rng.next() as f64 * n as f64) as usize;
        let len = 1600 + (rng.next() * 8000.0) as usize;
        let amp = 0.05 + 0.2 * rng.next();
        let end = (start + len).min(n);
        for (i, v) in x.iter_mut().enumerate().take(end).skip(start) {
            let t = (i - start) as f32 / len as f32;
            *v += amp * (1.0 - t) * (2.0 * std::f64::consts::PI * hz * i as f64 / 16_000.0).sin() as f32;
        }
    }
    x
}

#[test]
fn streaming_in_any_block_size_gives_the_same_peaks() {
    let cfg = PeakConfig::reference();
    let x = busy_signal(4.0, 3);
    let whole = peaks(&x, &cfg).unwrap();
    assert!(whole.len() > 10, "{}", whole.len());
    for block in [1usize, 63, 1000, 16_384] {
        let mut s = PeakStream::new(&cfg).unwrap();
        let mut got = Vec::new();
        for chunk in x.chunks(block) {
            s.push(chunk, &mut |p| got.push(p));
        }
        s.finish(&mut |p| got.push(p));
        assert_eq!(got, whole, "block {block}");
    }
    // Peaks come out in frame order.
    assert!(whole.windows(2).all(|w| w[0].frame <= w[1].frame));
}

#[test]
fn the_query_side_is_denser_than_the_reference_side() {
    let x = busy_signal(6.0, 9);
    let r = peaks(&x, &PeakConfig::reference()).unwrap().len();
    let q = peaks(&x, &PeakConfig::query()).unwrap().len();
    assert!(q as f64 > 1.2 * r as f64, "query {q} vs reference {r}");
}

#[test]
fn settings_are_checked() {
    let c = PeakConfig::reference();
    assert_eq!((c.n_fft(), c.hop(), c.bins()), (2048, 64, 513));
    assert!((c.frame_rate() - 250.0).abs() < 1e-9);
    for bad in [
        PeakConfig {
            filter_frames: 150,
            ..c.clone()
        },
        PeakConfig {
            hop_s: 0.0,
            ..c.clone()
        },
        PeakConfig {
            max_hz: 1.0,
            ..c.clone()
        },
        PeakConfig {
            floor_db: f32::NAN,
            ..c.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}
