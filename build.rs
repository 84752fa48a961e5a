//! Tells the tests whether the web page's browser test can run: with
//! Debian's chromium and chromium-driver installed (or
//! `SAMPLEID_BROWSER_TEST=required`, which makes a missing browser a
//! failure), `cfg(has_browser)` is set; otherwise the test is marked ignored,
//! so that `cargo test` reports it as ignored instead of as passed.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_browser)");
    println!("cargo::rerun-if-env-changed=SAMPLEID_BROWSER_TEST");
    println!("cargo::rerun-if-env-changed=SAMPLEID_CHROMIUM");
    println!("cargo::rerun-if-env-changed=SAMPLEID_CHROMEDRIVER");
    let path = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.to_string());
    let found = Path::new(&path("SAMPLEID_CHROMIUM", "/usr/bin/chromium")).exists()
        && Path::new(&path("SAMPLEID_CHROMEDRIVER", "/usr/bin/chromedriver")).exists();
    let required = std::env::var("SAMPLEID_BROWSER_TEST").is_ok_and(|v| v == "required");
    if found || required {
        println!("cargo::rustc-cfg=has_browser");
    }
}
