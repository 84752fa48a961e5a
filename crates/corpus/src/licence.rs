//! Per-file licences from a package's machine-readable (DEP-5) copyright file.
//!
//! DEP-5 `Files:` patterns name paths in the source tree, not where files are
//! installed, so a pattern matches a file when it matches a trailing part of
//! the installed path (or archive member path) at a `/` boundary. As in DEP-5,
//! the last matching stanza wins; `debian/*` stanzas are ignored.

use regex::Regex;

/// The licence stanzas of one copyright file.
#[derive(Debug, Clone, Default)]
pub struct Copyright {
    stanzas: Vec<(Vec<Regex>, String)>,
}

fn glob_to_regex(pattern: &str) -> Option<Regex> {
    let p = pattern.trim_start_matches("./");
    if p.is_empty() {
        return None;
    }
    let mut re = String::from("(^|/)");
    for c in p.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

impl Copyright {
    /// Parses a copyright file; `None` if it is not machine-readable.
    pub fn parse(text: &str) -> Option<Self> {
        if !text.starts_with("Format:") || !text.lines().next()?.contains("copyright-format") {
            return None;
        }
        let mut stanzas = Vec::new();
        for block in text.split("\n\n") {
            let mut files: Vec<String> = Vec::new();
            let mut licence: Option<String> = None;
            let mut field = "";
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix(' ').or_else(|| line.strip_prefix('\t')) {
                    if field == "Files" {
                        files.extend(rest.split_whitespace().map(str::to_string));
                    }
                    continue;
                }
                let (name, value) = match line.split_once(':') {
                    Some(x) => x,
                    None => continue,
                };
                field = name;
                match name {
                    "Files" => files.extend(value.split_whitespace().map(str::to_string)),
                    "License" if licence.is_none() => licence = Some(value.trim().to_string()),
                    _ => {}
                }
            }
            if let Some(l) = licence
                && !files.is_empty()
                && !l.is_empty()
            {
                let patterns: Vec<Regex> = files
                    .iter()
                    .filter(|f| !f.starts_with("debian/"))
                    .filter_map(|f| glob_to_regex(f))
                    .collect();
                if !patterns.is_empty() {
                    stanzas.push((patterns, l));
                }
            }
        }
        Some(Self { stanzas })
    }

    /// The licence of `path`, if a stanza more specific than `Files: *` matches,
    /// else the catch-all's, else `None`.
    pub fn licence_of(&self, path: &str) -> Option<&str> {
        self.stanzas
            .iter()
            .rev()
            .find(|(patterns, _)| patterns.iter().any(|re| re.is_match(path)))
            .map(|(_, l)| l.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: x\n\n\
Files: *\nCopyright: 2010 A\nLicense: GPL-2+\n\n\
Files: debian/*\nLicense: GPL-2+\n\n\
Files:\n music/Alpha.ogg\n music/Beta.ogg\nCopyright: B\nLicense: CC-BY-SA-3.0\n text of the licence\n\n\
Files: ./dat/snd/music/gamma*.ogg\nLicense: CC-BY-3.0\n";

    #[test]
    fn the_most_specific_last_stanza_wins() {
        let c = Copyright::parse(TEXT).unwrap();
        assert_eq!(
            c.licence_of("/usr/share/games/ufoai/base/0music.pk3/music/Alpha.ogg"),
            Some("CC-BY-SA-3.0")
        );
        assert_eq!(
            c.licence_of("/usr/share/naev/dat/snd/music/gamma2.ogg"),
            Some("CC-BY-3.0")
        );
        assert_eq!(c.licence_of("/usr/share/x/music/Other.ogg"), Some("GPL-2+"));
        // "music/Alpha.ogg" must not match "xmusic/Alpha.ogg".
        assert_eq!(c.licence_of("/usr/share/xmusic/Alpha.ogg"), Some("GPL-2+"));
    }

    #[test]
    fn free_form_copyright_files_are_not_parsed() {
        assert!(Copyright::parse("This package was debianized by ...").is_none());
    }
}
