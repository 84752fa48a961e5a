//! The settings loader: arbitrary bytes as a `--config` file, parsed and
//! validated by `sampleid_engine::Settings::from_toml`; seeded from
//! `fuzz/seeds/settings` (see `docs/reliability.md`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sampleid_fuzz::settings(data));
