//! Settings that load, put to work: a library indexed, a clip identified,
//! matched and aligned with them (`sampleid_fuzz::engine`); seeded from
//! `fuzz/seeds/settings_engine` (see `docs/reliability.md`).
#![no_main]
//! The models and audio are loaded before the first input (`init`).
libfuzzer_sys::fuzz_target!(init: sampleid_fuzz::engine::prepare(), |data: &[u8]| {
    sampleid_fuzz::engine::settings_engine(data)
});
