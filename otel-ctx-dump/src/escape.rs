//! Making strings taken from the target inert on a terminal. Every renderer goes through here:
//! the text report per string ([`printable`]) and once more per output ([`inert`]), JSON through
//! its formatter.

use std::borrow::Cow;

/// Does this character act on a terminal (C0 and C1 controls, DEL), reorder the text around it
/// (bidirectional overrides and isolates) or break a line where a reader does not expect one
/// (U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR)?
pub fn is_terminal_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// A string from the target as the text report prints it: controls become Rust-style escapes
/// (`\u{1b}`, `\r`, `\n`) and a backslash is doubled, so it is inert and unambiguous.
pub fn printable(s: &str) -> Cow<'_, str> {
    escaped(s, |c| c == '\\' || is_terminal_control(c))
}

/// A whole rendered text, made inert once more before it is written: every control but the
/// newlines the renderer put there is escaped. A net under [`printable`]: a string a renderer
/// forgot to pass through it still cannot act on the terminal.
pub fn inert(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c != '\n' && is_terminal_control(c))
}

/// `s` with the characters `hit` selects as Rust escapes them (`\\`, `\r`, `\u{1b}`), or in the
/// `\u{…}` form where Rust prints the character as is.
fn escaped(s: &str, hit: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&hit) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c.escape_debug() {
            _ if !hit(c) => out.push(c),
            debug if debug.len() > 1 => out.extend(debug),
            _ => out.extend(c.escape_unicode()),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_acts_on_a_terminal() {
        assert!(matches!(printable("plain name"), Cow::Borrowed(_)));
        assert_eq!(printable("\u{1b}[31mred\r\n"), "\\u{1b}[31mred\\r\\n");
        assert_eq!(printable("a\\b\u{7f}\u{9b}\u{202e}"), "a\\\\b\\u{7f}\\u{9b}\\u{202e}");
        assert_eq!(printable("é ok"), "é ok");
    }

    #[test]
    fn line_and_paragraph_separators_are_escaped() {
        assert_eq!(printable("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        // Their neighbours are ordinary punctuation (control: the escape is not blanket).
        assert_eq!(printable("a\u{2027}b\u{2030}"), "a\u{2027}b\u{2030}");
    }

    #[test]
    fn inert_keeps_newlines_and_escapes_the_rest() {
        assert!(matches!(inert("line one\nline two\n"), Cow::Borrowed(_)));
        assert_eq!(inert("x\u{1b}]0;title\u{7}\n"), "x\\u{1b}]0;title\\u{7}\n");
        // A backslash is left alone: the renderer's own escapes stay readable.
        assert_eq!(inert("\"a\\\"b\"\n"), "\"a\\\"b\"\n");
    }
}
