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

/// Unix time `t` as `2026-12-07 20:30 UTC` (the console's tables).
pub fn utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86400), t.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// `YYYY-MM-DDTHH:MM` (an HTML `datetime-local` value, read as UTC; a space may stand for the
/// `T`, and `:SS` may follow) as unix time; `None` for anything else.
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    let sec = match t.next() {
        Some(v) => v?,
        None => 0,
    };
    let valid = (1970..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..24).contains(&h)
        && (0..60).contains(&min)
        && (0..60).contains(&sec);
    if !valid {
        return None;
    }
    let days = days_from_civil(y, m, day);
    // Refuses 2026-02-31 and the like: the day must come back unchanged.
    (civil_from_days(days) == (y, m, day)).then_some(days * 86400 + h * 3600 + min * 60 + sec)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
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

    #[test]
    fn utc_dates_both_ways() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_796_675_400), "2026-12-07 20:30 UTC");
        assert_eq!(super::parse_utc("2026-12-07T20:30"), Some(1_796_675_400));
        assert_eq!(super::parse_utc("2026-12-07 20:30:15"), Some(1_796_675_415));
        assert_eq!(super::parse_utc("2024-02-29T00:00"), Some(1_709_164_800));
        for bad in [
            "",
            "2026-02-30T00:00",
            "2026-13-01T00:00",
            "2026-12-07",
            "2026-12-07T24:00",
            "x-y-zT1:2",
            "1969-12-31T23:59",
        ] {
            assert_eq!(super::parse_utc(bad), None, "{bad}");
        }
    }

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
