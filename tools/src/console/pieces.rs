//! Xen's vpl011 (a domU's console in a dom0less system) prints a guest's output a line at
//! a time, but a line longer than its 128-byte buffer allows is cut: every 126 bytes
//! become a console line of their own, `(XEN) DOM<n>: <piece>`. stubvirt's counters and
//! some of Linux's lines are longer than that. [`Rejoin`] glues the pieces of each domain
//! back together, so the rest of the tools read whole lines on every route.

/// Bytes of one full piece: vpl011's buffer less the newline and NUL it adds.
const PIECE: usize = 126;

/// Pieces waiting for the rest of their line, by domain prefix (`DOM<n>: `).
#[derive(Default)]
pub struct Rejoin {
    pending: Vec<(String, String)>,
}

impl Rejoin {
    /// Takes one console line as it arrived (without its `\n`); returns the whole line to
    /// use now, or `None` while the line is still incomplete.
    pub fn push(&mut self, raw: &str) -> Option<String> {
        // Xen's serial output ends each line with "\r\n".
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let Some((prefix, payload)) = split_domain(line) else {
            return Some(raw.to_string());
        };
        let slot = self.pending.iter().position(|(p, _)| *p == prefix);
        if payload.len() == PIECE {
            match slot {
                Some(i) => self.pending[i].1.push_str(payload),
                None => self.pending.push((prefix.to_string(), payload.to_string())),
            }
            return None;
        }
        match slot {
            Some(i) => {
                let (prefix, head) = self.pending.swap_remove(i);
                Some(format!("{}{prefix}{head}{payload}", line_start(line)))
            }
            None => Some(raw.to_string()),
        }
    }

    /// Whatever is still waiting (the guest stopped mid-line), as lines.
    pub fn flush(&mut self) -> Vec<String> {
        self.pending
            .drain(..)
            .map(|(prefix, head)| format!("(XEN) {prefix}{head}"))
            .collect()
    }
}

/// What stands before the `DOM<n>: ` prefix (Xen's `(XEN) `, possibly empty).
fn line_start(line: &str) -> &str {
    line.find("DOM").and_then(|i| line.get(..i)).unwrap_or("")
}

/// `("DOM<n>: ", payload)` of a vpl011 line: `DOM`, digits, `: ` after an optional
/// `(XEN) `.
fn split_domain(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("(XEN) ").unwrap_or(line);
    let digits = rest.strip_prefix("DOM")?;
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || digits.get(n..n + 2) != Some(": ") {
        return None;
    }
    let prefix_len = 3 + n + 2;
    Some((rest.get(..prefix_len)?, rest.get(prefix_len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_the_pieces_of_each_domain() {
        let mut r = Rejoin::default();
        let first = "a".repeat(PIECE);
        let second = "b".repeat(PIECE);
        assert_eq!(r.push(&format!("(XEN) DOM1: {first}\r")), None);
        // Another domain's line and Xen's own in between pass through unchanged.
        assert_eq!(
            r.push("(XEN) DOM2: [ 1.0] eth0: up\r").as_deref(),
            Some("(XEN) DOM2: [ 1.0] eth0: up\r")
        );
        assert_eq!(
            r.push("(XEN) d2v0 hello").as_deref(),
            Some("(XEN) d2v0 hello")
        );
        assert_eq!(r.push(&format!("(XEN) DOM1: {second}")), None);
        assert_eq!(
            r.push("(XEN) DOM1: tail=1\r").as_deref(),
            Some(format!("(XEN) DOM1: {first}{second}tail=1").as_str())
        );
        // A line of exactly one piece ends with an empty piece.
        assert_eq!(r.push(&format!("DOM3: {first}")), None);
        assert_eq!(
            r.push("DOM3: ").as_deref(),
            Some(format!("DOM3: {first}").as_str())
        );
        assert!(r.flush().is_empty());
    }

    #[test]
    fn short_lines_and_other_text_pass_through() {
        let mut r = Rejoin::default();
        for line in ["plain", "(XEN) DOMx: no digits", "DOM12 no colon", ""] {
            assert_eq!(r.push(line).as_deref(), Some(line));
        }
        assert_eq!(r.push(&format!("(XEN) DOM4: {}", "c".repeat(PIECE))), None);
        assert_eq!(
            r.flush(),
            vec![format!("(XEN) DOM4: {}", "c".repeat(PIECE))]
        );
    }
}
