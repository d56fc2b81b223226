//! Go's `strconv.Quote` (the `%q` verb), as upstream Kubernetes prints strings in its messages
//! (`Unsupported value: "x"`, field paths with keys) and files (the downward API's
//! `key="value"` lines): one implementation for every crate that must print them as Go does.

/// Go's `strconv.Quote` (`%q`): printable characters as they are, the C escapes, `\x` for the
/// other ASCII controls and `\u`/`\U` for other non-printable characters. Go's `IsPrint` is
/// approximated by its Unicode categories known here (controls, non-ASCII spaces, line and
/// paragraph separators, common format characters, private use, noncharacters); unassigned
/// code points are taken as printable.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if !go_is_print(c) => {
                let code = u32::from(c);
                if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn go_is_print(c: char) -> bool {
    let code = u32::from(c);
    let not_printable = c.is_control()
        // Space separators other than U+0020, and the line and paragraph separators.
        || matches!(code, 0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000)
        // Format characters.
        || matches!(code, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
            | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb
            | 0xe0001 | 0xe0020..=0xe007f)
        // Private use.
        || matches!(code, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd)
        // Noncharacters.
        || matches!(code, 0xfdd0..=0xfdef)
        || code & 0xfffe == 0xfffe;
    !not_printable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        for (input, want) in [
            ("plain", r#""plain""#),
            ("q\"b\\", r#""q\"b\\""#),
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            ("\u{1}\u{1b}\u{7f}", r#""\x01\x1b\x7f""#),
            ("héllo ☃ 日本", r#""héllo ☃ 日本""#),
            ("nb\u{a0}sp\u{200b}\u{85}", r#""nb\u00a0sp\u200b\u0085""#),
            ("\u{f0000}", r#""\U000f0000""#),
        ] {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }
}
