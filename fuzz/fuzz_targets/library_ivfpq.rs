//! An IVF-PQ library whose SQLite commits are still in the write-ahead log,
//! with damaged files, opened for query: the inputs are those of `library`
//! (see `sampleid_fuzz::library`), applied to a copy of that library;
//! seeded from `fuzz/seeds/library_ivfpq` (see `docs/reliability.md`).
#![no_main]
//! The library is built before the first input (`init`), so that libFuzzer's
//! per-input timeout measures inputs, not the setup.
libfuzzer_sys::fuzz_target!(init: sampleid_fuzz::library::prepare_ivfpq(), |data: &[u8]| {
    sampleid_fuzz::library::damaged_ivfpq(data)
});
