//! cel-go's `sets` extension, as Kubernetes enables it (1.29+): `sets.contains(list, sub)`
//! (every element of `sub` is in `list`), `sets.equivalent(a, b)` (each contains the other)
//! and `sets.intersects(a, b)` (an element in both). Elements are compared with CEL's `==`,
//! so `sets.contains([1], [1.0])` holds.

use cel::common::types::{CelBool, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{elements, take_args};

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let lists = || vec![LIST_TYPE, LIST_TYPE];
    env.add_overload(
        "sets.contains",
        "sets.contains(list,list)",
        lists(),
        contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "sets.equivalent(list,list)",
        lists(),
        equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "sets.intersects(list,list)",
        lists(),
        intersects,
    )?;
    Ok(())
}

/// Whether every element of `sub` equals one of `list`.
fn includes_all(list: &[&dyn Val], sub: &[&dyn Val]) -> bool {
    sub.iter().all(|s| list.iter().any(|l| l.equals(*s)))
}

fn contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, sub] = take_args(args)?;
    let found = includes_all(&elements(list.as_ref())?, &elements(sub.as_ref())?);
    Ok(CowVal::owned(CelBool::from(found)))
}

fn equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [a, b] = take_args(args)?;
    let (a, b) = (elements(a.as_ref())?, elements(b.as_ref())?);
    Ok(CowVal::owned(CelBool::from(
        includes_all(&a, &b) && includes_all(&b, &a),
    )))
}

fn intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [a, b] = take_args(args)?;
    let (a, b) = (elements(a.as_ref())?, elements(b.as_ref())?);
    let found = a.iter().any(|x| b.iter().any(|y| x.equals(*y)));
    Ok(CowVal::owned(CelBool::from(found)))
}

#[cfg(test)]
mod tests {
    use crate::testing::eval;

    #[test]
    fn cel_go_examples() {
        let cases = [
            "sets.contains([], [])",
            "sets.contains([1, 2, 3, 4], [2, 3])",
            "!sets.contains([1, 2, 3], [3, 4])",
            "sets.contains([1, 2.0, 3u], [1.0, 2u, 3])",
            "sets.contains([[1], [2, 3]], [[2, 3.0]])",
            "sets.equivalent([], [])",
            "sets.equivalent([1], [1, 1])",
            "sets.equivalent([1, 2, 3], [3u, 2.0, 1])",
            "!sets.equivalent([2, 1], [1])",
            "sets.intersects([1], [1, 2])",
            "sets.intersects([[1], [2, 3]], [[1, 2], [2, 3.0]])",
            "!sets.intersects([], [])",
            "!sets.intersects([1], [])",
            "!sets.intersects([1], [2])",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }
}
