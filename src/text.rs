//! Text that reaches a person: what may be in a name, and how stored text is written to a log
//! or a terminal (issue 18 finding 5).
//!
//! Names and usernames are refused at the boundary when they hold a control character (C0,
//! DEL, C1) or a bidirectional formatting character (U+202A–U+202E, U+2066–U+2069, the marks
//! U+200E, U+200F, U+061C): those forge log lines, move a terminal's cursor, or make a consent
//! page read "evil" as "live". Text typed by anyone (a username at the login page) is still
//! stored as typed, so every text output escapes those characters with [`escape`].

use std::borrow::Cow;
use std::fmt::Write as _;

/// A character that must not be shown raw: a control or bidi formatting character.
/// How long ago unix time `t` was at `now`, in words ("3 min ago"): the account page and
/// `latchkey user sessions`.
pub fn ago(t: i64, now: i64) -> String {
    match now - t {
        i64::MIN..60 => "just now".into(),
        d @ 60..3600 => format!("{} min ago", d / 60),
        d @ 3600..86400 => format!("{} h ago", d / 3600),
        d => format!("{} days ago", d / 86400),
    }
}

pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// 1 to `max` bytes, none of them [`is_unsafe`]: the rule for names, usernames and emails.
pub fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(is_unsafe)
}

/// `s` with every [`is_unsafe`] character written as `\u{..}` (and a backslash as `\\`, so an
/// escape cannot be forged either); borrowed when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer for text logs: each record arrives in one `write` (tracing-subscriber formats a
/// whole line, then writes it), and everything in it but the final newline is escaped, so no
/// field of any event can end a line early, start a forged one or send a terminal sequence.
pub struct EscapingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (&*text, ""),
        };
        let escaped = escape_log(body);
        self.0.write_all(escaped.as_bytes())?;
        self.0.write_all(newline.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Like [`escape`] but leaves backslashes alone: a log line's own quoting (`\"` in Debug
/// output) stays readable, and a forged `\u{..}` is harmless text in a log.
fn escape_log(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("a\x1b[31mb"), "a\\u{1b}[31mb");
        assert_eq!(escape("a\r\nb"), "a\\u{d}\\u{a}b");
        assert_eq!(escape("evil\u{202E}lmth"), "evil\\u{202e}lmth");
        assert_eq!(escape("nul\0"), "nul\\u{0}");
        assert_eq!(escape("\u{85}"), "\\u{85}");
        assert_eq!(escape("a\\u{a}"), "a\\\\u{a}");
        assert_eq!(escape("Zoë 日本"), "Zoë 日本");
    }

    #[test]
    fn names_with_control_or_bidi_characters_are_not_printable() {
        assert!(printable("Zoë's app", 200));
        for bad in [
            "",
            "a\nb",
            "a\u{202E}b",
            "a\0",
            "a\u{2066}",
            "a\u{7f}",
            "a\u{9b}",
        ] {
            assert!(!printable(bad, 200), "{bad:?}");
        }
        assert!(!printable(&"a".repeat(201), 200));
    }

    #[test]
    fn the_log_writer_keeps_one_record_on_one_line() {
        let mut w = EscapingWriter(Vec::new());
        w.write_all(b"INFO audit actor=user:x\r\nFAKE ERROR \x1b[2Jdone\n")
            .unwrap();
        let out = String::from_utf8(w.0).unwrap();
        assert_eq!(
            out,
            "INFO audit actor=user:x\\u{d}\\u{a}FAKE ERROR \\u{1b}[2Jdone\n"
        );
    }
}
