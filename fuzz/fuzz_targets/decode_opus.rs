//! The opus decoder path of `sampleid_audio::AudioStream::from_bytes`, seeded
//! from `fuzz/seeds/decode_opus` (see `docs/reliability.md`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sampleid_fuzz::decode(data, "opus"));
