//! Kubernetes' lists library: `isSorted()`, `sum()`, `min()`, `max()`, `indexOf(x)`,
//! `lastIndexOf(x)` and `includes(x)` on lists.
//!
//! Upstream declares them for lists of one type; a list from JSON may mix `int` and `double`
//! where the schema says `number` (ferry decodes integral numbers as `int`), so `sum` adds
//! such a list as doubles, and `min`/`max` compare across numeric types as CEL does.

use std::cmp::Ordering;

use cel::common::types::{CelDouble, CelInt, CelUInt, DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{elements, error, take_args};

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list.isSorted()", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list.sum()", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list.min()", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list.max()", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list.indexOf(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list.lastIndexOf(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    env.add_member_overload(
        "includes",
        "list.includes(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        includes,
    )?;
    Ok(())
}

/// `a` compared with `b`: an error when they are not comparable.
fn compare(a: &dyn Val, b: &dyn Val) -> Result<Ordering, ExecutionError> {
    a.as_comparer()
        .ok_or_else(|| {
            ExecutionError::no_such_overload(
                "_<_",
                vec![a.get_type().name().into(), b.get_type().name().into()],
            )
        })?
        .compare(b)
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = take_args(args)?;
    let items = elements(list.as_ref())?;
    for pair in items.windows(2) {
        if compare(pair[0], pair[1])? == Ordering::Greater {
            return Ok(CowVal::owned(cel::common::types::CelBool::from(false)));
        }
    }
    Ok(CowVal::owned(cel::common::types::CelBool::from(true)))
}

/// The sum: an `int` (0 for an empty list) or `uint` for lists of those, a `double` when
/// numbers are mixed, else what the elements' `+` gives.
fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = take_args(args)?;
    let items = elements(list.as_ref())?;
    let overflow = || error("sum", "integer overflow");
    if items.iter().all(|v| v.downcast_ref::<CelInt>().is_some()) {
        let mut total: i64 = 0;
        for item in &items {
            let value = item.downcast_ref::<CelInt>().map_or(0, |i| *i.inner());
            total = total.checked_add(value).ok_or_else(overflow)?;
        }
        return Ok(CowVal::owned(CelInt::from(total)));
    }
    if items.iter().all(|v| v.downcast_ref::<CelUInt>().is_some()) {
        let mut total: u64 = 0;
        for item in &items {
            let value = item.downcast_ref::<CelUInt>().map_or(0, |u| *u.inner());
            total = total.checked_add(value).ok_or_else(overflow)?;
        }
        return Ok(CowVal::owned(CelUInt::from(total)));
    }
    let numbers: Option<Vec<f64>> = items.iter().map(|v| as_f64(*v)).collect();
    if let Some(numbers) = numbers {
        return Ok(CowVal::owned(CelDouble::from(numbers.iter().sum::<f64>())));
    }
    // Other summable values (durations): their own `+`.
    let mut iter = items.into_iter();
    let Some(first) = iter.next() else {
        return Ok(CowVal::owned(CelInt::from(0)));
    };
    let mut total: Box<dyn Val + 'v> = first.clone_as_boxed();
    for item in iter {
        let adder = total.as_adder().ok_or_else(|| {
            error(
                "sum",
                format!("no such overload: {}", item.get_type().name()),
            )
        })?;
        let next = adder.add(item)?.into_owned();
        total = next;
    }
    Ok(CowVal::Owned(total))
}

fn as_f64(value: &dyn Val) -> Option<f64> {
    if let Some(i) = value.downcast_ref::<CelInt>() {
        return Some(*i.inner() as f64);
    }
    if let Some(u) = value.downcast_ref::<CelUInt>() {
        return Some(*u.inner() as f64);
    }
    value.downcast_ref::<CelDouble>().map(|d| *d.inner())
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "min", Ordering::Greater)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "max", Ordering::Less)
}

/// The first element that no later one beats: one is replaced by the next when it compares
/// as `replace_when` to it (upstream's `cmp`).
fn extreme<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    function: &str,
    replace_when: Ordering,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = take_args(args)?;
    let items = elements(list.as_ref())?;
    let mut result: Option<&(dyn Val + 'v)> = None;
    for item in items {
        result = match result {
            Some(current) if compare(current, item)? != replace_when => Some(current),
            _ => Some(item),
        };
    }
    match result {
        Some(value) => Ok(CowVal::Owned(value.clone_as_boxed())),
        None => Err(error(function, format!("{function} called on empty list"))),
    }
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, item] = take_args(args)?;
    let items = elements(list.as_ref())?;
    let index = items.iter().position(|v| v.equals(item.as_ref()));
    Ok(CowVal::owned(CelInt::from(index.map_or(-1, |i| i as i64))))
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, item] = take_args(args)?;
    let items = elements(list.as_ref())?;
    let index = items.iter().rposition(|v| v.equals(item.as_ref()));
    Ok(CowVal::owned(CelInt::from(index.map_or(-1, |i| i as i64))))
}

fn includes<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, item] = take_args(args)?;
    let items = elements(list.as_ref())?;
    let found = items.iter().any(|v| v.equals(item.as_ref()));
    Ok(CowVal::owned(cel::common::types::CelBool::from(found)))
}

#[cfg(test)]
mod tests {
    use crate::testing::{eval, eval_err};

    #[test]
    fn upstream_examples() {
        let cases = [
            "[1, 2, 3].isSorted()",
            "!['a', 'c', 'b'].isSorted()",
            "[1, 2, 3].sum() == 6",
            "[1.0, 2.5].sum() == 3.5",
            "[1u, 2u].sum() == 3u",
            "[].sum() == 0",
            "[1, 2, 3].min() == 1",
            "[1, 2, 3].max() == 3",
            "['b', 'a', 'c'].min() == 'a'",
            "[0, 1, 2, 3, 2].indexOf(2) == 2",
            "[0, 1, 2, 3, 2].lastIndexOf(2) == 4",
            "['a', 'b'].indexOf('c') == -1",
            "[[1], [2]].indexOf([2]) == 1",
            "[1, 2].includes(2) && ![1, 2].includes(3)",
            // The strings extension's indexOf still applies to strings.
            "'abcb'.indexOf('b') == 1 && 'abcb'.lastIndexOf('b') == 3",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }

    #[test]
    fn json_numbers_mix_ints_and_doubles() {
        let list = serde_json::json!([1, 2.5, 0.5]);
        let program =
            crate::Program::compile("self.sum() == 4.0 && self.max() == 2.5 && self.min() == 0.5")
                .expect("compiles");
        assert_eq!(program.eval_bool(&[("self", &list)]), Ok(true));
    }

    #[test]
    fn errors_are_upstreams() {
        assert!(eval_err("[].min()").contains("min called on empty list"));
        assert!(eval_err("[].max()").contains("max called on empty list"));
        assert!(eval_err("[9223372036854775807, 1].sum()").contains("integer overflow"));
    }
}
