//! Kubernetes' quantity library: `quantity(string)`, `isQuantity(string)`, and on a quantity
//! `isInteger()`, `asInteger()`, `asApproximateFloat()`, `sign()`, `add(quantity|int)`,
//! `sub(quantity|int)`, `isGreaterThan(q)`, `isLessThan(q)` and `compareTo(q)`. Quantities
//! are equal when their values are (`quantity('1') == quantity('1000m')`).
//!
//! Parsing and arithmetic are ferry-api's exact [`Quantity`].

use ferry_api::quantity::Quantity;

use cel::common::types::{CelBool, CelDouble, CelInt, CelString, Kind, Type};
use cel::{DeclarationError, Env, ExecutionError};

use super::{error, opaque_value};

/// Upstream's `kubernetes.Quantity`.
static QUANTITY_TYPE: Type = Type::simple_type(Kind::Opaque, "kubernetes.Quantity");

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// A quantity value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuantityValue(Quantity);

opaque_value!(QuantityValue, &QUANTITY_TYPE);

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn quantity: (CelString) -> Result<QuantityValue>)?;
    cel::add_overload!(env, fn is_quantity: (CelString) -> CelBool)?;
    cel::add_member_overload!(env, fn is_integer: (QuantityValue) -> CelBool)?;
    cel::add_member_overload!(env, fn as_integer: (QuantityValue) -> Result<CelInt>)?;
    cel::add_member_overload!(env, fn as_approximate_float: (QuantityValue) -> CelDouble)?;
    cel::add_member_overload!(env, fn sign: (QuantityValue) -> CelInt)?;
    cel::add_member_overload!(env, fn add: (QuantityValue, QuantityValue) -> QuantityValue)?;
    cel::add_member_overload!(env, fn add_int: (QuantityValue, CelInt) -> QuantityValue,
        name = "add")?;
    cel::add_member_overload!(env, fn sub: (QuantityValue, QuantityValue) -> QuantityValue)?;
    cel::add_member_overload!(env, fn sub_int: (QuantityValue, CelInt) -> QuantityValue,
        name = "sub")?;
    cel::add_member_overload!(env, fn is_greater_than: (QuantityValue, QuantityValue) -> CelBool)?;
    cel::add_member_overload!(env, fn is_less_than: (QuantityValue, QuantityValue) -> CelBool)?;
    cel::add_member_overload!(env, fn compare_to: (QuantityValue, QuantityValue) -> CelInt)?;
    Ok(())
}

fn quantity(raw: &CelString<'_>) -> Result<QuantityValue, ExecutionError> {
    Quantity::parse(raw.inner())
        .map(QuantityValue)
        .map_err(|e| error("quantity", e))
}

fn is_quantity(raw: &CelString<'_>) -> CelBool {
    Quantity::parse(raw.inner()).is_ok().into()
}

/// Upstream's `AsInt64`: the value when it is whole and fits an `int64`.
fn whole(q: &QuantityValue) -> Option<i64> {
    let nanos = q.0.nanos();
    if nanos % NANO != 0 {
        return None;
    }
    i64::try_from(nanos / NANO).ok()
}

fn is_integer(q: &QuantityValue) -> CelBool {
    whole(q).is_some().into()
}

fn as_integer(q: &QuantityValue) -> Result<CelInt, ExecutionError> {
    whole(q)
        .map(CelInt::from)
        .ok_or_else(|| error("asInteger", "cannot convert value to integer"))
}

fn as_approximate_float(q: &QuantityValue) -> CelDouble {
    (q.0.nanos() as f64 / NANO as f64).into()
}

fn sign(q: &QuantityValue) -> CelInt {
    i64::from(q.0.nanos().signum() as i8).into()
}

fn add(q: &QuantityValue, other: &QuantityValue) -> QuantityValue {
    QuantityValue(q.0 + other.0)
}

fn add_int(q: &QuantityValue, other: &CelInt) -> QuantityValue {
    QuantityValue(q.0 + Quantity::from_units(*other.inner()))
}

fn sub(q: &QuantityValue, other: &QuantityValue) -> QuantityValue {
    QuantityValue(q.0 - other.0)
}

fn sub_int(q: &QuantityValue, other: &CelInt) -> QuantityValue {
    QuantityValue(q.0 - Quantity::from_units(*other.inner()))
}

fn is_greater_than(q: &QuantityValue, other: &QuantityValue) -> CelBool {
    (q.0 > other.0).into()
}

fn is_less_than(q: &QuantityValue, other: &QuantityValue) -> CelBool {
    (q.0 < other.0).into()
}

fn compare_to(q: &QuantityValue, other: &QuantityValue) -> CelInt {
    (q.0.cmp(&other.0) as i64).into()
}

#[cfg(test)]
mod tests {
    use crate::testing::{eval, eval_err};

    #[test]
    fn upstream_examples() {
        let cases = [
            "isQuantity('1.3G')",
            "isQuantity('1.3Gi')",
            "!isQuantity('1,3G')",
            "!isQuantity('10000k0')",
            "quantity('1.5G').isGreaterThan(quantity('200M'))",
            "!quantity('200M').isGreaterThan(quantity('1.5G'))",
            "quantity('200M').isLessThan(quantity('1.5G'))",
            "quantity('50k').isInteger()",
            "!quantity('99999999999999999999G').isInteger()",
            "!quantity('50m').isInteger()",
            "quantity('50k').asInteger() == 50000",
            "quantity('1.0').asInteger() == 1",
            "quantity('50k').asApproximateFloat() == 50000.0",
            "quantity('50m').asApproximateFloat() == 0.05",
            "quantity('50k').sign() == 1",
            "quantity('-50k').sign() == -1",
            "quantity('0').sign() == 0",
            "quantity('200M').compareTo(quantity('0.2G')) == 0",
            "quantity('50k').compareTo(quantity('50M')) == -1",
            "quantity('50M').compareTo(quantity('50k')) == 1",
            "quantity('50k').add(20) == quantity('50020')",
            "quantity('50k').add(quantity('20k')) == quantity('70k')",
            "quantity('50k').sub(20) == quantity('49980')",
            "quantity('50k').sub(quantity('20k')) == quantity('30k')",
            "quantity('50k').sub(quantity('100k')).sign() == -1",
            "quantity('1') == quantity('1000m')",
            "quantity('1Ki') != quantity('1k')",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }

    #[test]
    fn errors_are_upstreams() {
        let message = eval_err("quantity('1,3G')");
        assert!(
            message.contains("quantities must match the regular expression"),
            "{message}"
        );
        let message = eval_err("quantity('99999999999999999999G').asInteger()");
        assert!(
            message.contains("cannot convert value to integer"),
            "{message}"
        );
        let message = eval_err("quantity('50m').asInteger()");
        assert!(
            message.contains("cannot convert value to integer"),
            "{message}"
        );
    }
}
