//! A library directory with damaged files, opened for query: each input is
//! a list of damages (see `sampleid_fuzz::library`) applied to a copy of a
//! small real library; seeded from `fuzz/seeds/library` (see
//! `docs/reliability.md`).
#![no_main]
//! The library is built before the first input (`init`), so that libFuzzer's
//! per-input timeout measures inputs, not the setup.
libfuzzer_sys::fuzz_target!(init: sampleid_fuzz::library::prepare(), |data: &[u8]| sampleid_fuzz::library::damaged(data));
