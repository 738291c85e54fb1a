//! What a generated block of measurements says about itself: the command, how long it
//! took, the commit measured, the date and the machine. Written next to the tables so a
//! reader knows what the figures describe without trusting prose to have kept up.

use crate::process::workspace_root;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The document the measuring commands write their blocks into.
pub const PERFORMANCE_DOC: &str = "docs/performance.md";

/// The measured commit, taken before a run starts (the run then writes the document, which
/// is not part of what is measured, so its own edits do not count as changes).
pub fn commit() -> String {
    let root = workspace_root();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(hash) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let exclude_doc = format!(":(exclude){PERFORMANCE_DOC}");
    match git(&["status", "--porcelain", "--", ".", &exclude_doc]) {
        Some(changes) if changes.is_empty() => hash,
        _ => format!("{hash} + uncommitted changes"),
    }
}

/// The machine: cores and CPU model.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}")
}

/// The 1-minute load average: on a shared machine, what else ran shows in the figures,
/// so the block says how busy the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The UTC date of `time` as YYYY-MM-DD.
pub fn date(time: SystemTime) -> String {
    let days = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch); no date crate for one line.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March is 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// "7 min 12 s".
pub fn duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    if seconds < 60 {
        format!("{seconds} s")
    } else {
        format!("{} min {} s", seconds / 60, seconds % 60)
    }
}

/// What a run records when it starts, for its block.
pub struct RunStart {
    pub commit: String,
    pub time: SystemTime,
    pub clock: Instant,
    pub load: String,
}

impl RunStart {
    /// Call before the run changes anything (see [`commit`]).
    pub fn now() -> Self {
        Self {
            commit: commit(),
            time: SystemTime::now(),
            clock: Instant::now(),
            load: load_average(),
        }
    }

    /// The lines of the block that heads the run's tables.
    pub fn block_lines(&self, command: &str) -> Vec<String> {
        vec![
            format!(
                "- command: `{command}` (took {})",
                duration(self.clock.elapsed())
            ),
            format!("- commit: {}", self.commit),
            format!("- date: {} (UTC)", date(self.time)),
            format!("- machine: {}", machine()),
            format!(
                "- load average (1 min) at the start and the end: {} and {}",
                self.load,
                load_average()
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_around_leap_days_and_year_ends() {
        let at = |days: u64| date(UNIX_EPOCH + Duration::from_secs(days * 86_400 + 3_600));
        assert_eq!(at(0), "1970-01-01");
        assert_eq!(at(59), "1970-03-01");
        assert_eq!(at(11_016), "2000-02-29");
        assert_eq!(at(20_818), "2026-12-31");
        assert_eq!(at(20_819), "2027-01-01");
        assert_eq!(at(20_792), "2026-12-05");
    }

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(432)), "7 min 12 s");
    }
}
