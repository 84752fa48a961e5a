//! A library directory with damaged files, opened for query: each input is
//! a list of damages (see `sampleid_fuzz::library`) applied to a copy of a
//! small real library; seeded from `fuzz/seeds/library` (see
//! `docs/reliability.md`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sampleid_fuzz::library::damaged(data));
