//! Query parameters as upstream's servers read them.

/// A boolean as Go's `strconv.ParseBool` reads it: `1`, `t`, `T`, `true`, `TRUE`, `True` are
/// true; anything else (the false spellings, garbage) is not. Clients send all of these (the
/// Python client writes `True`).
pub fn parse_bool(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_spellings() {
        for yes in ["1", "t", "T", "true", "TRUE", "True"] {
            assert!(parse_bool(yes), "{yes}");
        }
        for no in ["0", "f", "false", "False", "yes", "", "tRuE"] {
            assert!(!parse_bool(no), "{no}");
        }
    }
}
