//! What the fuzz targets do (`fuzz/fuzz_targets/`, `docs/reliability.md`).
//!
//! - The decoder targets decode the bytes to the end through the public
//!   API, as `sampleid index` and an upload would ([`decode`]).
//! - `settings` loads the bytes as a settings file ([`settings`]);
//!   `settings_engine` indexes, identifies, matches and aligns with the
//!   settings that load ([`engine::settings_engine`]).
//! - `library` damages the files of a small real library and opens it for
//!   query ([`library::damaged`]).
//! - `upload` reads the body of an HTTP request (raw or a multipart form) as
//!   `sampleid serve` does ([`upload::upload`]).
//!
//! Errors are the expected outcome of most inputs; a panic, a hang or an
//! allocation beyond libFuzzer's limits is a finding.

use sampleid_audio::{AudioConfig, AudioStream};
use sampleid_engine::Settings;

pub mod engine;
pub mod library;
pub mod upload;

/// Decodes `data` (with `extension` as the format hint) to its end.
pub fn decode(data: &[u8], extension: &str) {
    let cfg = AudioConfig {
        // A few bytes can declare hours of audio: bound the work per input,
        // as a server does with its own limit.
        max_duration_s: Some(30.0),
        ..AudioConfig::default()
    };
    if let Ok(mut stream) = AudioStream::from_bytes(data.to_vec(), "fuzz-input", Some(extension), &cfg) {
        while let Ok(Some(_)) = stream.next_block() {}
    }
}

/// Loads `data` as the engine's settings file (`--config FILE`): the binary
/// reads the file with `std::fs::read_to_string`, which refuses bytes that
/// are not UTF-8 before any parsing, then parses and validates the text
/// ([`Settings::from_toml`]). Settings that load must also print
/// (`sampleid config`) and load back to the same text.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // What `read_to_string` answers ("stream did not contain valid UTF-8").
        return;
    };
    let Ok(s) = Settings::from_toml(text) else { return };
    let printed = s.to_toml().expect("loaded settings print as TOML");
    let back = Settings::from_toml(&printed).expect("printed settings load back");
    assert_eq!(
        back.to_toml().expect("loaded settings print as TOML"),
        printed,
        "printed settings load back unchanged"
    );
    let _ = s.hop_s();
}
