//! Progress bars on stderr (hidden when stderr is not a terminal, or with --quiet).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting files, with the current file and position as its message.
pub fn files_bar(n: u64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {wide_msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// Shows how far into `name` the decoder is.
pub fn show_position(bar: &ProgressBar, name: &str, position_s: f64, declared_s: Option<f64>) {
    if bar.is_hidden() {
        return;
    }
    match declared_s {
        Some(total) => bar.set_message(format!("{name}  {position_s:.0}/{total:.0} s")),
        None => bar.set_message(format!("{name}  {position_s:.0} s")),
    }
}

/// A spinner counting events of an open-ended run (`unit`: "requests", say).
pub fn counter(unit: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{pos}} {unit}  {{wide_msg}}"
        ))
        .expect("static template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

/// A spinner with a fixed message, for one long step (`compact`, say).
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("static template"));
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}
