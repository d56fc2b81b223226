//! Static cost estimates, as cel-go's `checker.Cost` with Kubernetes' size estimator gives
//! them to CRD validation rules: what a rule costs at most, given the largest values its
//! schema allows ([`Decl`]: `maxItems`, `maxProperties`, `maxLength`, or what fits in a
//! request when they are not set).
//!
//! cel-go estimates a type-checked expression; ferry does not type-check, so the types that
//! pick an overload's cost are followed from the schema through selects, indexes and macro
//! variables. Kubernetes' libraries' functions cost what upstream's `library.CostEstimator`
//! says (`library_call`). Expressions whose cost depends on something not followed (a
//! function outside the standard library's operators, `size`, `has`, string tests, the
//! comprehension macros and Kubernetes' libraries, such as the optionals' functions or
//! `sets`; a value of unknown type where the overload matters; an optional `oldSelf`) get no
//! estimate ([`Program::estimate_cost`] gives `None`) rather than a guess.

use std::collections::BTreeMap;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use crate::Program;

/// cel-go's `StringTraversalCostFactor`.
const STRING_TRAVERSAL: f64 = 0.1;
/// cel-go's `RegexStringLengthCostFactor`.
const REGEX_LENGTH: f64 = 0.25;
/// cel-go's cost of an identifier or a field selection.
const SELECT_AND_IDENT: u64 = 1;
const LIST_CREATE_BASE: u64 = 10;
const MAP_CREATE_BASE: u64 = 30;

/// A range of costs or sizes (cel-go's `CostEstimate` and `SizeEstimate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The least.
    pub min: u64,
    /// The most.
    pub max: u64,
}

impl Estimate {
    const UNKNOWN: Estimate = Estimate {
        min: 0,
        max: u64::MAX,
    };

    fn fixed(n: u64) -> Estimate {
        Estimate { min: n, max: n }
    }

    fn add(self, other: Estimate) -> Estimate {
        Estimate {
            min: self.min.saturating_add(other.min),
            max: self.max.saturating_add(other.max),
        }
    }

    fn multiply(self, other: Estimate) -> Estimate {
        Estimate {
            min: self.min.saturating_mul(other.min),
            max: self.max.saturating_mul(other.max),
        }
    }

    fn union(self, other: Estimate) -> Estimate {
        Estimate {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// cel-go's `MultiplyByCostFactor`: rounded up, saturating.
    fn times(self, factor: f64) -> Estimate {
        let scale = |x: u64| {
            let product = (x as f64 * factor).ceil();
            if product >= u64::MAX as f64 {
                u64::MAX
            } else {
                product as u64
            }
        };
        Estimate {
            min: scale(self.min),
            max: scale(self.max),
        }
    }
}

/// The kinds of values a [`Decl`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `boolean`.
    Bool,
    /// `integer`.
    Int,
    /// `number`.
    Double,
    /// `string`.
    String,
    /// `string` with `format: byte`.
    Bytes,
    /// `string` with `format: duration`.
    Duration,
    /// `string` with `format: date` or `date-time`.
    Timestamp,
    /// `array`.
    List,
    /// `object` with `additionalProperties`.
    Map,
    /// `object` with `properties`.
    Object,
    /// `x-kubernetes-int-or-string`.
    Dyn,
}

/// The CEL type of a schema node with the size bound upstream's `SchemaDeclType` gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    /// The kind of value.
    pub kind: Kind,
    /// The most elements (list items, map entries, string bytes) a value can have.
    pub max_elements: u64,
    /// A list's items, a map's values.
    pub elem: Option<Box<Decl>>,
    /// An object's fields.
    pub fields: BTreeMap<String, Decl>,
}

impl Decl {
    /// A node without elements or fields.
    pub fn scalar(kind: Kind, max_elements: u64) -> Decl {
        Decl {
            kind,
            max_elements,
            elem: None,
            fields: BTreeMap::new(),
        }
    }
}

/// What the estimate knows of an expression's value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty<'d> {
    /// A value of the schema: its node.
    Decl(&'d Decl),
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    List,
    Map,
    /// A value of one of Kubernetes' libraries' types: a quantity, an IP, a CIDR, a URL, a
    /// named format.
    Opaque,
}

impl Ty<'_> {
    fn kind(self) -> Option<Kind> {
        Some(match self {
            Ty::Decl(d) => d.kind,
            Ty::Bool => Kind::Bool,
            Ty::Int | Ty::Uint => Kind::Int,
            Ty::Double => Kind::Double,
            Ty::String => Kind::String,
            Ty::Bytes => Kind::Bytes,
            Ty::List => Kind::List,
            Ty::Map => Kind::Map,
            Ty::Null | Ty::Opaque => return None,
        })
    }

    fn is_scalar(self) -> bool {
        matches!(
            self.kind(),
            Some(Kind::Bool | Kind::Int | Kind::Double | Kind::Duration | Kind::Timestamp)
        )
    }
}

/// An expression's estimate: its cost, its type, and what gives its size.
#[derive(Debug, Clone, Copy)]
struct Info<'d> {
    cost: Estimate,
    ty: Ty<'d>,
    /// The schema node the expression's field path leads to (cel-go's path-based size).
    path: Option<&'d Decl>,
    /// A size computed from the expression itself (literals, call results).
    size: Option<Estimate>,
}

impl Info<'_> {
    /// cel-go's `sizeOrUnknown`.
    fn size(&self) -> Estimate {
        if let Some(size) = self.size {
            return size;
        }
        if let Some(decl) = self.path {
            return Estimate {
                min: 0,
                max: decl.max_elements,
            };
        }
        if self.ty.is_scalar() {
            return Estimate::fixed(1);
        }
        Estimate::UNKNOWN
    }
}

/// Why no estimate is given.
struct Unsupported;

struct Coster<'d> {
    root: &'d Decl,
    optional_old_self: bool,
    locals: Vec<(String, Info<'d>)>,
}

impl Program {
    /// The estimated cost of the expression with `self` (and `oldSelf`) of the type `root`,
    /// as cel-go's estimator gives it; `None` when it cannot be estimated faithfully (see the
    /// [module](self) documentation). `optional_old_self`: `oldSelf` is an optional.
    pub fn estimate_cost(&self, root: &Decl, optional_old_self: bool) -> Option<Estimate> {
        let mut coster = Coster {
            root,
            optional_old_self,
            locals: Vec::new(),
        };
        coster.cost(self.program.expression()).ok().map(|i| i.cost)
    }
}

type Result<'d> = std::result::Result<Info<'d>, Unsupported>;

fn literal<'d>(ty: Ty<'d>, size: u64) -> Info<'d> {
    Info {
        cost: Estimate::fixed(0),
        ty,
        path: None,
        size: Some(Estimate::fixed(size)),
    }
}

impl<'d> Coster<'d> {
    fn cost(&mut self, e: &IdedExpr) -> Result<'d> {
        match &e.expr {
            Expr::Literal(value) => Ok(match value {
                LiteralValue::Boolean(_) => literal(Ty::Bool, 1),
                LiteralValue::Int(_) => literal(Ty::Int, 1),
                LiteralValue::UInt(_) => literal(Ty::Uint, 1),
                LiteralValue::Double(_) => literal(Ty::Double, 1),
                LiteralValue::Null => literal(Ty::Null, 1),
                LiteralValue::String(s) => literal(Ty::String, s.inner().chars().count() as u64),
                LiteralValue::Bytes(b) => literal(Ty::Bytes, b.inner().len() as u64),
            }),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                let operand = self.cost(&select.operand)?;
                if select.test {
                    // has(): the presence test costs one, the field is not selected.
                    return Ok(Info {
                        cost: operand.cost.add(Estimate::fixed(SELECT_AND_IDENT)),
                        ty: Ty::Bool,
                        path: None,
                        size: None,
                    });
                }
                self.select(operand, &select.field)
            }
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args),
            Expr::List(list) => {
                if !list.optional_indices.is_empty() {
                    return Err(Unsupported);
                }
                let mut cost = Estimate::fixed(LIST_CREATE_BASE);
                for element in &list.elements {
                    cost = cost.add(self.cost(element)?.cost);
                }
                Ok(Info {
                    cost,
                    ty: Ty::List,
                    path: None,
                    size: Some(Estimate::fixed(list.elements.len() as u64)),
                })
            }
            Expr::Map(map) => {
                let mut cost = Estimate::fixed(MAP_CREATE_BASE);
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return Err(Unsupported);
                    };
                    if entry.optional {
                        return Err(Unsupported);
                    }
                    cost = cost.add(self.cost(&entry.key)?.cost);
                    cost = cost.add(self.cost(&entry.value)?.cost);
                }
                Ok(Info {
                    cost,
                    ty: Ty::Map,
                    path: None,
                    size: Some(Estimate::fixed(map.entries.len() as u64)),
                })
            }
            Expr::Comprehension(comprehension) => self.comprehension(comprehension),
            Expr::Struct(_) | Expr::Unspecified => Err(Unsupported),
        }
    }

    fn ident(&mut self, name: &str) -> Result<'d> {
        let cost = Estimate::fixed(SELECT_AND_IDENT);
        if let Some((_, local)) = self.locals.iter().rev().find(|(n, _)| n == name) {
            return Ok(Info { cost, ..*local });
        }
        match name {
            "self" => {}
            "oldSelf" if !self.optional_old_self => {}
            _ => return Err(Unsupported),
        }
        Ok(Info {
            cost,
            ty: Ty::Decl(self.root),
            path: Some(self.root),
            size: None,
        })
    }

    fn select(&mut self, operand: Info<'d>, field: &str) -> Result<'d> {
        let Ty::Decl(decl) = operand.ty else {
            return Err(Unsupported);
        };
        let (ty, path) = match decl.kind {
            Kind::Object => {
                let field = decl.fields.get(field).ok_or(Unsupported)?;
                // The field path goes on only as long as it names fields.
                (field, operand.path.map(|_| field))
            }
            // A map's entry as a field: upstream's size estimator loses its size there, which
            // is not followed (so as never to refuse what upstream accepts).
            _ => return Err(Unsupported),
        };
        Ok(Info {
            cost: operand.cost.add(Estimate::fixed(SELECT_AND_IDENT)),
            ty: Ty::Decl(ty),
            path,
            size: None,
        })
    }

    fn call(&mut self, function: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) -> Result<'d> {
        let target = target.map(|t| self.cost(t)).transpose()?;
        let args: Vec<Info<'d>> = args
            .iter()
            .map(|a| self.cost(a))
            .collect::<std::result::Result<_, _>>()?;
        let arg_costs = args
            .iter()
            .fold(Estimate::fixed(0), |sum, a| sum.add(a.cost));
        let target_cost = target.map_or(Estimate::fixed(0), |t| t.cost);
        let plain = |ty: Ty<'d>, cost: Estimate| Info {
            cost: target_cost.add(cost),
            ty,
            path: None,
            size: None,
        };
        let o1 = Estimate::fixed(1).add(arg_costs);
        let kinds: Vec<Option<Kind>> = args.iter().map(|a| a.ty.kind()).collect();
        let info = match (function, target, args.as_slice()) {
            ("_&&_" | "_||_", None, [lhs, rhs]) => plain(
                Ty::Bool,
                Estimate {
                    min: lhs.cost.min,
                    max: lhs.cost.add(rhs.cost).max,
                },
            ),
            ("_?_:_", None, [condition, t, f]) => {
                let ty = if t.ty.kind() == f.ty.kind() {
                    t.ty
                } else {
                    return Err(Unsupported);
                };
                Info {
                    cost: condition.cost.add(t.cost.union(f.cost)),
                    ty,
                    path: None,
                    size: Some(t.size().union(f.size())),
                }
            }
            ("!_" | "@not_strictly_false", None, [_]) => plain(Ty::Bool, o1),
            ("-_", None, [a]) => plain(a.ty, o1),
            ("_==_" | "_!=_", None, [lhs, rhs]) => plain(Ty::Bool, equality(lhs, rhs, arg_costs)),
            ("_<_" | "_<=_" | "_>_" | "_>=_", None, [lhs, rhs]) => match kinds[..] {
                [Some(Kind::String | Kind::Bytes), Some(Kind::String | Kind::Bytes)] => {
                    plain(Ty::Bool, equality(lhs, rhs, arg_costs))
                }
                [Some(a), Some(b)] if !matches!(a, Kind::Dyn) && !matches!(b, Kind::Dyn) => {
                    plain(Ty::Bool, o1)
                }
                _ => return Err(Unsupported),
            },
            ("_+_", None, [lhs, rhs]) => match kinds[..] {
                [Some(Kind::String), Some(Kind::String)]
                | [Some(Kind::Bytes), Some(Kind::Bytes)] => {
                    let size = lhs.size().add(rhs.size());
                    Info {
                        cost: size.times(STRING_TRAVERSAL).add(arg_costs),
                        ty: lhs.ty,
                        path: None,
                        size: Some(size),
                    }
                }
                [Some(Kind::List), Some(Kind::List)] => Info {
                    cost: o1,
                    ty: Ty::List,
                    path: None,
                    size: Some(lhs.size().add(rhs.size())),
                },
                [Some(Kind::Int | Kind::Double), Some(Kind::Int | Kind::Double)]
                | [Some(Kind::Duration | Kind::Timestamp), Some(Kind::Duration | Kind::Timestamp)] => {
                    plain(lhs.ty, o1)
                }
                _ => return Err(Unsupported),
            },
            ("_-_" | "_*_" | "_/_" | "_%_", None, [lhs, _]) => match kinds[..] {
                [Some(Kind::Int | Kind::Double | Kind::Duration | Kind::Timestamp), Some(b)]
                    if b != Kind::Dyn =>
                {
                    plain(lhs.ty, o1)
                }
                _ => return Err(Unsupported),
            },
            ("@in", None, [_, container]) => match kinds[1] {
                Some(Kind::List) => plain(Ty::Bool, container.size().add(arg_costs)),
                Some(Kind::Map | Kind::Object) => plain(Ty::Bool, o1),
                _ => return Err(Unsupported),
            },
            ("_[_]", None, [container, _]) => {
                let Ty::Decl(decl) = container.ty else {
                    return Err(Unsupported);
                };
                let elem = match decl.kind {
                    Kind::List | Kind::Map => decl.elem.as_deref().ok_or(Unsupported)?,
                    _ => return Err(Unsupported),
                };
                Info {
                    cost: o1,
                    ty: Ty::Decl(elem),
                    path: container.path.map(|_| elem),
                    size: None,
                }
            }
            ("size", None, [_]) | ("size", Some(_), []) => plain(Ty::Int, o1),
            ("startsWith" | "endsWith", Some(t), [prefix]) if t.ty.kind() == Some(Kind::String) => {
                plain(
                    Ty::Bool,
                    prefix.size().times(STRING_TRAVERSAL).add(arg_costs),
                )
            }
            ("contains", Some(t), [sub]) if t.ty.kind() == Some(Kind::String) => {
                let cost = t
                    .size()
                    .times(STRING_TRAVERSAL)
                    .multiply(sub.size().times(STRING_TRAVERSAL));
                plain(Ty::Bool, cost.add(arg_costs))
            }
            ("matches", Some(t), [regex]) if t.ty.kind() == Some(Kind::String) => {
                let string = t.size().add(Estimate::fixed(1)).times(STRING_TRAVERSAL);
                let cost = string.multiply(regex.size().times(REGEX_LENGTH));
                plain(Ty::Bool, cost.add(arg_costs))
            }
            ("int", None, [_]) => plain(Ty::Int, o1),
            ("uint", None, [_]) => plain(Ty::Uint, o1),
            ("double", None, [_]) => plain(Ty::Double, o1),
            _ => return library_call(function, target, &args, arg_costs),
        };
        Ok(info)
    }

    fn comprehension(&mut self, c: &cel::common::ast::ComprehensionExpr) -> Result<'d> {
        if c.iter_var2.is_some() {
            return Err(Unsupported);
        }
        let range = self.cost(&c.iter_range)?;
        // Only a range with a schema type has a size and an item type to follow.
        let (Ty::Decl(range_decl), Some(_)) = (range.ty, range.path) else {
            return Err(Unsupported);
        };
        let item = match range_decl.kind {
            Kind::List => {
                let elem = range_decl.elem.as_deref().ok_or(Unsupported)?;
                Info {
                    cost: Estimate::fixed(SELECT_AND_IDENT),
                    ty: Ty::Decl(elem),
                    path: Some(elem),
                    size: None,
                }
            }
            // A map's keys are upstream's plain string type, of no estimated size.
            Kind::Map => Info {
                cost: Estimate::fixed(SELECT_AND_IDENT),
                ty: Ty::String,
                path: None,
                size: Some(Estimate::fixed(0)),
            },
            _ => return Err(Unsupported),
        };
        let init = self.cost(&c.accu_init)?;
        let accumulator = Info {
            cost: Estimate::fixed(SELECT_AND_IDENT),
            path: None,
            size: Some(init.size()),
            ..init
        };
        self.locals.push((c.accu_var.clone(), accumulator));
        self.locals.push((c.iter_var.clone(), item));
        let loop_cost = self.cost(&c.loop_cond);
        let step_cost = self.cost(&c.loop_step);
        self.locals.pop();
        let result = self.cost(&c.result);
        self.locals.pop();
        let (loop_cost, step_cost, result) = (loop_cost?, step_cost?, result?);

        let count = range.size();
        let cost = range
            .cost
            .add(init.cost)
            .add(result.cost)
            .add(count.multiply(step_cost.cost.add(loop_cost.cost)));
        let size = match c.accu_init.expr {
            Expr::List(_) | Expr::Map(_) => Some(count),
            _ => Some(init.size()),
        };
        Ok(Info {
            cost,
            ty: result.ty,
            path: None,
            size,
        })
    }
}

/// Upstream's `MaxNameFormatRegexSize`: what `validate` costs per byte validated is that of a
/// regex this long.
const MAX_NAME_FORMAT_REGEX_SIZE: f64 = 128.0;

/// A call of one of Kubernetes' libraries, as upstream's `library.CostEstimator` estimates
/// it (what it does not list costs 1, as cel-go has it). Their values' sizes are 1, so that
/// comparing two of them costs 1 as upstream's does; a URL's is its string's.
fn library_call<'d>(
    function: &str,
    target: Option<Info<'d>>,
    args: &[Info<'d>],
    arg_costs: Estimate,
) -> Result<'d> {
    let target_cost = target.map_or(Estimate::fixed(0), |t| t.cost);
    let info = |ty: Ty<'d>, cost: Estimate, size: Option<Estimate>| Info {
        cost: target_cost.add(cost).add(arg_costs),
        ty,
        path: None,
        size,
    };
    let opaque = |cost: Estimate| info(Ty::Opaque, cost, Some(Estimate::fixed(1)));
    let is_string = |i: &Info<'_>| i.ty.kind() == Some(Kind::String);
    let is_opaque = |i: &Option<Info<'_>>| i.is_some_and(|t| t.ty == Ty::Opaque);
    let one = Estimate::fixed(1);
    let parsed = |s: &Info<'_>| s.size().times(STRING_TRAVERSAL);
    Ok(match (function, target, args) {
        (
            "isSorted" | "sum" | "max" | "min" | "indexOf" | "lastIndexOf" | "includes",
            Some(list),
            _,
        ) => {
            let Ty::Decl(decl) = list.ty else {
                return Err(Unsupported);
            };
            let elem = match decl.kind {
                Kind::List => decl.elem.as_deref().ok_or(Unsupported)?,
                _ => return Err(Unsupported),
            };
            let mut per_element = one;
            if matches!(elem.kind, Kind::String | Kind::Bytes) {
                // An item's size is known from the schema along a field path only.
                let size = match list.path {
                    Some(_) => Estimate {
                        min: 0,
                        max: elem.max_elements,
                    },
                    None => Estimate::UNKNOWN,
                };
                per_element = per_element.add(size.times(STRING_TRAVERSAL));
            }
            let ty = match function {
                "isSorted" | "includes" => Ty::Bool,
                "indexOf" | "lastIndexOf" => Ty::Int,
                _ => Ty::Decl(elem),
            };
            info(ty, list.size().multiply(per_element), None)
        }
        ("find" | "findAll", Some(string), [regex, ..]) if is_string(&string) => {
            let size = string.size();
            let cost = size
                .add(one)
                .times(STRING_TRAVERSAL)
                .multiply(regex.size().times(REGEX_LENGTH));
            let ty = if function == "find" {
                Ty::String
            } else {
                Ty::List
            };
            info(
                ty,
                cost,
                Some(Estimate {
                    min: 0,
                    max: size.max,
                }),
            )
        }
        ("url", None, [s]) if is_string(s) => info(Ty::Opaque, parsed(s), Some(s.size())),
        ("isURL", None, [_]) => info(Ty::Bool, one, None),
        ("cidr" | "ip" | "quantity", None, [s]) if is_string(s) => opaque(parsed(s)),
        ("isIP" | "isCIDR" | "isQuantity", None, [s]) if is_string(s) => {
            info(Ty::Bool, parsed(s), None)
        }
        ("ip.isCanonical", None, [s]) if is_string(s) => {
            info(Ty::Bool, s.size().times(2.0 * STRING_TRAVERSAL), None)
        }
        ("ip" | "masked", Some(_), []) if is_opaque(&target) => opaque(one),
        ("prefixLength" | "family", Some(_), []) if is_opaque(&target) => info(Ty::Int, one, None),
        (
            "isUnspecified"
            | "isLoopback"
            | "isLinkLocalMulticast"
            | "isLinkLocalUnicast"
            | "isGlobalUnicast",
            Some(_),
            [],
        ) if is_opaque(&target) => info(Ty::Bool, one, None),
        ("containsIP" | "containsCIDR", Some(_), [other]) if is_opaque(&target) => {
            // An address is 4 to 16 bytes.
            let address = Estimate { min: 4, max: 16 };
            let mut cost = address.add(address).times(STRING_TRAVERSAL);
            if function == "containsCIDR" {
                cost = cost.add(address.times(STRING_TRAVERSAL)).add(one);
            }
            if is_string(other) {
                cost = cost.add(parsed(other));
            }
            info(Ty::Bool, cost, None)
        }
        ("sign" | "asInteger" | "compareTo", Some(_), _) if is_opaque(&target) => {
            info(Ty::Int, one, None)
        }
        ("isInteger" | "isGreaterThan" | "isLessThan", Some(_), _) if is_opaque(&target) => {
            info(Ty::Bool, one, None)
        }
        ("asApproximateFloat", Some(_), []) if is_opaque(&target) => info(Ty::Double, one, None),
        ("add" | "sub", Some(_), [_]) if is_opaque(&target) => opaque(one),
        ("getScheme" | "getHost" | "getHostname" | "getPort" | "getEscapedPath", Some(_), [])
            if is_opaque(&target) =>
        {
            info(Ty::String, one, None)
        }
        ("getQuery", Some(_), []) if is_opaque(&target) => info(Ty::Map, one, None),
        ("validate", Some(_), [s]) if is_opaque(&target) => {
            let cost = parsed(s).times(MAX_NAME_FORMAT_REGEX_SIZE * REGEX_LENGTH);
            info(Ty::Opaque, cost, None)
        }
        ("format.named", None, [_]) => opaque(one),
        (constant, None, []) if constant.starts_with("format.") => opaque(one),
        ("string", None, [value]) if value.ty == Ty::Opaque => info(Ty::String, one, None),
        _ => return Err(Unsupported),
    })
}

/// Equality and string comparison: cel-go's O(min(n, m)) estimate.
fn equality(lhs: &Info<'_>, rhs: &Info<'_>, arg_costs: Estimate) -> Estimate {
    let smallest_max = lhs.size().max.min(rhs.size().max);
    let min = u64::from(smallest_max > 0);
    Estimate {
        min,
        max: smallest_max,
    }
    .times(STRING_TRAVERSAL)
    .add(arg_costs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_of(item: Decl, max_items: u64) -> Decl {
        Decl {
            kind: Kind::List,
            max_elements: max_items,
            elem: Some(Box::new(item)),
            fields: BTreeMap::new(),
        }
    }

    fn object(fields: Vec<(&str, Decl)>) -> Decl {
        Decl {
            kind: Kind::Object,
            max_elements: 0,
            elem: None,
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    fn estimate(source: &str, root: &Decl) -> Option<u64> {
        Program::compile(source)
            .expect("compiles")
            .estimate_cost(root, false)
            .map(|e| e.max)
    }

    #[test]
    fn estimates_follow_cel_go() {
        // Unbounded lists: what 3 MiB holds (upstream's estimateMaxArrayItemsFromMinSize).
        let unbounded_ints = (3 * 1024 * 1024 - 2) / 2;
        let root = object(vec![
            ("n", Decl::scalar(Kind::Int, 0)),
            ("name", Decl::scalar(Kind::String, 3 * 1024 * 1024 - 2)),
            ("short", Decl::scalar(Kind::String, 40)),
            ("ints", list_of(Decl::scalar(Kind::Int, 0), unbounded_ints)),
            ("ten", list_of(Decl::scalar(Kind::String, 40), 10)),
            (
                "labels",
                Decl {
                    kind: Kind::Map,
                    max_elements: 10,
                    elem: Some(Box::new(Decl::scalar(Kind::String, 40))),
                    fields: BTreeMap::new(),
                },
            ),
        ]);
        let cases = [
            ("self.n > 0", Some(3)),
            ("self.labels.a == 'b'", None),
            ("self.n == 1", Some(2)),
            ("self.short == 'abc'", Some(3)),
            ("has(self.n)", Some(2)),
            ("self.short.startsWith('ab')", Some(3)),
            // 1 (self) + 1 (.ints) + items * (2 (loop) + 3 (step)) + 1 (result)
            ("self.ints.all(x, x > 0)", Some(3 + 5 * unbounded_ints)),
            (
                "self.ten.all(x, x.matches('^[a-z]+$'))",
                Some(3 + 10 * (2 + 1 + 1 + 5 * 2)),
            ),
            // The step: 2 (x == 'a') + 2 (@result + 1); the result: 2 (@result == 1).
            // A map's keys have no size: 1 + 1 + 10 × (2 + 1 + 2).
            ("self.labels.all(k, k.startsWith('a'))", Some(3 + 10 * 5)),
            ("self.ten.exists_one(x, x == 'a')", Some(4 + 10 * 4)),
            // The empty list costs 10; the step: 1 + 1 (@result) + 10 + 6 (x + 'a').
            (
                "self.ten.map(x, x + 'a').size() > 0",
                Some(2 + 10 + 1 + 10 * 18 + 2),
            ),
            // ceil(0.1 * (3 MiB - 2)) * ceil(0.1 * 3) + 2.
            ("self.name.contains('abc')", Some(314_573 + 2)),
            ("self.frob(1)", None),
            ("self.?n.orValue(1) > 0", None),
            // Kubernetes' libraries: 1 (self) + 1 (.ints) + items × 1.
            ("self.ints.isSorted()", Some(2 + unbounded_ints)),
            // items × (1 + ceil(0.1 × 40)) + 1 (the argument) + 2.
            ("self.ten.indexOf('a') >= 0", Some(2 + 10 * 5 + 1)),
            // ceil(0.1 × 41) × ceil(0.25 × 6) + 2; comparing with '' costs 0.
            ("self.short.find('[0-9]+') == ''", Some(2 + 5 * 2)),
            // quantity: 2 + ceil(0.1 × 40); the literal's: ceil(0.1 × 2); comparing: 1.
            (
                "quantity(self.short).isGreaterThan(quantity('1G'))",
                Some(2 + 4 + 1 + 1),
            ),
            (
                "quantity(self.short) == quantity('1G')",
                Some(2 + 4 + 1 + 1),
            ),
            // 2 + 4 (cidr) + ceil(0.1 × 8..32) + ceil(0.1 × 3) (the string parsed).
            ("cidr(self.short).containsIP('::1')", Some(2 + 4 + 4 + 1)),
            // validate is estimated, but not the optional it gives.
            (
                "format.dns1123Label().validate(self.short) == optional.none()",
                None,
            ),
            ("url(self.short).getHost() == 'a'", Some(2 + 4 + 1 + 1)),
            ("sets.contains(self.ten, ['a'])", None),
        ];
        for (source, want) in cases {
            assert_eq!(estimate(source, &root), want, "{source}");
        }
    }
}
