//! Private apt configurations derived from the machine's own apt sources. The machine may
//! list only binary (`deb`) sources of its own release, so a private configuration
//! rewrites the configured `deb` entries: as `deb-src` entries (Debian source packages),
//! or naming another Debian release (e.g. trixie's binary packages on a bookworm machine).
//! The URIs, components and keys stay the machine's (read at run time; no registry host is
//! written anywhere), and each configuration has its own package lists.

use crate::process::{run_in, step};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const SYSTEM_SOURCES: &str = "/etc/apt/sources.list";
const SYSTEM_PARTS: &str = "/etc/apt/sources.list.d";

/// A private apt configuration of Debian source packages rooted at a directory.
pub struct AptSource {
    root: PathBuf,
}

impl AptSource {
    /// Writes the private configuration under `root` and downloads its source lists.
    pub fn new(root: &Path) -> Result<Self, String> {
        for dir in [&root.join("lists/partial"), &root.join("cache")] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        write_sources(root, "deb-src", None)?;
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
        let mut options = sources_options(&self.root);
        options.extend([
            "-o".into(),
            format!("Dir::State::Lists={}", at("lists")),
            "-o".into(),
            format!("Dir::Cache={}", at("cache")),
            "-o".into(),
            "APT::Sandbox::User=root".into(),
        ]);
        options
    }
}

/// Writes `root/sources.list` and `root/sources.list.d/<types>.sources`: the machine's
/// `deb` entries with the type `types`, and with `release`, of that Debian release instead
/// of the machine's (entries of suites outside the machine's release are left out).
pub fn write_sources(root: &Path, types: &str, release: Option<&str>) -> Result<(), String> {
    let rename = match release {
        Some(wanted) => Some((machine_release()?, wanted)),
        None => None,
    };
    let rename = rename.as_ref().map(|(from, to)| (from.as_str(), *to));
    let one_line = std::fs::read_to_string(SYSTEM_SOURCES).unwrap_or_default();
    let mut deb822 = String::new();
    let mut list = one_line_entries(&one_line, types, rename);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(SYSTEM_PARTS)
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        match path.extension().and_then(|e| e.to_str()) {
            Some("sources") => deb822.push_str(&stanzas(&text, types, rename)),
            Some("list") => list.push_str(&one_line_entries(&text, types, rename)),
            _ => {}
        }
    }
    if deb822.is_empty() && list.is_empty() {
        return Err(format!(
            "no `deb` entries in the machine's apt sources to derive `{types}` entries{} from",
            release.map(|r| format!(" of {r}")).unwrap_or_default()
        ));
    }
    let parts = root.join("sources.list.d");
    std::fs::create_dir_all(&parts).map_err(|e| format!("{}: {e}", parts.display()))?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(root.join("sources.list"), &list)?;
    write(parts.join(format!("{types}.sources")), &deb822)
}

/// The apt options that read the sources [`write_sources`] wrote under `root`.
pub fn sources_options(root: &Path) -> Vec<String> {
    let at = |p: &str| root.join(p).display().to_string();
    vec![
        "-o".into(),
        format!("Dir::Etc::SourceList={}", at("sources.list")),
        "-o".into(),
        format!("Dir::Etc::SourceParts={}", at("sources.list.d")),
    ]
}

/// The machine's Debian release (`VERSION_CODENAME` of `/etc/os-release`).
fn machine_release() -> Result<String, String> {
    let text =
        std::fs::read_to_string("/etc/os-release").map_err(|e| format!("/etc/os-release: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "/etc/os-release names no VERSION_CODENAME".to_string())
}

/// `suite` of the release `from` (`bookworm`, `bookworm-security`) as the same suite of
/// `to`; `None` for a suite of no release (`nodistro`, `cloud-sdk-bookworm`).
fn renamed(suite: &str, (from, to): (&str, &str)) -> Option<String> {
    let rest = suite.strip_prefix(from)?;
    (rest.is_empty() || rest.starts_with('-')).then(|| format!("{to}{rest}"))
}

/// One-line format: every `deb [options] URI SUITE COMPONENT...` line as `types ...`,
/// its suite renamed when `rename` is given (lines whose suite is of no release dropped).
fn one_line_entries(text: &str, types: &str, rename: Option<(&str, &str)>) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("deb ") else {
            continue;
        };
        let mut words: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
        // The suite follows the bracketed options, if any, and the URI.
        let options = match words.first() {
            Some(first) if first.starts_with('[') => words
                .iter()
                .position(|w| w.ends_with(']'))
                .map_or(0, |i| i + 1),
            _ => 0,
        };
        if let (Some(rename), Some(suite)) = (rename, words.get_mut(options + 1)) {
            match renamed(suite, rename) {
                Some(new) => *suite = new,
                None => continue,
            }
        }
        out.push_str(&format!("{types} {}\n", words.join(" ")));
    }
    out
}

/// deb822 format: every enabled stanza whose `Types` include `deb`, with `Types: types`,
/// its `Suites` renamed when `rename` is given (stanzas left with none dropped), and all
/// other fields (continuation lines too) unchanged.
fn stanzas(text: &str, types: &str, rename: Option<(&str, &str)>) -> String {
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
        let suites = match (rename, field("Suites")) {
            (Some(rename), Some(suites)) => {
                let renamed: Vec<String> = suites
                    .split_whitespace()
                    .filter_map(|s| renamed(s, rename))
                    .collect();
                Some(renamed.join(" "))
            }
            _ => None,
        };
        if !binary || disabled || suites.as_deref() == Some("") {
            continue;
        }
        let _ = writeln!(out, "Types: {types}");
        let mut in_types = false;
        for line in &lines {
            let continuation = line.starts_with([' ', '\t']);
            let key = line.split_once(':').map(|(k, _)| k.trim());
            if !continuation {
                in_types = key.is_some_and(|k| k.eq_ignore_ascii_case("Types"));
            }
            match &suites {
                Some(suites)
                    if !continuation && key.is_some_and(|k| k.eq_ignore_ascii_case("Suites")) =>
                {
                    let _ = writeln!(out, "Suites: {suites}");
                }
                _ if !in_types => {
                    out.push_str(line);
                    out.push('\n');
                }
                _ => {}
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
        let out = stanzas(text, "deb-src", None);
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
            one_line_entries(text, "deb-src", None),
            "deb-src [arch=amd64] http://m.example/debian bookworm main\n"
        );
    }

    #[test]
    fn another_release_renames_the_machines_suites() {
        let text = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n\
                    Components: main\n\nTypes: deb\nURIs: http://m.example/debian-security\n\
                    Suites: bookworm-security\n\nTypes: deb\nURIs: http://n.example\n\
                    Suites: nodistro\n";
        assert_eq!(
            stanzas(text, "deb", Some(("bookworm", "trixie"))),
            "Types: deb\nURIs: http://m.example/debian\nSuites: trixie trixie-updates\n\
             Components: main\n\nTypes: deb\nURIs: http://m.example/debian-security\n\
             Suites: trixie-security\n\n"
        );
        let lines = "deb [ arch=arm64 ] http://m.example/debian bookworm-updates main\n\
                     deb https://c.example/apt cloud-sdk-bookworm main\n";
        assert_eq!(
            one_line_entries(lines, "deb", Some(("bookworm", "trixie"))),
            "deb [ arch=arm64 ] http://m.example/debian trixie-updates main\n"
        );
        assert_eq!(
            renamed("bookworm", ("bookworm", "trixie")).as_deref(),
            Some("trixie")
        );
        assert_eq!(renamed("bookwormish", ("bookworm", "trixie")), None);
    }
}
