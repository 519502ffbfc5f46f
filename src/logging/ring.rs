//! A bounded buffer of a server's stderr lines.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Bytes of one line that are kept; the rest is cut (see `BoundedLines`).
pub const LINE_BYTES: usize = 4096;

/// Keeps the last `capacity` lines.
#[derive(Debug)]
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
    capacity: usize,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        LogRing {
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(256))),
            capacity,
        }
    }

    pub fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        // A single line is capped too, so one huge line cannot hold the memory.
        let mut end = line.len().min(LINE_BYTES);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        lines.push_back(line[..end].to_string());
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The last `n` lines joined, for error messages.
    pub fn tail_text(&self, n: usize) -> String {
        self.tail(n).join("\n")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_last_lines() {
        let ring = super::LogRing::new(3);
        for i in 0..5 {
            ring.push(&format!("line {i}"));
        }
        assert_eq!(ring.tail(10), ["line 2", "line 3", "line 4"]);
        assert_eq!(ring.tail(1), ["line 4"]);
        assert_eq!(ring.tail_text(2), "line 3\nline 4");
    }
}
