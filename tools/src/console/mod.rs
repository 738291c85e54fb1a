//! A guest's console: running the guest and collecting its lines, and reading them back.
//!
//! Runs a guest (QEMU, with or without Xen inside) under a deadline and collects its
//! console line by line, with the time each line arrived (a domU's long lines, which
//! Xen's vpl011 prints in pieces, are joined back: `pieces`). The caller decides when it has
//! seen enough; the guest is killed then, at the deadline, or reaped when it exits.

pub mod boot_failure;
pub mod pieces;
pub mod run_queues;
pub mod stall_probe;

use crate::process::workspace_root;
use pieces::Rejoin;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why watching ended.
#[derive(Debug)]
pub enum End {
    /// `stop` returned true for this line (index into `lines`).
    Stopped(usize),
    /// The guest exited on its own.
    Exited(ExitStatus),
    /// The deadline passed.
    TimedOut,
}

/// Everything the guest printed, and how it ended.
pub struct Transcript {
    pub lines: Vec<(Duration, String)>,
    pub end: End,
    /// Where the full transcript was saved.
    pub log: PathBuf,
}

#[cfg(test)]
impl Transcript {
    /// A transcript of `lines`, all at time zero, stopped at the last: for tests of the
    /// checks that read one.
    pub fn of(lines: &[&str]) -> Self {
        Self {
            lines: lines
                .iter()
                .map(|l| (Duration::ZERO, l.to_string()))
                .collect(),
            end: End::Stopped(lines.len().saturating_sub(1)),
            log: PathBuf::from("x.log"),
        }
    }
}

impl Transcript {
    /// The first line containing `needle`, with its arrival time.
    pub fn find(&self, needle: &str) -> Option<&(Duration, String)> {
        self.lines.iter().find(|(_, line)| line.contains(needle))
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let skip = self.lines.len().saturating_sub(n);
        let lines: Vec<&str> = self
            .lines
            .iter()
            .skip(skip)
            .map(|(_, l)| l.as_str())
            .collect();
        lines.join("\n")
    }
}

/// What watching does after a line.
pub enum Next {
    /// Go on watching.
    Go,
    /// Enough: end the guest.
    Stop,
    /// Type these bytes into the guest's console (QEMU's stdin), then go on.
    Type(Vec<u8>),
}

/// Runs `command` (stdin closed, stdout+stderr collected) until `stop` accepts a line, the
/// guest exits, or `deadline` passes; saves the transcript as `target/logs/<name>.log`,
/// written as the lines come so that a long run can be followed (`tail -f`).
pub fn watch(
    name: &str,
    command: &mut Command,
    deadline: Duration,
    mut stop: impl FnMut(&str) -> bool,
) -> Result<Transcript, String> {
    let decide = |line: &str| if stop(line) { Next::Stop } else { Next::Go };
    watch_and_type(name, command, deadline, false, decide)
}

/// What the watcher passes to `decide` (and logs) when a typing guest printed nothing for
/// [`SILENCE`]: idle, or the emulated machine (or everything in it that prints) stopped.
pub const SILENT_LINE: &str = "xtask: no console output for 30 s";
/// How long a typing guest may stay silent before [`SILENT_LINE`]. stubvirt prints its
/// counters every 2 s, and the Linux frontends print as they go.
const SILENCE: Duration = Duration::from_secs(30);

/// [`watch`], where `decide` may also type into the guest's console (with `typing`,
/// QEMU's stdin is a pipe instead of closed, and a silence of [`SILENCE`] is reported to
/// `decide` as [`SILENT_LINE`]).
pub fn watch_and_type(
    name: &str,
    command: &mut Command,
    deadline: Duration,
    typing: bool,
    mut decide: impl FnMut(&str) -> Next,
) -> Result<Transcript, String> {
    let shown = format!("{command:?}");
    let start = Instant::now();
    let mut child = command
        .current_dir(workspace_root())
        .stdin(if typing {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let readers: Vec<Box<dyn Read + Send>> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for mut reader in readers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut keyboard = child.stdin.take();

    let log = workspace_root()
        .join("target/logs")
        .join(format!("{name}.log"));
    let _ = std::fs::create_dir_all(log.parent().unwrap_or(&log));
    let mut live = std::fs::File::create(&log).ok();
    let mut lines = Vec::new();
    let mut partial = Vec::new();
    let mut rejoin = Rejoin::default();
    let mut end = None;
    while end.is_none() {
        let left = deadline.saturating_sub(start.elapsed());
        let wait = if typing { left.min(SILENCE) } else { left };
        let received = match rx.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) if wait < left => {
                Ok(format!("{SILENT_LINE}\n").into_bytes())
            }
            other => other,
        };
        match received {
            Ok(chunk) => {
                partial.extend_from_slice(&chunk);
                while let Some(pos) = partial.iter().position(|&b| b == b'\n') {
                    let raw: Vec<u8> = partial.drain(..pos).collect();
                    partial.drain(..1);
                    let Some(line) = rejoin.push(&String::from_utf8_lossy(&raw)) else {
                        continue;
                    };
                    let line = line.trim_end().to_string();
                    let hit = match decide(&line) {
                        Next::Go => false,
                        Next::Stop => true,
                        Next::Type(keys) => {
                            if let Some(stdin) = keyboard.as_mut() {
                                let _ = stdin.write_all(&keys).and_then(|()| stdin.flush());
                            }
                            false
                        }
                    };
                    let at = start.elapsed();
                    if let Some(file) = live.as_mut() {
                        let _ = file.write_all(log_line(at, &line).as_bytes());
                    }
                    lines.push((at, line));
                    if hit {
                        end = Some(End::Stopped(lines.len() - 1));
                        break;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => end = Some(End::TimedOut),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(|e| format!("{shown}: {e}"))?;
                end = Some(End::Exited(status));
            }
        }
    }
    // What arrived after the deciding line (same chunk) or without a final newline.
    let written = lines.len();
    for rest in rejoin.flush() {
        lines.push((start.elapsed(), rest));
    }
    for rest in String::from_utf8_lossy(&partial).lines() {
        lines.push((start.elapsed(), rest.trim_end().to_string()));
    }
    // The guest may still run (stopped early, timed out): end it; it is our child.
    let _ = child.kill();
    let _ = child.wait();

    if let Some(file) = live.as_mut() {
        for (at, line) in lines.iter().skip(written) {
            let _ = file.write_all(log_line(*at, line).as_bytes());
        }
    }
    let end = end.unwrap_or(End::TimedOut);
    Ok(Transcript { lines, end, log })
}

/// One line of a saved transcript: the time since the start, then the line.
fn log_line(at: Duration, line: &str) -> String {
    format!("[{:8.3}] {line}\n", at.as_secs_f64())
}

/// Prints the median of boot timings (seconds) under `label`.
pub fn print_median(label: &str, mut times: Vec<f64>) {
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    println!(
        "    {label}: median {median:.2} s over {} run(s)",
        times.len()
    );
}
