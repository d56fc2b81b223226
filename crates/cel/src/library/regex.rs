//! Kubernetes' regex library: `find(regex)` (the first match, or `''`) and `findAll(regex)`,
//! `findAll(regex, limit)` (the matches, at most `limit` of them when it is not negative) on
//! strings. Patterns are RE2's syntax, which the `regex` crate shares.

use cel::common::types::{CelInt, CelList, CelString};
use cel::common::value::Val;
use cel::{DeclarationError, Env, ExecutionError};

use super::error;

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_member_overload!(env, fn find: (CelString, CelString) -> Result<CelString>)?;
    cel::add_member_overload!(env, fn find_all: (CelString, CelString) -> Result<CelList>)?;
    cel::add_member_overload!(env, fn find_all_limit: (CelString, CelString, CelInt) -> Result<CelList>,
        name = "findAll")?;
    Ok(())
}

fn compile(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| error(function, format!("Illegal regex: {e}")))
}

fn find(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
) -> Result<CelString<'static>, ExecutionError> {
    let found = compile("find", pattern.inner())?
        .find(this.inner())
        .map(|m| m.as_str().to_string());
    Ok(found.unwrap_or_default().into())
}

fn find_all(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
) -> Result<CelList<'static>, ExecutionError> {
    matches(this, pattern, -1)
}

fn find_all_limit(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
    limit: &CelInt,
) -> Result<CelList<'static>, ExecutionError> {
    matches(this, pattern, *limit.inner())
}

/// Go's `FindAllString(s, n)`: every match when `n` is negative, else at most `n`.
fn matches(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
    limit: i64,
) -> Result<CelList<'static>, ExecutionError> {
    let regex = compile("findAll", pattern.inner())?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let found: Vec<Box<dyn Val>> = regex
        .find_iter(this.inner())
        .take(limit)
        .map(|m| Box::new(CelString::from(m.as_str().to_string())) as Box<dyn Val>)
        .collect();
    Ok(CelList::from(found))
}

#[cfg(test)]
mod tests {
    use crate::testing::{eval, eval_err};

    #[test]
    fn upstream_examples() {
        let cases = [
            "'abc 123'.find('[0-9]+') == '123'",
            "'abc 123'.find('xyz') == ''",
            "'123 abc 456'.findAll('[0-9]+') == ['123', '456']",
            "'123 abc 456'.findAll('[0-9]+', 0) == []",
            "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
            "'123 abc 456'.findAll('[0-9]+', -1) == ['123', '456']",
            "'123 abc 456'.findAll('xyz') == []",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }

    #[test]
    fn an_invalid_regex_is_an_error() {
        let message = eval_err("'abc'.find('[')");
        assert!(message.contains("Illegal regex: "), "{message}");
        let message = eval_err("'abc'.findAll('(', 2)");
        assert!(message.contains("Illegal regex: "), "{message}");
    }
}
