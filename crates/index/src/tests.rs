use super::*;

fn unit(seed: u64, dim: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<f32> = (0..dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn layout() -> Layout {
    Layout {
        encoder: "enc-1".into(),
        reranker: "rr-1".into(),
        dim: 16,
        node_bytes: 8,
        hop_s: 0.512,
    }
}

fn song(seed: u64, n: usize) -> (Vec<f32>, Vec<u8>) {
    let fps = (0..n).flat_map(|j| unit(seed * 1000 + j as u64, 16)).collect();
    let nodes = (0..n * 8).map(|i| (seed as usize + i) as u8).collect();
    (fps, nodes)
}

fn chroma(seed: u64, frames: usize) -> Vec<u8> {
    (0..frames * CHROMA_BYTES)
        .map(|i| (seed as usize * 31 + i) as u8)
        .collect()
}

fn cfg(ann: AnnKind) -> IndexConfig {
    IndexConfig {
        ann,
        ..IndexConfig::default()
    }
}

#[test]
fn songs_survive_reopening_and_are_found() {
    for kind in [AnnKind::Exact, AnnKind::Hnsw, AnnKind::IvfPq] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(kind)).unwrap();
            for s in 1..=3u64 {
                let (f, n) = song(s, 20);
                lib.add(&format!("song{s}.wav"), &format!("h{s}"), 10.0, &f, &n, &chroma(s, 7))
                    .unwrap();
            }
            lib.save_ann().unwrap();
        }
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.songs().len(), 3);
        assert_eq!(lib.rows(), 60);
        let (f, n) = song(2, 20);
        assert_eq!(lib.nodes(20 + 5), &n[5 * 8..6 * 8]);
        let got = lib.fingerprint(20 + 5);
        assert!(got.iter().zip(&f[5 * 16..6 * 16]).all(|(a, b)| (a - b).abs() < 1e-3));
        let near = lib.nearest(&f[7 * 16..8 * 16], 3).unwrap();
        assert_eq!(near[0].0, 27, "{kind:?}");
        assert!(near[0].1 > 0.99);
        let (s, seg) = lib.song_of(27).unwrap();
        assert_eq!((s.path.as_str(), seg), ("song2.wav", 7));
        let stored: Vec<u8> = lib.chroma(s).concat();
        assert_eq!(stored, chroma(2, 7));
        assert!(lib.stats().unwrap().bytes > 0);
    }
}

#[test]
fn deleted_songs_are_never_returned_and_duplicates_are_skipped() {
    for kind in [AnnKind::Exact, AnnKind::Hnsw, AnnKind::IvfPq] {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(kind)).unwrap();
        let (f1, n1) = song(1, 10);
        let (f2, n2) = song(2, 10);
        let a = lib.add("a.wav", "ha", 5.0, &f1, &n1, &[]).unwrap();
        let again = lib.add("copy-of-a.wav", "ha", 5.0, &f1, &n1, &[]).unwrap();
        assert_eq!(again.id, a.id, "same content is indexed once");
        lib.add("b.wav", "hb", 5.0, &f2, &n2, &[]).unwrap();
        assert!(lib.delete(a.id).unwrap());
        assert!(!lib.delete(a.id).unwrap());
        let near = lib.nearest(&f1[..16], 5).unwrap();
        assert!(near.iter().all(|&(r, _)| r >= 10), "{kind:?}: {near:?}");
        lib.save_ann().unwrap();
        drop(lib);
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.songs().len(), 1);
        let st = lib.stats().unwrap();
        assert_eq!((st.segments, st.dead_segments), (10, 10));
        assert!(lib.nearest(&f1[..16], 5).unwrap().iter().all(|&(r, _)| r >= 10));
    }
}

#[test]
fn uncommitted_rows_are_cut_and_a_stale_ann_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
        let (f, n) = song(1, 10);
        lib.add("a.wav", "ha", 5.0, &f, &n, &[]).unwrap();
        lib.save_ann().unwrap();
        let (f, n) = song(2, 10);
        lib.add("b.wav", "hb", 5.0, &f, &n, &[]).unwrap();
        // Killed here: the ANN file covers only song a.
    }
    // A half-written song: rows appended, never committed.
    use std::io::Write;
    let mut fp = File::options()
        .append(true)
        .open(dir.path().join("fingerprints.f16"))
        .unwrap();
    fp.write_all(&[7u8; 2 * 16 * 3 + 5]).unwrap();
    drop(fp);
    let lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
    assert_eq!(lib.songs().len(), 2);
    let len = std::fs::metadata(dir.path().join("fingerprints.f16")).unwrap().len();
    assert_eq!(len, 20 * 16 * 2, "garbage after the committed rows is cut");
    let (f, _) = song(2, 10);
    assert_eq!(
        lib.nearest(&f[3 * 16..4 * 16], 1).unwrap()[0].0,
        13,
        "song b is in the ANN index"
    );
}

/// Fuzzing damaged libraries (`fuzz/regressions/library-ann-usearch-overwritten-segfault`):
/// usearch trusts the graph it loads, and a graph whose neighbour lists
/// were overwritten made a search read out of bounds (a segmentation
/// fault). A saved graph is loaded only when its bytes are the ones
/// written (their SHA-256 is recorded beside them); otherwise it is rebuilt
/// from the rows, as is one saved before the digest was recorded.
#[test]
fn a_damaged_saved_ann_graph_is_rebuilt_not_searched() {
    for (file, json) in [("ann.usearch", "ann.json"), ("shingles.usearch", "shingles.json")] {
        let dir = tempfile::tempdir().unwrap();
        let model = shingle_model(&[101, 102, 103], 20);
        {
            let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
            lib.enable_shingles(model.clone(), 10.0).unwrap();
            for s in 1..=3u64 {
                let (f, n) = song(s, 20);
                lib.add(
                    &format!("song{s}.wav"),
                    &format!("h{s}"),
                    60.0,
                    &f,
                    &n,
                    &tune(100 + s, 600),
                )
                .unwrap();
            }
            lib.save_ann().unwrap();
        }
        let saved = std::fs::read_to_string(dir.path().join(json)).unwrap();
        assert!(saved.contains("\"sha256\":\""), "{json}: {saved}");
        // The neighbour lists (the end of the file) overwritten, the size kept.
        let path = dir.path().join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let half = bytes.len() / 2;
        bytes[half..].fill(0x7f);
        std::fs::write(&path, &bytes).unwrap();
        let mut lib = Library::open(dir.path()).unwrap();
        let (f, _) = song(2, 20);
        assert_eq!(lib.nearest(&f[7 * 16..8 * 16], 3).unwrap()[0].0, 27, "{file}");
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        assert_eq!(shingle_top(&lib, 102, &model).0, ids_of(&lib, "song2.wav"), "{file}");
        // A graph saved before the digest was recorded is rebuilt too.
        drop(lib);
        let old: serde_json::Value = serde_json::from_str(&saved).unwrap();
        let mut old = old.as_object().unwrap().clone();
        old.remove("sha256");
        std::fs::write(dir.path().join(json), serde_json::to_vec(&old).unwrap()).unwrap();
        let mut lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.nearest(&f[7 * 16..8 * 16], 3).unwrap()[0].0, 27, "{file}");
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        assert_eq!(shingle_top(&lib, 102, &model).0, ids_of(&lib, "song2.wav"), "{file}");
    }
}

#[test]
fn a_second_writer_and_a_different_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _w = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
    assert!(matches!(
        Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)),
        Err(IndexError::Locked(_))
    ));
    drop(_w);
    let other = Layout {
        encoder: "enc-2".into(),
        ..layout()
    };
    let e = Library::open_writer(dir.path(), &other, &cfg(AnnKind::Exact)).unwrap_err();
    assert!(e.to_string().contains("enc-1"), "{e}");
    let missing = tempfile::tempdir().unwrap();
    assert!(matches!(Library::open(missing.path()), Err(IndexError::Missing(_))));
}

#[test]
fn rfc3339_dates_are_well_formed() {
    let t = now_rfc3339();
    assert_eq!(t.len(), 20, "{t}");
    assert!(t.starts_with("20") && t.ends_with('Z'));
}

#[test]
fn ivf_pq_trains_when_the_library_is_large_enough_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = IndexConfig {
        ann: AnnKind::IvfPq,
        ivfpq: IvfPqConfig {
            lists: 8,
            bytes: 4,
            nprobe: 8,
            train_rows: 300,
            ..IvfPqConfig::default()
        },
        ..IndexConfig::default()
    };
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg).unwrap();
        for s in 1..=4u64 {
            let (f, n) = song(s, 100);
            lib.add(&format!("s{s}.wav"), &format!("h{s}"), 50.0, &f, &n, &[])
                .unwrap();
            // Exact search before training, IVF-PQ after: the same answer here.
            assert_eq!(lib.nearest(&f[10 * 16..11 * 16], 1).unwrap()[0].0, (s - 1) * 100 + 10);
        }
        lib.save_ann().unwrap();
    }
    assert!(dir.path().join("ivfpq.bin").exists(), "trained at 300 rows and saved");
    let lib = Library::open(dir.path()).unwrap();
    let (f, _) = song(3, 100);
    let mut hits = 0;
    for j in 0..100 {
        let near = lib.nearest(&f[j * 16..(j + 1) * 16], 1).unwrap();
        hits += (near[0].0 == 200 + j as u64) as usize;
    }
    assert!(
        hits >= 95,
        "exact re-scoring of the PQ candidates finds the row itself: {hits}/100"
    );
    drop(lib);
    // A damaged list count (fuzzing: `fuzz/regressions/library-ivfpq-lists-huge`,
    // a query panicked) is refused: the quantisers are trained again.
    let path = dir.path().join("ivfpq.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16..24].copy_from_slice(&0x0fff_ffff_ffff_ffffu64.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let lib = Library::open(dir.path()).unwrap();
    assert_eq!(lib.nearest(&f[7 * 16..8 * 16], 1).unwrap()[0].0, 207);
}

#[test]
fn uncommitted_chroma_is_cut_and_old_libraries_gain_chroma() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        let (f, n) = song(1, 10);
        lib.add("a.wav", "ha", 5.0, &f, &n, &chroma(1, 50)).unwrap();
        // Make it look like a library from before chroma was stored.
        let conn = lib.conn.lock().unwrap();
        conn.execute_batch(
            "ALTER TABLE songs DROP COLUMN chroma_first; ALTER TABLE songs DROP COLUMN chroma_frames; \
             DELETE FROM meta WHERE key='chroma_rows';",
        )
        .unwrap();
    }
    std::fs::remove_file(dir.path().join("chroma.u8")).unwrap();
    {
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.songs()[0].chroma_frames, 0);
        assert!(lib.chroma(&lib.songs()[0]).is_empty());
    }
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        let (f, n) = song(2, 10);
        lib.add("b.wav", "hb", 5.0, &f, &n, &chroma(2, 30)).unwrap();
        assert!(matches!(
            lib.add("c.wav", "hc", 5.0, &f, &n, &[0u8; 13]),
            Err(IndexError::Input(_))
        ));
    }
    // A killed writer left half a song's chroma behind.
    use std::io::Write;
    let mut ch = File::options().append(true).open(dir.path().join("chroma.u8")).unwrap();
    ch.write_all(&[9u8; 12 * 4]).unwrap();
    drop(ch);
    let lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
    assert_eq!(std::fs::metadata(dir.path().join("chroma.u8")).unwrap().len(), 30 * 12);
    assert_eq!(lib.chroma_rate(), None, "not recorded by this test's writers");
    let mut lib = lib;
    lib.ensure_chroma_rate(10.0).unwrap();
    lib.ensure_chroma_rate(10.0).unwrap();
    assert!(matches!(lib.ensure_chroma_rate(5.0), Err(IndexError::Mismatch { .. })));
    assert_eq!(lib.chroma_rate(), Some(10.0));
    drop(lib);
    let reopened = Library::open(dir.path()).unwrap();
    assert_eq!(reopened.chroma_rate(), Some(10.0), "kept in the library");
    drop(reopened);
    let lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
    let b = lib.find_path("b.wav")[0];
    assert_eq!(lib.chroma(b).concat(), chroma(2, 30));
    assert!(lib.chroma(lib.find_path("a.wav")[0]).is_empty());
}

#[test]
fn many_concurrent_searches_all_succeed() {
    // A server under load searches from many threads at once; usearch has a
    // fixed number of search contexts, and a search that found none failed.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
        for s in 1..=4u64 {
            let (f, n) = song(s, 50);
            lib.add(&format!("song{s}.wav"), &format!("h{s}"), 30.0, &f, &n, &[])
                .unwrap();
        }
        lib.save_ann().unwrap();
    }
    let lib = Library::open(dir.path()).unwrap();
    std::thread::scope(|scope| {
        for t in 0..64u64 {
            let lib = &lib;
            scope.spawn(move || {
                for i in 0..200u64 {
                    let q = unit((1 + (t + i) % 4) * 1000 + i % 50, 16);
                    let got = lib.nearest(&q, 5).expect("every search succeeds");
                    assert_eq!(got.len(), 5);
                }
            });
        }
    });
}

fn landmarks(seed: u32, n: u32) -> SongLandmarks {
    let peaks: Vec<Peak> = (0..n)
        .map(|i| Peak {
            frame: i * 25 + seed,
            bin: (i * 37 + seed * 11) % 500 + 5,
            magnitude: 0.5,
        })
        .collect();
    let quads = (0..n / 4)
        .map(|i| Quad {
            hash: [0.6, 0.2 + (i % 5) as f32 * 0.1, 0.8, 0.5],
            a: (i * 100, 50 + seed),
            b: (i * 100 + 300, 120 + seed),
            strength: 0.25,
        })
        .collect();
    SongLandmarks { peaks, quads }
}

#[test]
fn landmark_rows_are_committed_with_their_song_and_cut_back_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (f, n) = song(1, 4);
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        lib.add_with_landmarks("a.wav", "ha", 10.0, &f, &n, &[], &landmarks(1, 40))
            .unwrap();
        lib.add_with_landmarks("b.wav", "hb", 10.0, &f, &n, &[], &landmarks(2, 80))
            .unwrap();
        assert_eq!(lib.landmarks().sizes().0, 2);
    }
    // A writer killed between appending a third song's rows and its commit.
    use std::io::Write;
    for (file, bytes) in [("peaks.lm", 8 * 7), ("quads.lm", 20 * 3)] {
        let mut w = File::options().append(true).open(dir.path().join(file)).unwrap();
        w.write_all(&vec![7u8; bytes]).unwrap();
    }
    {
        let reader = Library::open(dir.path()).unwrap();
        let b = reader.find_hash("hb").unwrap().clone();
        let stored = reader.song_landmarks(&b).unwrap();
        let want = landmarks(2, 80);
        assert_eq!(stored.peaks.len(), 80);
        assert_eq!(stored.quads.len(), 20);
        assert_eq!(stored.peaks[3].frame, want.peaks[3].frame);
        assert_eq!(stored.peaks[3].bin, want.peaks[3].bin);
        assert!((stored.quads[2].hash[1] - want.quads[2].hash[1]).abs() < 1e-4);
        assert_eq!(stored.quads[2].b, want.quads[2].b);
        assert_eq!(reader.landmarks().sizes(), (2, 120, reader.landmarks().sizes().2, 30));
    }
    let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
    assert_eq!(std::fs::metadata(dir.path().join("peaks.lm")).unwrap().len(), 120 * 8);
    assert_eq!(std::fs::metadata(dir.path().join("quads.lm")).unwrap().len(), 30 * 20);
    // Deleting the newest song never hands its id (and its postings) to the next one.
    let b = lib.find_hash("hb").unwrap().id;
    assert!(lib.delete(b).unwrap());
    assert!(!lib.landmarks().contains(b as u32));
    let c = lib
        .add_with_landmarks("c.wav", "hc", 10.0, &f, &n, &[], &landmarks(3, 40))
        .unwrap();
    assert!(c.id > b, "ids are not reused: {} after {b}", c.id);
    assert_eq!(lib.song_by_key(c.id as u32).map(|s| s.path.as_str()), Some("c.wav"));
    drop(lib);
    let lib = Library::open(dir.path()).unwrap();
    assert_eq!(lib.landmarks().sizes().0, 2, "a and c");
    assert!(lib.landmarks().peaks(c.id as u32).is_some());
}

#[test]
fn libraries_from_before_landmarks_open_and_gain_them() {
    let dir = tempfile::tempdir().unwrap();
    let (f, n) = song(1, 4);
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        lib.add("a.wav", "ha", 5.0, &f, &n, &[]).unwrap();
        let conn = lib.conn.lock().unwrap();
        conn.execute_batch(
            "ALTER TABLE songs DROP COLUMN peaks_first; ALTER TABLE songs DROP COLUMN peaks; \
             ALTER TABLE songs DROP COLUMN quads_first; ALTER TABLE songs DROP COLUMN quads; \
             DELETE FROM meta WHERE key IN ('peak_rows', 'quad_rows', 'landmarks');",
        )
        .unwrap();
    }
    std::fs::remove_file(dir.path().join("peaks.lm")).unwrap();
    std::fs::remove_file(dir.path().join("quads.lm")).unwrap();
    {
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.songs()[0].peaks, 0);
        assert_eq!(lib.landmarks().sizes().0, 0);
    }
    let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
    lib.add_with_landmarks("b.wav", "hb", 5.0, &f, &n, &[], &landmarks(2, 40))
        .unwrap();
    assert_eq!(lib.landmarks().sizes().0, 1);
    assert_eq!(lib.songs().len(), 2);
}

/// A library of the previous landmark version keeps it (its songs are
/// searched, and a writer tells the engine which quads to add); one of a
/// version this build does not know is refused for writing and its
/// landmarks are not searched.
#[test]
fn libraries_of_the_previous_landmark_version_keep_it_and_unknown_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (f, n) = song(1, 4);
    let set_version = |lib: &Library, v: &str| {
        let conn = lib.conn.lock().unwrap();
        conn.execute("UPDATE meta SET value=?1 WHERE key='landmarks'", [v])
            .unwrap();
    };
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        assert_eq!(lib.landmark_version(), Some(sampleid_landmarks::STORED_VERSION));
        lib.add_with_landmarks("a.wav", "ha", 5.0, &f, &n, &[], &landmarks(1, 40))
            .unwrap();
        set_version(&lib, sampleid_landmarks::STORED_VERSION_V2);
    }
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        assert_eq!(lib.landmark_version(), Some(sampleid_landmarks::STORED_VERSION_V2));
        assert!(
            lib.landmarks().contains(lib.songs()[0].id as u32),
            "its landmarks are searched"
        );
        lib.add_with_landmarks("b.wav", "hb", 5.0, &f, &n, &[], &landmarks(2, 40))
            .unwrap();
        assert_eq!(lib.landmarks().sizes().0, 2);
        set_version(&lib, "peaks-from-the-future/v9");
    }
    let err = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap_err();
    assert!(err.to_string().contains("v9"), "{err}");
    let lib = Library::open(dir.path()).unwrap();
    assert_eq!(lib.songs().len(), 2, "a reader still lists the songs");
    assert_eq!(lib.landmarks().sizes().0, 0, "but does not search rows it cannot read");
    assert_eq!(
        sampleid_landmarks::reference_quads(sampleid_landmarks::STORED_VERSION_V2),
        Some(sampleid_landmarks::QuadConfig::reference_v2())
    );
}

/// Chroma shares of a random tune: one strong pitch class per 0.5 s.
fn tune(seed: u64, frames: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(frames * CHROMA_BYTES);
    let mut note = 0;
    for f in 0..frames {
        if f % 5 == 0 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            note = (s % 12) as usize;
        }
        let mut frame = [8u8; CHROMA_BYTES];
        frame[note] = 200;
        frame[(note + 7) % 12] = 60;
        out.extend(frame);
    }
    out
}

fn shingle_model(recordings: &[u64], dims: usize) -> sampleid_matching::ShingleModel {
    let rec: Vec<Vec<[u8; 12]>> = recordings
        .iter()
        .map(|&s| tune(s, 600).chunks_exact(12).map(|c| c.try_into().unwrap()).collect())
        .collect();
    sampleid_matching::ShingleModel::fit(&rec, 10, dims, usize::MAX, "test tunes").unwrap()
}

/// The song ids the library's shingles rank first for 15 s of `seed`'s tune from 20 s on.
fn shingle_top(lib: &Library, seed: u64, model: &sampleid_matching::ShingleModel) -> (i64, f64) {
    let excerpt: Vec<[u8; 12]> = tune(seed, 600)[200 * 12..350 * 12]
        .chunks_exact(12)
        .map(|c| c.try_into().unwrap())
        .collect();
    let search = sampleid_matching::ShingleSearch {
        tempo_factors: vec![1.0],
        transpose: false,
        ..Default::default()
    };
    let q = model.query(&excerpt, 10.0, &search);
    let hits = lib.shingle_search(&q, 10).unwrap().expect("shingles enabled");
    (hits[0].recording as i64, hits[0].start_s - hits[0].query_s)
}

#[test]
fn stored_shingles_find_songs_persist_follow_deletes_and_rebuild_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let model = shingle_model(&[101, 102, 103], 20);
    let ids: Vec<i64> = {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        let ids = (1..=3u64)
            .map(|s| {
                let (f, n) = song(s, 5);
                lib.add(
                    &format!("s{s}.wav"),
                    &format!("h{s}"),
                    60.0,
                    &f,
                    &n,
                    &tune(100 + s, 600),
                )
                .unwrap()
                .id
            })
            .collect();
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        assert_eq!(lib.shingle_count(), 3 * model.count(600));
        let (top, at) = shingle_top(&lib, 102, &model);
        assert_eq!(top, ids_of(&lib, "s2.wav"));
        assert!((at - 20.0).abs() <= 1.0, "placed at {at}");
        lib.save_ann().unwrap();
        ids
    };
    assert!(dir.path().join("shingles.json").exists());
    // Reopened: the saved graph is loaded, a new song joins it, a deleted one leaves.
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        let (f, n) = song(4, 5);
        let s4 = lib.add("s4.wav", "h4", 60.0, &f, &n, &tune(104, 600)).unwrap();
        assert_eq!(shingle_top(&lib, 104, &model).0, s4.id);
        assert!(lib.delete(ids[1]).unwrap());
        assert_ne!(shingle_top(&lib, 102, &model).0, ids[1]);
        assert_eq!(lib.shingle_count(), 3 * model.count(600));
        lib.save_ann().unwrap();
    }
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("shingles.json")).unwrap()).unwrap();
    assert_eq!(saved["model"], model.id());
    assert_eq!(saved["size"], 3 * model.count(600));
    // A reader of a damaged graph rebuilds it from the stored chroma.
    std::fs::write(dir.path().join("shingles.usearch"), b"not a graph").unwrap();
    let mut lib = Library::open(dir.path()).unwrap();
    lib.enable_shingles(model.clone(), 10.0).unwrap();
    assert_eq!(lib.shingle_count(), 3 * model.count(600));
    assert_eq!(shingle_top(&lib, 103, &model).0, ids[2]);
    assert_ne!(shingle_top(&lib, 102, &model).0, ids[1]);
    // Another model: rebuilt with its own dimension.
    let other = shingle_model(&[101, 102, 103], 12);
    lib.enable_shingles(other.clone(), 10.0).unwrap();
    assert_eq!(lib.shingle_model(), Some(&other));
    assert_eq!(shingle_top(&lib, 101, &other).0, ids[0]);
}

fn ids_of(lib: &Library, path: &str) -> i64 {
    lib.find_path(path)[0].id
}

#[test]
fn a_library_whose_creation_was_cut_short_says_so_and_can_be_created_again() {
    // What a full disk leaves when it strikes while the library is created:
    // the schema, but not the meta rows written in the same transaction.
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("library.sqlite")).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    drop(conn);
    let Err(e) = Library::open(dir.path()) else {
        panic!("not a finished library")
    };
    assert!(e.to_string().contains("creation never finished"), "{e}");
    assert!(e.to_string().contains("sampleid index"), "{e}");
    let w = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Exact)).unwrap();
    drop(w);
    assert!(Library::open(dir.path()).is_ok());
}

/// The row files of generation `g` of a library, as bytes.
fn row_bytes(dir: &Path, g: u64) -> Vec<Vec<u8>> {
    RowKind::ALL
        .iter()
        .map(|k| std::fs::read(k.path(dir, g)).unwrap_or_default())
        .collect()
}

/// Adds song `s` (with chroma and landmarks) to `lib`.
fn add_full(lib: &mut Library, s: u64) -> Song {
    let (f, n) = song(s, 10 + s as usize);
    lib.add_with_landmarks(
        &format!("s{s}.wav"),
        &format!("h{s}"),
        60.0,
        &f,
        &n,
        &tune(100 + s, 600),
        &landmarks(s as u32, 20 + 4 * s as u32),
    )
    .unwrap()
}

#[test]
fn compaction_keeps_the_live_songs_exactly_and_reclaims_the_deleted_ones() {
    for kind in [AnnKind::Exact, AnnKind::Hnsw, AnnKind::IvfPq] {
        let (dir, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let model = shingle_model(&[101, 102, 103], 12);
        let mut ivf = cfg(kind);
        ivf.ivfpq.train_rows = 40;
        let mut lib = Library::open_writer(dir.path(), &layout(), &ivf).unwrap();
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        let songs: Vec<Song> = (1..=5).map(|s| add_full(&mut lib, s)).collect();
        for s in [&songs[1], &songs[3]] {
            assert!(lib.delete(s.id).unwrap());
        }
        let before = lib.stats().unwrap();
        assert_eq!(before.dead_segments, 12 + 14);
        assert!(before.dead_bytes > 0);
        let query = song(3, 13).0[4 * 16..5 * 16].to_vec();
        let near_before: Vec<(String, u64)> = lib
            .nearest(&query, 5)
            .unwrap()
            .iter()
            .map(|(r, _)| lib.song_of(*r).map(|(s, seg)| (s.hash.clone(), seg)).unwrap())
            .collect();

        let total = |g| row_bytes(dir.path(), g).iter().map(Vec::len).sum::<usize>();
        let old_bytes = total(0);
        let done = lib.compact().unwrap();
        assert_eq!((done.songs, done.generation), (3, 1), "{kind:?}");
        assert_eq!((old_bytes - total(1)) as u64, before.dead_bytes);
        assert_eq!(done.segments_removed, 26);
        assert_eq!(done.chroma_frames_removed, 2 * 600);
        assert_eq!((done.peaks_removed, done.quads_removed), (28 + 36, 7 + 9));
        assert_eq!(lib.dead_rows(), [0; 4]);
        assert_eq!(lib.stats().unwrap().dead_bytes, 0);

        // The same bytes as a library that only ever held the live songs.
        {
            let mut other = Library::open_writer(fresh.path(), &layout(), &ivf).unwrap();
            for s in [1, 3, 5] {
                add_full(&mut other, s);
            }
        }
        assert_eq!(row_bytes(dir.path(), 1), row_bytes(fresh.path(), 0), "{kind:?}");
        assert!(
            !RowKind::Fingerprints.path(dir.path(), 0).exists(),
            "the old files are removed"
        );

        // Ids, rows, landmarks and shingles follow; answers are the same.
        let ids: Vec<i64> = lib.songs().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![songs[0].id, songs[2].id, songs[4].id]);
        let near_after: Vec<(String, u64)> = lib
            .nearest(&query, 5)
            .unwrap()
            .iter()
            .map(|(r, _)| lib.song_of(*r).map(|(s, seg)| (s.hash.clone(), seg)).unwrap())
            .collect();
        assert_eq!(near_after, near_before, "{kind:?}");
        assert_eq!(near_after[0], ("h3".to_string(), 4));
        let stored = lib.song_landmarks(lib.song(songs[2].id).unwrap()).unwrap();
        assert_eq!((stored.peaks, stored.quads.len()), (landmarks(3, 32).peaks, 8));
        assert!(lib.landmarks().contains(songs[4].id as u32));
        assert!(!lib.landmarks().contains(songs[1].id as u32));
        assert_eq!(
            lib.shingle_count(),
            3 * model.count(600),
            "deleted songs' shingles are gone"
        );
        assert_eq!(shingle_top(&lib, 103, &model).0, songs[2].id);

        // It goes on: a new song, a reopening (reader and writer).
        let s6 = add_full(&mut lib, 6);
        assert_eq!(s6.first_row, 11 + 13 + 15);
        drop(lib);
        let reader = Library::open(dir.path()).unwrap();
        assert_eq!(reader.generation(), 1);
        assert_eq!(reader.songs().len(), 4);
        let (s, seg) = reader.song_of(reader.nearest(&query, 1).unwrap()[0].0).unwrap();
        assert_eq!((s.hash.as_str(), seg), ("h3", 4));
        assert_eq!(reader.chroma(reader.song(s6.id).unwrap()).concat(), tune(106, 600));
        drop(reader);
        let lib = Library::open_writer(dir.path(), &layout(), &ivf).unwrap();
        assert_eq!(lib.songs().len(), 4);
    }
}

#[test]
fn a_compaction_killed_before_or_after_its_commit_leaves_a_whole_library() {
    let dir = tempfile::tempdir().unwrap();
    let model = shingle_model(&[101, 102, 103], 12);
    let query = song(3, 13).0[2 * 16..3 * 16].to_vec();
    let found = |lib: &Library| {
        let (s, seg) = lib.song_of(lib.nearest(&query, 1).unwrap()[0].0).unwrap();
        (s.hash.clone(), seg)
    };
    let old_files = {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        let songs: Vec<Song> = (1..=4).map(|s| add_full(&mut lib, s)).collect();
        lib.delete(songs[0].id).unwrap();
        lib.save_ann().unwrap();
        // Killed before the commit: the next generation's files are written, nothing else.
        let prepared = lib.prepare_compaction().unwrap();
        assert!(RowKind::Quads.path(dir.path(), 1).exists());
        drop(prepared);
        row_bytes(dir.path(), 0)
    };
    {
        let reader = Library::open(dir.path()).unwrap();
        assert_eq!((reader.generation(), reader.songs().len()), (0, 3));
        assert_eq!(found(&reader), ("h3".to_string(), 2));
        drop(reader);
        let lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
        assert!(
            !RowKind::Quads.path(dir.path(), 1).exists(),
            "the uncommitted generation is removed"
        );
        assert_eq!(lib.dead_rows()[0], 11);
    }
    // A reader open across the compaction keeps its (removed) files.
    let early = Library::open(dir.path()).unwrap();
    {
        let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        lib.compact().unwrap();
    }
    assert_eq!(found(&early), ("h3".to_string(), 2));
    drop(early);
    // Killed after the commit, before the old files were removed and the
    // graphs saved: the old files and no graph descriptors are on disk.
    for (k, bytes) in RowKind::ALL.iter().zip(&old_files) {
        std::fs::write(k.path(dir.path(), 0), bytes).unwrap();
    }
    std::fs::remove_file(dir.path().join("ann.json")).unwrap();
    let reader = Library::open(dir.path()).unwrap();
    assert_eq!((reader.generation(), reader.songs().len()), (1, 3));
    assert_eq!(found(&reader), ("h3".to_string(), 2));
    drop(reader);
    let mut lib = Library::open_writer(dir.path(), &layout(), &cfg(AnnKind::Hnsw)).unwrap();
    assert!(!RowKind::Fingerprints.path(dir.path(), 0).exists());
    assert_eq!(lib.dead_rows(), [0; 4]);
    // A compaction is refused (changing nothing) when another one finished
    // since it began, and when its steps are not done.
    let stale = lib.prepare_compaction().unwrap();
    lib.compact().unwrap();
    let err = lib.finish_compaction(stale).unwrap_err().to_string();
    assert!(err.contains("another compaction"), "{err}");
    let half = lib.begin_compaction().unwrap();
    let err = lib.finish_compaction(half).unwrap_err().to_string();
    assert!(err.contains("finish its steps"), "{err}");
    assert_eq!((lib.generation(), lib.songs().len()), (2, 3));
    assert_eq!(found(&lib), ("h3".to_string(), 2));
}

#[test]
fn songs_added_and_deleted_during_a_compaction_are_caught_up_with() {
    for kind in [AnnKind::Exact, AnnKind::Hnsw, AnnKind::IvfPq] {
        let (dir, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let model = shingle_model(&[101, 102, 103], 12);
        let mut ivf = cfg(kind);
        ivf.ivfpq.train_rows = 40;
        let mut lib = Library::open_writer(dir.path(), &layout(), &ivf).unwrap();
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        let songs: Vec<Song> = (1..=5).map(|s| add_full(&mut lib, s)).collect();
        for s in [&songs[1], &songs[3]] {
            lib.delete(s.id).unwrap();
        }
        // Two of three songs copied, then song 6 added and song 3 (copied)
        // deleted; the last song copied, song 7 added.
        let mut c = lib.begin_compaction().unwrap();
        assert!(!lib.compaction_step(&mut c).unwrap());
        assert!(!lib.compaction_step(&mut c).unwrap());
        let s6 = add_full(&mut lib, 6);
        assert!(lib.delete(songs[2].id).unwrap());
        assert!(lib.compaction_step(&mut c).unwrap());
        let s7 = add_full(&mut lib, 7);
        let done = lib.finish_compaction(c).unwrap();
        assert_eq!((done.songs, done.generation), (4, 1), "{kind:?}");
        assert_eq!(done.segments_removed, 12 + 14, "{kind:?}");

        let ids: Vec<i64> = lib.songs().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![songs[0].id, songs[4].id, s6.id, s7.id], "{kind:?}");
        // Song 3's rows stay, dead, for the next compaction.
        assert_eq!(lib.dead_rows()[0], 13, "{kind:?}");
        for (seed, s) in [(6u64, &s6), (7, &s7)] {
            let query = song(seed, 10 + seed as usize).0[3 * 16..4 * 16].to_vec();
            let (hit, seg) = lib.song_of(lib.nearest(&query, 1).unwrap()[0].0).unwrap();
            assert_eq!((hit.id, seg), (s.id, 3), "{kind:?}");
            let now = lib.song(s.id).unwrap();
            assert_eq!(lib.chroma(now).concat(), tune(100 + seed, 600));
            let stored = lib.song_landmarks(now).unwrap();
            assert_eq!(stored.peaks, landmarks(seed as u32, 20 + 4 * seed as u32).peaks);
            assert!(lib.landmarks().contains(s.id as u32));
        }
        let q3 = song(3, 13).0[4 * 16..5 * 16].to_vec();
        assert!(
            lib.nearest(&q3, 3)
                .unwrap()
                .iter()
                .all(|(r, _)| lib.song_of(*r).unwrap().0.id != songs[2].id),
            "{kind:?}: a song deleted during the compaction stays deleted"
        );
        assert!(!lib.landmarks().contains(songs[2].id as u32));
        assert_eq!(lib.shingle_count(), 4 * model.count(600), "{kind:?}");

        // Reopened, and compacted again: the same bytes as a library that
        // only ever held the live songs.
        drop(lib);
        let mut lib = Library::open_writer(dir.path(), &layout(), &ivf).unwrap();
        assert_eq!(lib.songs().len(), 4);
        lib.enable_shingles(model.clone(), 10.0).unwrap();
        assert_ne!(shingle_top(&lib, 103, &model).0, songs[2].id);
        let again = lib.compact().unwrap();
        assert_eq!((again.generation, again.segments_removed), (2, 13));
        {
            let mut other = Library::open_writer(fresh.path(), &layout(), &ivf).unwrap();
            for s in [1, 5, 6, 7] {
                add_full(&mut other, s);
            }
        }
        assert_eq!(row_bytes(dir.path(), 2), row_bytes(fresh.path(), 0), "{kind:?}");
    }
}

#[test]
fn songs_added_during_the_steps_are_taken_before_the_finish() {
    for kind in [AnnKind::Exact, AnnKind::Hnsw, AnnKind::IvfPq] {
        let (dir, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut ivf = cfg(kind);
        ivf.ivfpq.train_rows = 40;
        let mut lib = Library::open_writer(dir.path(), &layout(), &ivf).unwrap();
        let songs: Vec<Song> = (1..=4).map(|s| add_full(&mut lib, s)).collect();
        lib.delete(songs[1].id).unwrap();
        let mut c = lib.begin_compaction().unwrap();
        let s6 = add_full(&mut lib, 6);
        // Nothing to take until the songs of the start are copied.
        assert!(lib.compaction_added(&c, 8).unwrap().is_empty());
        while !lib.compaction_step(&mut c).unwrap() {}
        let s7 = add_full(&mut lib, 7);
        assert_eq!(lib.compaction_added(&c, 1).unwrap().len(), 1);
        let mut both = lib.compaction_added(&c, 8).unwrap().into_iter();
        let (r6, r7) = (both.next().unwrap(), both.next().unwrap());
        assert!(both.next().is_none());
        // Taken in order only: song 7's rows are placed after song 6's.
        let r7 = match c.take_added(r7) {
            Err(e) => {
                assert!(e.to_string().contains("not the next added song"), "{kind:?}: {e}");
                lib.compaction_added(&c, 8).unwrap().pop().unwrap()
            }
            Ok(()) => panic!("{kind:?}: song 7 taken before song 6"),
        };
        c.take_added(r6).unwrap();
        c.take_added(r7).unwrap();
        assert!(lib.compaction_added(&c, 8).unwrap().is_empty());
        // After that: song 8 added, song 6 (taken) deleted; the finish
        // catches up with both.
        let s8 = add_full(&mut lib, 8);
        assert!(lib.delete(s6.id).unwrap());
        let done = lib.finish_compaction(c).unwrap();
        assert_eq!((done.songs, done.segments_removed), (5, 12), "{kind:?}");
        let ids: Vec<i64> = lib.songs().iter().map(|s| s.id).collect();
        assert_eq!(
            ids,
            vec![songs[0].id, songs[2].id, songs[3].id, s7.id, s8.id],
            "{kind:?}"
        );
        assert_eq!(lib.dead_rows()[0], 16, "{kind:?}: song 6's rows stay, dead");
        for (seed, s) in [(3u64, &songs[2]), (7, &s7), (8, &s8)] {
            let query = song(seed, 10 + seed as usize).0[3 * 16..4 * 16].to_vec();
            let (hit, seg) = lib.song_of(lib.nearest(&query, 1).unwrap()[0].0).unwrap();
            assert_eq!((hit.id, seg), (s.id, 3), "{kind:?}");
            let now = lib.song(s.id).unwrap();
            assert_eq!(lib.chroma(now).concat(), tune(100 + seed, 600));
            assert_eq!(
                lib.song_landmarks(now).unwrap().peaks,
                landmarks(seed as u32, 20 + 4 * seed as u32).peaks
            );
        }
        let q6 = song(6, 16).0[4 * 16..5 * 16].to_vec();
        assert!(
            lib.nearest(&q6, 3)
                .unwrap()
                .iter()
                .all(|(r, _)| lib.song_of(*r).unwrap().0.id != s6.id),
            "{kind:?}: a song deleted after it was taken stays deleted"
        );
        assert!(!lib.landmarks().contains(s6.id as u32));

        drop(lib);
        let mut lib = Library::open_writer(dir.path(), &layout(), &ivf).unwrap();
        let again = lib.compact().unwrap();
        assert_eq!((again.generation, again.segments_removed), (2, 16));
        {
            let mut other = Library::open_writer(fresh.path(), &layout(), &ivf).unwrap();
            for s in [1, 3, 4, 7, 8] {
                add_full(&mut other, s);
            }
        }
        assert_eq!(row_bytes(dir.path(), 2), row_bytes(fresh.path(), 0), "{kind:?}");
    }
}

#[test]
fn readers_opening_during_repeated_compactions_always_see_a_whole_library() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut lib = Library::open_writer(&path, &layout(), &cfg(AnnKind::Exact)).unwrap();
    for s in 1..=4 {
        add_full(&mut lib, s);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, done) = (path.clone(), done.clone());
        std::thread::spawn(move || {
            let mut opened = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || opened == 0 {
                let r = Library::open(&path).unwrap_or_else(|e| panic!("open #{opened}: {e}"));
                // Every song's rows are there and read back as written.
                for s in r.songs() {
                    let seed: u64 = s.hash[1..].parse().unwrap();
                    assert_eq!(r.chroma(s).concat(), tune(100 + seed, 600), "song {}", s.hash);
                    let first = r.fingerprint(s.first_row);
                    let want = &song(seed, 10 + seed as usize).0[..16];
                    assert!(first.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-3));
                }
                opened += 1;
            }
            opened
        })
    };
    for round in 0..12u64 {
        add_full(&mut lib, 5 + round);
        let oldest = lib.songs()[0].id;
        lib.delete(oldest).unwrap();
        lib.compact().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let opened = reader.join().unwrap();
    assert!(opened > 0);
    assert_eq!(lib.generation(), 12);
    assert_eq!(lib.songs().len(), 4);
}
