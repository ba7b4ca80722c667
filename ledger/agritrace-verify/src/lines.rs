//! The line reader of the strict text formats (reading proofs, evidence bundles): one
//! newline-terminated line at a time, with its one-based number, and labelled lines
//! (`<label> <value>`) that the parsers turn into errors naming the line.

/// The labelled lines, one at a time, with their line numbers.
pub(crate) struct Lines<'a> {
    /// What is left to read.
    pub(crate) rest: &'a str,
    /// Number of the line `next` returned last (0 before the first).
    pub(crate) number: usize,
}

/// The next line is not the `<label> <value>` line expected (nothing was consumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MissingLine {
    /// Its line number.
    pub(crate) line: usize,
    /// The label expected there.
    pub(crate) label: &'static str,
}

impl<'a> Lines<'a> {
    /// Lines of `text`, before the first.
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            rest: text,
            number: 0,
        }
    }

    /// The next newline-terminated line (without its newline), or `None` at the end.
    pub(crate) fn next(&mut self) -> Option<&'a str> {
        let (line, tail) = self.rest.split_once('\n')?;
        self.rest = tail;
        self.number += 1;
        Some(line)
    }

    /// Whether the next line carries `label`.
    pub(crate) fn peek_is(&self, label: &str) -> bool {
        self.rest
            .strip_prefix(label)
            .is_some_and(|after| after.starts_with(' '))
    }

    /// The value of the next line, which must be a whole `<label> <value>` line.
    pub(crate) fn labelled(
        &mut self,
        label: &'static str,
    ) -> Result<(usize, &'a str), MissingLine> {
        let missing = MissingLine {
            line: self.number + 1,
            label,
        };
        if !self.peek_is(label) {
            return Err(missing);
        }
        let line = self.next().ok_or(missing)?;
        Ok((self.number, &line[label.len() + 1..]))
    }
}
