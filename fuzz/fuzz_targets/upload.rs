//! The HTTP upload reader of `sampleid serve` (raw bodies and multipart
//! forms, `sampleid_upload::read_audio`), seeded from `fuzz/seeds/upload`
//! (see `docs/reliability.md`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sampleid_fuzz::upload::upload(data));
