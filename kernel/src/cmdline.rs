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

/// The frontend domain serve mode is asked for: `frontend=<domid>`, or `serve=1` for
/// domain 1 (the first dom0less domU). `None`: no serve mode (or an unreadable domid).
pub fn serve_frontend(cmdline: &str) -> Option<u16> {
    match (value_of(cmdline, "frontend"), value_of(cmdline, "serve")) {
        (Some(domid), _) => domid.parse().ok(),
        (None, Some("1")) => Some(1),
        _ => None,
    }
}

/// A numeric option `key=<u64>`; `None` when absent or not a number.
pub fn number(cmdline: &str, key: &str) -> Option<u64> {
    value_of(cmdline, key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_serve_frontend() {
        assert_eq!(serve_frontend("loglevel=info serve=1"), Some(1));
        assert_eq!(serve_frontend("serve=1 frontend=3"), Some(3));
        assert_eq!(serve_frontend("frontend=7"), Some(7));
        assert_eq!(serve_frontend("serve=0"), None);
        assert_eq!(serve_frontend("frontend=x"), None);
        assert_eq!(serve_frontend("frontend=70000"), None);
        assert_eq!(serve_frontend(""), None);
        assert_eq!(
            number("ramdisk_mb=32 frontend_vcpus=2", "ramdisk_mb"),
            Some(32)
        );
        assert_eq!(number("ramdisk_mb=big", "ramdisk_mb"), None);
    }

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
