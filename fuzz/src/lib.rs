//! What every decoder target does: decode the bytes to the end through the
//! public API, as `sampleid index` and an upload would. Errors are the
//! expected outcome of most inputs; a panic, a hang or an allocation beyond
//! libFuzzer's limits is a finding.

use sampleid_audio::{AudioConfig, AudioStream};

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
