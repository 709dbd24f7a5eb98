//! Text from others, made safe to show: one sanitiser for every string a
//! person reads that someone else wrote (message texts, names, group
//! names, reasons from the relay).
//!
//! A character that changes how other text is shown rather than showing
//! itself is shown escaped as `\u{..}`: controls (general category Cc:
//! ESC and so terminal sequences, newlines that could draw a fake line
//! "from" someone else), format characters (Cf: bidi overrides and
//! isolates such as U+202E, zero-width characters that make "Sam" and
//! "Sam\u{200b}" look alike) and line and paragraph separators (Zl, Zp).
//! The categories come from Unicode's own data (Unicode Standard Annex
//! #44, through `unicode-properties`), not from a table of our own.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` changes how other text is shown rather than showing itself.
pub fn is_hidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// `text` as it is safe to show: every hidden character (see [`is_hidden`])
/// escaped as `\u{hex}`; the rest as it is.
pub fn safe_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_bidi_overrides_and_invisible_characters_are_shown_escaped() {
        assert_eq!(safe_text("plain text, é 日本"), "plain text, é 日本");
        assert_eq!(safe_text("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(safe_text("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(
            safe_text("ok\n[12:00] sam: fake"),
            "ok\\u{a}[12:00] sam: fake"
        );
        assert_eq!(safe_text("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(safe_text("Sam\u{200b}"), "Sam\\u{200b}");
        assert_eq!(safe_text("a\u{2028}b"), "a\\u{2028}b");
        assert!(!safe_text("\u{9b}31m").contains('\u{9b}'), "C1 CSI");
    }
}
