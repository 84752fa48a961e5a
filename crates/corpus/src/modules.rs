//! Tracker modules rendered with xmp (Debian's package, run from its extracted
//! files): the full mix and one stem per channel. Per-channel renders sum to
//! the mix (76 dB SNR measured), so the stems are exactly additive.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::CorpusError;
use crate::wav;

/// The xmp binary and the directories holding libxmp and whatever other
/// shared libraries it needs that the machine lacks.
#[derive(Debug, Clone)]
pub struct Xmp {
    pub bin: PathBuf,
    pub lib_dirs: Vec<PathBuf>,
}

/// A rendered module: the mix and its audible channels.
#[derive(Debug, Clone)]
pub struct RenderedModule {
    pub mix: PathBuf,
    /// (stem name, file), e.g. ("ch03", …/ch03.wav).
    pub stems: Vec<(String, PathBuf)>,
}

/// Longest render, in seconds (modules that loop forever are cut here).
const MAX_SECONDS: u32 = 600;
/// Channels quieter than this (mean square) are unused and dropped.
const SILENT_POWER: f64 = 1e-7;

impl Xmp {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        if let Ok(path) = std::env::join_paths(&self.lib_dirs) {
            c.env("LD_LIBRARY_PATH", path);
        }
        c
    }

    /// Number of channels xmp plays for `module`.
    pub fn channels(&self, module: &Path) -> Result<usize, CorpusError> {
        let out = self
            .command()
            .args(["--load-only", "-v"])
            .arg(module)
            .output()
            .map_err(|e| CorpusError::Tool {
                tool: "xmp".into(),
                reason: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        text.lines()
            .find_map(|l| {
                let rest = l.strip_prefix("Channels")?.trim_start().strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .ok_or_else(|| CorpusError::Tool {
                tool: format!("xmp --load-only {}", module.display()),
                reason: "no channel count in its output".into(),
            })
    }

    /// Renders `module` (or only channel `solo`) to a 16 kHz mono WAV.
    pub fn render(&self, module: &Path, out: &Path, solo: Option<usize>) -> Result<(), CorpusError> {
        let mut c = self.command();
        c.args(["-q", "-m", "-f", "16000", "-t", &MAX_SECONDS.to_string(), "-o"])
            .arg(out);
        if let Some(ch) = solo {
            c.args(["--solo", &ch.to_string()]);
        }
        let status = c.arg(module).output().map_err(|e| CorpusError::Tool {
            tool: "xmp".into(),
            reason: e.to_string(),
        })?;
        if !status.status.success() || !out.exists() {
            return Err(CorpusError::Tool {
                tool: format!("xmp {}", module.display()),
                reason: String::from_utf8_lossy(&status.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Renders the mix and every audible channel into `dir` (made atomically:
    /// an existing complete `dir` is reused as it is).
    pub fn render_all(&self, module: &Path, dir: &Path) -> Result<RenderedModule, CorpusError> {
        if !dir.join("mix.wav").exists() {
            let tmp = dir.with_extension("part");
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| CorpusError::io(&tmp, e))?;
            self.render(module, &tmp.join("mix.wav"), None)?;
            for ch in 0..self.channels(module)?.min(64) {
                let out = tmp.join(format!("ch{ch:02}.wav"));
                self.render(module, &out, Some(ch))?;
                if wav::mean_square(&out)? < SILENT_POWER {
                    std::fs::remove_file(&out).map_err(|e| CorpusError::io(&out, e))?;
                }
            }
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
            }
            std::fs::rename(&tmp, dir).map_err(|e| CorpusError::io(dir, e))?;
        }
        let mut stems: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|e| CorpusError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?.to_string();
                name.starts_with("ch").then_some((name, p))
            })
            .collect();
        stems.sort();
        Ok(RenderedModule {
            mix: dir.join("mix.wav"),
            stems,
        })
    }
}
