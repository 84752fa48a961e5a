//! The training settings files that the docs name (`docs/recipes/`) parse and
//! validate, so that the documented commands keep working.

use std::path::Path;

use sampleid_train::{EncoderTraining, RerankerTraining};

#[test]
fn the_documented_recipes_are_valid_settings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/recipes");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with("encoder-") || name.starts_with("pilot-") || name.starts_with("profile-") {
            let cfg: EncoderTraining = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            cfg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        } else if name.starts_with("reranker") {
            let cfg: RerankerTraining = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            cfg.pairs.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
    }
    assert_eq!(seen, 8, "every recipe was read");
}
