//! Logs through `tracing`: human-readable lines by default, one JSON
//! object a line with `--log-format json` (or `[log] format = "json"`).
//! Every line of a call's task is inside the span `call` whose field
//! `call_sid` is the SID of the call's detail record (JSON: under `span`).
//! With `[log] mask_numbers = true`, phone numbers are masked in every line
//! as it is written (see [`mask_numbers`]). The filter comes from
//! `MEDIATOR_LOG` (default `info`).

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON object a line.
    Json,
}

impl Format {
    /// Reads `text` or `json` (empty: text).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "" | "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Sets the process's subscriber, writing to stderr. A second call does
/// nothing.
pub fn init(format: Format, mask: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIATOR_LOG")
        .unwrap_or_else(|_| "info".into());
    let writer = MaskingWriter { mask };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        Format::Text => builder
            .with_ansi(!mask && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        Format::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Masks phone numbers in `line`: every run of 7 to 15 ASCII digits (with
/// an optional leading `+`) that is not part of a word, a SID or a longer
/// number (no letter, digit, `-` or `_` next to it) keeps its first four
/// and last four digits when it has ten or more (`+15551234567` becomes
/// `+1555***4567`), else its first two and last two.
pub fn mask_numbers(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !word(b[i - 1])) {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let len = j - i;
            let next_ok = j == b.len() || !word(b[j]);
            if (7..=15).contains(&len) && next_ok {
                let keep = if len >= 10 { 4 } else { 2 };
                out.push_str(&line[i..i + keep]);
                out.push_str("***");
                out.push_str(&line[j - keep..j]);
            } else {
                out.push_str(&line[i..j]);
            }
            i = j;
        } else {
            // Copy one whole UTF-8 character.
            let ch = line[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&line[i..i + ch]);
            i += ch;
        }
    }
    out
}

/// Makes a [`LineWriter`] per event.
#[derive(Clone, Copy)]
struct MaskingWriter {
    mask: bool,
}

impl<'a> MakeWriter<'a> for MaskingWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            mask: self.mask,
            buf: Vec::new(),
        }
    }
}

/// Collects one event's output and writes it to stderr at once (masked
/// when asked), so that lines of concurrent events never interleave.
struct LineWriter {
    mask: bool,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = if self.mask {
            mask_numbers(&text)
        } else {
            text.into_owned()
        };
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::mask_numbers;

    #[test]
    fn numbers_are_masked_sids_and_small_numbers_are_not() {
        assert_eq!(mask_numbers("from +15551234567 to"), "from +1555***4567 to");
        assert_eq!(
            mask_numbers("sip:15162065300@127.0.0.1:5060"),
            "sip:1516***5300@127.0.0.1:5060"
        );
        assert_eq!(mask_numbers("\"4930123\""), "\"49***23\"");
        // A SID (UUID) keeps its digits, so do ports and short numbers.
        let sid = "12345678-1234-4123-8123-123456789012";
        assert_eq!(mask_numbers(sid), sid);
        assert_eq!(mask_numbers("port 5060 status 486"), "port 5060 status 486");
        assert_eq!(mask_numbers("x1234567890"), "x1234567890");
        assert_eq!(mask_numbers("héllo 1234567 ü"), "héllo 12***67 ü");
    }
}
