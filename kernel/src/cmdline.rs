//! Kernel command line: space-separated `key=value` words; unknown words are ignored.

/// Log level requested with `loglevel=<error|warn|info|debug|trace|off>`; `None` when absent
/// or not understood (the caller keeps its default).
pub fn log_level(cmdline: &str) -> Option<log::LevelFilter> {
    let value = value_of(cmdline, "loglevel")?;
    match value {
        "off" => Some(log::LevelFilter::Off),
        "error" => Some(log::LevelFilter::Error),
        "warn" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        _ => None,
    }
}

/// The value of the last `key=value` word for `key`.
pub fn value_of<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .filter_map(|word| word.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_log_level() {
        assert_eq!(
            log_level("a=b loglevel=debug c"),
            Some(log::LevelFilter::Debug)
        );
        assert_eq!(
            log_level("loglevel=info loglevel=trace"),
            Some(log::LevelFilter::Trace)
        );
        assert_eq!(log_level("loglevel=loud"), None);
        assert_eq!(log_level(""), None);
        assert_eq!(log_level("/boot/stubvirt.elf"), None);
    }
}
