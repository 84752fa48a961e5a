use sampleid_peaks::Peak;

use super::*;

fn peak(frame: u32, bin: u32, magnitude: f32) -> Peak {
    Peak { frame, bin, magnitude }
}

/// Deterministic pseudo-random numbers in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_003) as f64 / 1_000_003.0
    }
}

fn random_peaks(seed: u64, seconds: u32, per_second: u32) -> Vec<Peak> {
    let mut rng = Rng(seed);
    let mut p: Vec<Peak> = (0..seconds * per_second)
        .map(|_| {
            peak(
                (rng.next() * 250.0 * seconds as f64) as u32,
                (rng.next() * 512.0) as u32,
                rng.next() as f32,
            )
        })
        .collect();
    p.sort_by_key(|k| (k.frame, k.bin));
    p
}

#[test]
fn pair_hashes_pack_and_unpack() {
    for (bin, df, dt) in [(0, -127, 1), (1023, 127, 16383), (200, 0, 250), (513, -5, 4)] {
        assert_eq!(PairHash::unpack(PairHash::pack(bin, df, dt)), (bin, df, dt));
    }
}

#[test]
fn pairs_follow_the_target_zone_and_ignore_a_time_shift() {
    // Exact units here (the default quantises frames by 8 and bins by 2).
    let cfg = PairConfig {
        time_step: 1,
        bin_step: 1,
        ..PairConfig::default()
    };
    cfg.validate().unwrap();
    PairConfig::default().validate().unwrap();
    let p = random_peaks(1, 10, 30);
    let got = pairs(&p, &cfg);
    assert!(!got.is_empty());
    for h in &got {
        let (bin, df, dt) = PairHash::unpack(h.hash);
        assert!(
            (cfg.min_dt..=cfg.max_dt).contains(&dt) && df.unsigned_abs() <= cfg.max_df,
            "{h:?}"
        );
        assert!(p.iter().any(|k| k.frame == h.frame && k.bin == bin));
    }
    // At most fan_out targets per anchor.
    let mut per_anchor = std::collections::HashMap::new();
    for h in &got {
        *per_anchor.entry((h.frame, PairHash::unpack(h.hash).0)).or_insert(0) += 1;
    }
    assert!(per_anchor.values().all(|&n| n <= cfg.fan_out));
    // The same audio later: the same hashes, shifted anchors.
    let shifted: Vec<Peak> = p.iter().map(|k| peak(k.frame + 1000, k.bin, k.magnitude)).collect();
    let moved = pairs(&shifted, &cfg);
    assert_eq!(moved.len(), got.len());
    assert!(
        moved
            .iter()
            .zip(&got)
            .all(|(m, g)| m.hash == g.hash && m.frame == g.frame + 1000)
    );
}

#[test]
fn a_quad_hash_ignores_shifts_and_independent_scaling_of_both_axes() {
    let mut rng = Rng(5);
    for _ in 0..200 {
        let mut pt = || (rng.next() * 500.0, rng.next() * 300.0);
        let (a, b, c, d) = (pt(), pt(), pt(), pt());
        let h = quad_hash(a, b, c, d);
        let (st, sf, ot, of) = (
            0.7 + 0.6 * rng.next(),
            0.7 + 0.6 * rng.next(),
            1e3 * rng.next(),
            50.0 * rng.next(),
        );
        let m = |p: (f64, f64)| (st * p.0 + ot, sf * p.1 + of);
        let g = quad_hash(m(a), m(b), m(c), m(d));
        for k in 0..4 {
            assert!((h[k] - g[k]).abs() < 1e-3 * h[k].abs().max(1.0), "{h:?} vs {g:?}");
        }
    }
}

#[test]
fn quads_are_built_from_the_box_of_a_and_b() {
    let cfg = QuadConfig::reference();
    // A at (0, 100); B 1.3 s later at bin 200; C and D inside the box; E
    // strong but above B's bin; F strong but before A in time.
    let p = vec![
        peak(0, 100, 1.0),
        peak(50, 150, 0.9),  // C
        peak(100, 420, 5.0), // E: outside the box (bin > B)
        peak(200, 120, 0.8), // D
        peak(325, 200, 1.0), // B
    ];
    let q = quads(&p, &cfg);
    let first = q.iter().find(|k| k.a == (0, 100)).expect("a quad rooted at A");
    assert_eq!(first.b, (325, 200));
    let want = quad_hash((0.0, 100.0), (325.0, 200.0), (50.0, 150.0), (200.0, 120.0));
    assert_eq!(first.hash, want);
    assert!((first.strength - 0.8).abs() < 1e-6);
    assert!(first.hash.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn time_and_pitch_scaled_peaks_give_the_same_quad() {
    // Integer-exact scaling: time × 1.2 (frames ×6/5), frequency × 0.8 (bins ×4/5).
    let base = [(0u32, 100u32, 1.0f32), (50, 150, 0.9), (200, 120, 0.8), (300, 200, 1.0)];
    let scaled: Vec<Peak> = base.iter().map(|&(t, f, m)| peak(t * 6 / 5, f * 4 / 5, m)).collect();
    let orig: Vec<Peak> = base.iter().map(|&(t, f, m)| peak(t, f, m)).collect();
    let q = quads(&orig, &QuadConfig::query());
    let s = quads(&scaled, &QuadConfig::query());
    let root = |v: &[Quad], a: (u32, u32)| *v.iter().find(|k| k.a == a).expect("quad");
    let (x, y) = (root(&q, (0, 100)), root(&s, (0, 80)));
    for k in 0..4 {
        assert!((x.hash[k] - y.hash[k]).abs() < 1e-6, "{x:?} {y:?}");
    }
    // The scales of the match follow from A and B.
    let st = (y.b.0 - y.a.0) as f64 / (x.b.0 - x.a.0) as f64;
    let sf = (y.b.1 - y.a.1) as f64 / (x.b.1 - x.a.1) as f64;
    assert!((st - 1.2).abs() < 1e-9 && (sf - 0.8).abs() < 1e-9, "{st} {sf}");
}

#[test]
fn the_reference_side_keeps_the_strongest_quads_per_second() {
    let p = random_peaks(11, 20, 40);
    let all = quads(
        &p,
        &QuadConfig {
            per_second: 0,
            ..QuadConfig::reference()
        },
    );
    let kept = quads(&p, &QuadConfig::reference());
    assert!(
        all.len() > kept.len() && !kept.is_empty(),
        "{} {}",
        all.len(),
        kept.len()
    );
    let mut per = std::collections::HashMap::new();
    for q in &kept {
        *per.entry(q.a.0 / 250).or_insert(0usize) += 1;
    }
    assert!(per.values().all(|&n| n <= QuadConfig::reference().per_second));
    assert!(kept.windows(2).all(|w| w[0].a.0 <= w[1].a.0));
    // Kept quads are the strongest of their second.
    for (s, _) in per {
        let weakest_kept = kept
            .iter()
            .filter(|q| q.a.0 / 250 == s)
            .map(|q| q.strength)
            .fold(f32::MAX, f32::min);
        let dropped_stronger = all
            .iter()
            .filter(|q| q.a.0 / 250 == s && q.strength > weakest_kept)
            .count();
        assert!(dropped_stronger <= QuadConfig::reference().per_second);
    }
    // The query side is denser.
    assert!(quads(&p, &QuadConfig::query()).len() > kept.len());
}

#[test]
fn settings_are_checked() {
    assert!(
        QuadConfig {
            window_start: 0,
            ..QuadConfig::reference()
        }
        .validate()
        .is_err()
    );
    assert!(
        QuadConfig {
            window_end: 10,
            ..QuadConfig::reference()
        }
        .validate()
        .is_err()
    );
    assert!(
        PairConfig {
            max_df: 200,
            ..PairConfig::default()
        }
        .validate()
        .is_err()
    );
    assert!(
        PairConfig {
            min_dt: 0,
            ..PairConfig::default()
        }
        .validate()
        .is_err()
    );
    QuadConfig::query().validate().unwrap();
}

/// A library of random "songs" and a query cut from one of them with extra
/// (denser) peaks: both the pair and the quad path find it at the right place.
/// The peaks of `song` in frames `start..start + len`, moved to start at 0
/// and scaled by (time, frequency), plus `extra` peaks at half their
/// magnitude (another source over the excerpt), in frame order.
fn excerpt_with_extra_peaks(song: &[Peak], start: u32, len: u32, scale: (f64, f64), extra: Vec<Peak>) -> Vec<Peak> {
    let mut q: Vec<Peak> = song
        .iter()
        .filter(|p| (start..start + len).contains(&p.frame))
        .map(|p| {
            peak(
                ((p.frame - start) as f64 * scale.0) as u32,
                (p.bin as f64 * scale.1) as u32,
                p.magnitude,
            )
        })
        .collect();
    q.extend(extra.into_iter().map(|p| peak(p.frame, p.bin, p.magnitude * 0.5)));
    q.sort_by_key(|p| (p.frame, p.bin));
    q
}

#[test]
fn search_finds_a_cut_with_extra_peaks_and_rejects_another_song() {
    let mut index = LandmarkIndex::new(PairConfig::default());
    let songs: Vec<Vec<Peak>> = (0..5).map(|s| random_peaks(100 + s, 60, 9)).collect();
    for (s, p) in songs.iter().enumerate() {
        index.insert(s as u32 + 1, p.clone(), &quads(p, &QuadConfig::reference()));
    }
    // 10 s of song 3 from 20 s on, plus 8 extra peaks per second.
    let (start, len) = (20 * 250, 10 * 250);
    let q = excerpt_with_extra_peaks(&songs[2], start, len, (1.0, 1.0), random_peaks(999, 10, 8));
    let cfg = SearchConfig::default();
    let query = QueryLandmarks::new(
        q,
        len,
        513,
        &PairConfig::default(),
        &QuadConfig::query(),
        cfg.query_fan_out,
    );
    let all = search::verify_all(&index, &query, &cfg);
    assert!(
        all.iter().any(|m| m.method == Method::Pairs && m.song == 3),
        "no pair hypothesis: {all:?}"
    );
    assert!(
        all.iter().any(|m| m.method == Method::Quads && m.song == 3),
        "no quad hypothesis: {all:?}"
    );
    let found = search(&index, &query, &cfg);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].song, 3);
    assert!((found[0].tau - start as f64).abs() <= 2.0, "{found:?}");
    assert!(found[0].score > 0.9, "{found:?}");
    // Another song's peaks alone: nothing verifies.
    let other: Vec<Peak> = random_peaks(4242, 10, 17);
    let query = QueryLandmarks::new(
        other,
        len,
        513,
        &PairConfig::default(),
        &QuadConfig::query(),
        cfg.query_fan_out,
    );
    assert!(search(&index, &query, &cfg).is_empty());
}

/// Every stored quad a probe should find, by brute force: inside the hash
/// box (on the grid's u16 quantisation), ρ in range, song live.
fn brute_force(stored: &[(u32, Quad)], live: &dyn Fn(u32) -> bool, p: &index::QuadProbe) -> Vec<(u32, Quad)> {
    let q = |v: f32| (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
    let mut out: Vec<(u32, Quad)> = stored
        .iter()
        .filter(|(song, quad)| {
            let inside = (0..4)
                .all(|k| q(p.hash[k] - p.radius) <= q(quad.hash[k]) && q(quad.hash[k]) <= q(p.hash[k] + p.radius));
            let (a, b) = (quad.a.1 as f64, quad.b.1 as f64);
            let rho_ok = b > a && a >= p.rho.0 * (b - a) && a <= p.rho.1 * (b - a);
            inside && rho_ok && live(*song)
        })
        .map(|(s, quad)| {
            (
                *s,
                Quad {
                    hash: quad.hash.map(|v| q(v) as f32 / 65535.0),
                    strength: 0.0,
                    ..*quad
                },
            )
        })
        .collect();
    out.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    out
}

#[test]
fn the_quad_grid_finds_what_a_brute_force_scan_finds_before_and_after_merging() {
    // 40 songs of random peaks (over 40,000 reference quads: automatic
    // merges into the array at 16,384 and 32,768, then a pending
    // remainder), one of them deleted.
    let mut index = LandmarkIndex::new(PairConfig::default());
    let mut stored = Vec::new();
    for song in 1..=40u32 {
        let peaks = random_peaks(song as u64 * 7919, 120, 12);
        let qs = quads(&peaks, &QuadConfig::reference());
        stored.extend(qs.iter().map(|q| (song, *q)));
        index.insert(song, peaks, &qs);
    }
    assert!(stored.len() > 40_000, "{} quads", stored.len());
    index.remove(17);
    // Probes near every 37th stored quad (so that they find something),
    // moved in hash space, with wide and narrow ρ ranges and a few radii.
    let mut rng = Rng(424_242);
    let probes: Vec<index::QuadProbe> = stored
        .iter()
        .step_by(37)
        .enumerate()
        .map(|(i, (_, q))| {
            let df = q.b.1 as f64 - q.a.1 as f64;
            let w = [3.0, 30.0, 0.5][i % 3];
            index::QuadProbe {
                hash: q.hash.map(|v| v + (rng.next() as f32 - 0.5) * 0.04),
                radius: [0.03, 0.01, 0.05][i % 3],
                rho: ((q.a.1 as f64 - w) / df, (q.a.1 as f64 + w) / df),
            }
        })
        .collect();
    assert!(probes.len() > 200);
    let live = |s: u32| s != 17;
    let found = |index: &LandmarkIndex| {
        let mut per_probe: Vec<Vec<(u32, Quad)>> = vec![Vec::new(); probes.len()];
        index.quads_near_each(&probes, &mut |i, r| per_probe[i].push((r.song, r.quad)));
        for v in &mut per_probe {
            v.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
        }
        per_probe
    };
    let expected: Vec<Vec<(u32, Quad)>> = probes.iter().map(|p| brute_force(&stored, &live, p)).collect();
    assert!(
        expected.iter().map(Vec::len).sum::<usize>() > 100,
        "the probes must find something"
    );
    assert!(expected.iter().flatten().all(|(s, _)| *s != 17));
    // Wide probes (radius above half a grid cell, so that their box can
    // span three cells in a coordinate) must find entries more than half a
    // cell away, or the test would not see a wide probe that reads too few
    // cells.
    let beyond_copies = probes
        .iter()
        .zip(&expected)
        .filter(|(p, _)| p.radius > 0.035)
        .flat_map(|(p, found)| found.iter().map(move |(_, q)| (p, q)))
        .filter(|(p, q)| [1, 3].iter().any(|&d| (q.hash[d] - p.hash[d]).abs() > 0.035))
        .count();
    assert!(beyond_copies > 5, "{beyond_copies} entries beyond the copies");
    assert_eq!(found(&index), expected, "merged array and pending map together");
    index.seal();
    assert_eq!(found(&index), expected, "everything merged");
    // One probe at a time gives the same.
    for (i, p) in probes.iter().enumerate().step_by(10) {
        let mut one = Vec::new();
        index.quads_near(p.hash, p.radius, p.rho, &mut |r| one.push((r.song, r.quad)));
        one.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
        assert_eq!(one, expected[i]);
    }
}

#[test]
fn the_quad_search_gives_the_same_answers_on_one_thread_and_on_several() {
    let mut index = LandmarkIndex::new(PairConfig::default());
    let songs: Vec<Vec<Peak>> = (0..6).map(|s| random_peaks(300 + s, 60, 12)).collect();
    for (s, p) in songs.iter().enumerate() {
        index.insert(s as u32 + 1, p.clone(), &quads(p, &QuadConfig::reference()));
    }
    index.seal();
    // 20 s of song 4, stretched in time by 1.1 and in frequency by 0.95,
    // with extra peaks: enough query quads to be split between threads.
    let (start, len) = (15 * 250, 20 * 250);
    let q = excerpt_with_extra_peaks(&songs[3], start, len, (1.1, 0.95), random_peaks(77, 22, 10));
    let cfg = SearchConfig {
        pairs_decisive: 2.0,
        ..SearchConfig::default()
    };
    let query = QueryLandmarks::new(
        q,
        22 * 250,
        513,
        &PairConfig::default(),
        &QuadConfig::query(),
        cfg.query_fan_out,
    );
    assert!(
        query.quads().len() > 4 * 1024,
        "too few query quads to split: {}",
        query.quads().len()
    );
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| format!("{:?}", search::verify_all(&index, &query, &cfg)))
    };
    let one = on(1);
    assert!(one.contains("Quads"), "no quad hypothesis: {one}");
    for threads in [2, 3, 4] {
        assert_eq!(on(threads), one, "{threads} threads");
    }
}

/// Pooled levels of a query whose spectrogram is `floor` everywhere except
/// at `peaks` (their magnitudes, spread over ±1 frame and bin).
fn levels_of(peaks: &[Peak], frames: u32, bins: u32, floor: f32) -> QueryLevels {
    let mut grid = vec![floor; frames as usize * bins as usize];
    for p in peaks {
        for f in p.frame.saturating_sub(1)..=(p.frame + 1).min(frames - 1) {
            for b in p.bin.saturating_sub(1)..=(p.bin + 1).min(bins - 1) {
                let c = &mut grid[f as usize * bins as usize + b as usize];
                *c = c.max(p.magnitude);
            }
        }
    }
    let mut b = LevelsBuilder::new(bins as usize);
    for col in grid.chunks(bins as usize) {
        b.push(col);
    }
    b.finish()
}

#[test]
fn verification_tells_a_song_under_other_sound_from_another_recording_sharing_its_notes() {
    let mut index = LandmarkIndex::new(PairConfig::default());
    let song = random_peaks(300, 60, 17);
    index.insert(1, song.clone(), &quads(&song, &QuadConfig::reference()));
    let (start, len, bins) = (20 * 250, 10 * 250, 513);
    let cfg = SearchConfig::default();
    let make = |peaks: Vec<Peak>, loud: &[Peak], floor: f32| {
        QueryLandmarks::new(
            peaks,
            len,
            bins,
            &PairConfig::default(),
            &QuadConfig::query(),
            cfg.query_fan_out,
        )
        .with_levels(levels_of(loud, len, bins, floor))
    };
    // The song's excerpt with other sound over it: every note still there
    // (the other sound's peaks hide some), and a noise floor.
    let other = random_peaks(77, 10, 12);
    let heard = excerpt_with_extra_peaks(&song, start, len, (1.0, 1.0), other.clone());
    let mut loud = heard.clone();
    loud.extend(other.iter().map(|p| peak(p.frame, p.bin, p.magnitude * 2.0)));
    let q = make(heard.clone(), &loud, 1e-3);
    let found = search(&index, &q, &cfg);
    assert_eq!(found.len(), 1, "{found:?}");
    let under = found[0].absent.expect("levels give an absence share");
    assert!(under < 0.05, "{found:?}");
    // Another piece sharing half of the song's notes (every other peak),
    // with notes of its own: verification still finds the song (the shared
    // half matches), but the query is quiet where the song's other notes are.
    let shared: Vec<Peak> = song
        .iter()
        .filter(|p| (start..start + len).contains(&p.frame))
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, p)| peak(p.frame - start, p.bin, p.magnitude))
        .collect();
    let mut piece = shared.clone();
    piece.extend(random_peaks(78, 10, 10));
    piece.sort_by_key(|p| (p.frame, p.bin));
    let q = make(piece.clone(), &piece, 1e-4);
    let all = search::candidates(&index, &q, &cfg);
    let m = all
        .iter()
        .find(|m| m.song == 1)
        .expect("the shared notes give a hypothesis");
    assert!(m.score > 0.2, "{m:?}");
    let lacking = m.absent.expect("levels give an absence share");
    assert!(lacking > 0.3, "{m:?}");
    // Without levels there is no share.
    let q = QueryLandmarks::new(
        piece,
        len,
        bins,
        &PairConfig::default(),
        &QuadConfig::query(),
        cfg.query_fan_out,
    );
    assert!(search::candidates(&index, &q, &cfg).iter().all(|m| m.absent.is_none()));
}
