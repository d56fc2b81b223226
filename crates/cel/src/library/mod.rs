//! Kubernetes' CEL libraries (k8s.io/apiserver/pkg/cel/library) and cel-go's `sets`
//! extension, declared as overloads on the environment every program runs in ([`register`]).
//!
//! Upstream's base environment has all of them in every environment, CRD validation rules
//! included: the authorizer's functions are declared there too, and are only reachable where
//! an `authorizer` variable is bound (admission policies).
//!
//! | module | functions |
//! |---|---|
//! | [`lists`] | `isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf`, `includes` on lists |
//! | [`regex`] | `find`, `findAll` on strings |
//! | [`url`] | `url`, `isURL`, `getScheme`, `getHost`, `getHostname`, `getPort`, `getEscapedPath`, `getQuery` |
//! | [`ip`] | `ip`, `isIP`, `ip.isCanonical`, `family`, `isUnspecified`, `isLoopback`, `isLinkLocalMulticast`, `isLinkLocalUnicast`, `isGlobalUnicast`, `string(ip)` |
//! | [`cidr`] | `cidr`, `isCIDR`, `containsIP`, `containsCIDR`, `ip`, `masked`, `prefixLength`, `string(cidr)` |
//! | [`quantity`] | `quantity`, `isQuantity`, `isInteger`, `asInteger`, `asApproximateFloat`, `sign`, `add`, `sub`, `isGreaterThan`, `isLessThan`, `compareTo` |
//! | [`format`](mod@format) | `format.named`, `format.<name>()`, `validate` |
//! | [`sets`] | `sets.contains`, `sets.equivalent`, `sets.intersects` |
//! | [`authz`] | `authorizer.path/group/serviceAccount`, `resource`, `subresource`, `namespace`, `name`, `fieldSelector`, `labelSelector`, `check`, `allowed`, `reason`, `errored`, `error` |

pub mod authz;
pub(crate) mod cidr;
pub(crate) mod format;
pub(crate) mod ip;
pub(crate) mod lists;
pub(crate) mod quantity;
pub(crate) mod regex;
pub(crate) mod sets;
pub(crate) mod url;

use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// Declares every library's overloads on `env`.
///
/// # Errors
///
/// Fails when an overload is already declared: a bug in these libraries, as none of them
/// overlaps the standard library or the extensions (they declare other names, or the same
/// names for other types).
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    lists::register(env)?;
    regex::register(env)?;
    url::register(env)?;
    ip::register(env)?;
    cidr::register(env)?;
    quantity::register(env)?;
    format::register(env)?;
    sets::register(env)?;
    authz::register(env)?;
    Ok(())
}

/// An error of `function`, with upstream's message.
pub(crate) fn error(function: &str, message: impl std::fmt::Display) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// The `N` arguments of an overload declared by hand.
pub(crate) fn take_args<'b, 'v, const N: usize>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<[CowVal<'b, 'v>; N], ExecutionError> {
    args.try_into()
        .map_err(|args: Vec<_>| ExecutionError::invalid_argument_count(N, args.len()))
}

/// The elements of a list (any value that iterates), borrowed.
pub(crate) fn elements<'b, 'v>(
    list: &'b (dyn Val + 'v),
) -> Result<Vec<&'b (dyn Val + 'v)>, ExecutionError> {
    let iterable = list
        .as_iterable()
        .ok_or_else(|| ExecutionError::UnexpectedType {
            got: list.get_type().name().to_owned(),
            want: "list".to_owned(),
        })?;
    let mut items = iterable.iter();
    let mut elements = Vec::new();
    while let Some(item) = items.next() {
        elements.push(item);
    }
    Ok(elements)
}

/// Implements [`Val`] for a `'static` value of one of the libraries' opaque types, equal by
/// its `PartialEq`.
macro_rules! opaque_value {
    ($rust:ty, $cel:expr) => {
        impl cel::common::value::Val for $rust {
            fn get_type(&self) -> &cel::common::types::Type {
                $cel
            }

            fn cel_type() -> &'static cel::common::types::Type {
                $cel
            }

            fn equals(&self, other: &dyn cel::common::value::Val) -> bool {
                other.downcast_ref::<$rust>().is_some_and(|o| o == self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn cel::common::value::Val + 'v> {
                Box::new(self.clone())
            }

            fn as_any(&self) -> Option<&dyn std::any::Any> {
                Some(self)
            }
        }

        impl cel::common::value::StaticVal for $rust {}
    };
}
pub(crate) use opaque_value;
