//! Debian source packages from the machine's own apt sources. The machine may list only
//! binary (`deb`) sources, so this builds a private apt configuration whose `deb-src`
//! entries reuse the URIs, suites, components and keys of the configured `deb` entries
//! (read at run time; no registry host is written anywhere), with its own package lists.

use crate::process::{run_in, step};
use std::path::{Path, PathBuf};
use std::process::Command;

const SYSTEM_SOURCES: &str = "/etc/apt/sources.list";
const SYSTEM_PARTS: &str = "/etc/apt/sources.list.d";

/// A private apt configuration rooted at a directory.
pub struct AptSource {
    root: PathBuf,
}

impl AptSource {
    /// Writes the private configuration under `root` and downloads its source lists.
    pub fn new(root: &Path) -> Result<Self, String> {
        let parts = root.join("sources.list.d");
        for dir in [&parts, &root.join("lists/partial"), &root.join("cache")] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let one_line = std::fs::read_to_string(SYSTEM_SOURCES).unwrap_or_default();
        let mut deb822 = String::new();
        let mut list = deb_src_lines(&one_line);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(SYSTEM_PARTS)
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match path.extension().and_then(|e| e.to_str()) {
                Some("sources") => deb822.push_str(&deb_src_stanzas(&text)),
                Some("list") => list.push_str(&deb_src_lines(&text)),
                _ => {}
            }
        }
        if deb822.is_empty() && list.is_empty() {
            return Err(
                "no `deb` entries in the machine's apt sources to derive deb-src from".into(),
            );
        }
        let write = |path: PathBuf, text: &str| {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        write(root.join("sources.list"), &list)?;
        write(parts.join("deb-src.sources"), &deb822)?;
        let source = Self {
            root: root.to_path_buf(),
        };
        step("apt-get update (private deb-src lists from the machine's apt sources)");
        source.run(root, &["update"])?;
        Ok(source)
    }

    /// `apt-get <args>` with the private configuration, in directory `dir`.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Result<(), String> {
        run_in(
            dir,
            Command::new("apt-get")
                .arg("-q")
                .args(self.options())
                .args(args),
        )
    }

    fn options(&self) -> Vec<String> {
        let at = |p: &str| self.root.join(p).display().to_string();
        vec![
            "-o".into(),
            format!("Dir::Etc::SourceList={}", at("sources.list")),
            "-o".into(),
            format!("Dir::Etc::SourceParts={}", at("sources.list.d")),
            "-o".into(),
            format!("Dir::State::Lists={}", at("lists")),
            "-o".into(),
            format!("Dir::Cache={}", at("cache")),
            "-o".into(),
            "APT::Sandbox::User=root".into(),
        ]
    }
}

/// One-line format: every `deb ...` line again as `deb-src ...`.
fn deb_src_lines(text: &str) -> String {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("deb "))
        .map(|rest| format!("deb-src {rest}\n"))
        .collect()
}

/// deb822 format: every enabled stanza whose `Types` include `deb`, with `Types: deb-src`
/// and all other fields (continuation lines too) unchanged.
fn deb_src_stanzas(text: &str) -> String {
    let mut out = String::new();
    for stanza in text.split("\n\n") {
        let lines: Vec<&str> = stanza
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .collect();
        let field = |name: &str| {
            lines.iter().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
            })
        };
        let binary = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let disabled = field("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no"));
        if !binary || disabled {
            continue;
        }
        out.push_str("Types: deb-src\n");
        let mut in_types = false;
        for line in &lines {
            let continuation = line.starts_with([' ', '\t']);
            if !continuation {
                in_types = line
                    .split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("Types"));
            }
            if !in_types {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_become_deb_src() {
        let text = "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n\
                    Components: main\nSigned-By: /k.gpg\n\nTypes: deb-src\nURIs: x\nSuites: y\n\n\
                    Types: deb\nEnabled: no\nURIs: z\nSuites: s\n";
        let out = deb_src_stanzas(text);
        assert_eq!(
            out,
            "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\n\
             Components: main\nSigned-By: /k.gpg\n\n"
        );
    }

    #[test]
    fn one_line_entries_become_deb_src() {
        let text =
            "deb [arch=amd64] http://m.example/debian bookworm main\ndeb-src a b c\n#deb x\n";
        assert_eq!(
            deb_src_lines(text),
            "deb-src [arch=amd64] http://m.example/debian bookworm main\n"
        );
    }
}
