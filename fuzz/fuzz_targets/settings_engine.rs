//! Settings that load, put to work: a library indexed, a clip identified,
//! matched and aligned with them (`sampleid_fuzz::engine`); seeded from
//! `fuzz/seeds/settings_engine` (see `docs/reliability.md`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sampleid_fuzz::engine::settings_engine(data));
