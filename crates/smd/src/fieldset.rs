//! Sets of field paths (upstream's `fieldpath.Set`): what a manager owns, what changed between
//! two objects, what conflicts.
//!
//! A set is a tree. At each level, `members` are the elements that are themselves in the set
//! and `children` the elements under which deeper paths are in the set; an element can be both
//! (a list-map item owned as a whole *and* through its fields — FieldsV1's `".": {}`). The tree
//! never keeps an empty child, so structural equality is set equality.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::path::{Path, PathElement};

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// A set holding the given paths.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Path>) -> FieldSet {
        let mut s = FieldSet::new();
        for p in paths {
            s.insert(p);
        }
        s
    }

    /// Adds a path. Its parents are not added. The empty path (the whole object) is never
    /// tracked, as upstream.
    pub fn insert(&mut self, path: &Path) {
        self.insert_elements(path.elements());
    }

    pub(crate) fn insert_elements(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self
                .children
                .entry(first.clone())
                .or_default()
                .insert_elements(rest),
        }
    }

    /// Whether the path is a member of the set.
    pub fn has(&self, path: &Path) -> bool {
        self.has_elements(path.elements())
    }

    pub(crate) fn has_elements(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self
                .children
                .get(first)
                .is_some_and(|c| c.has_elements(rest)),
        }
    }

    /// Whether the set has no member at all.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// The number of paths in the set.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(FieldSet::len).sum::<usize>()
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.union(&other.members).cloned().collect();
        let mut children = self.children.clone();
        for (pe, set) in &other.children {
            match children.get_mut(pe) {
                Some(existing) => *existing = existing.union(set),
                None => {
                    children.insert(pe.clone(), set.clone());
                }
            }
        }
        FieldSet { members, children }.pruned()
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                let o = other.children.get(pe)?;
                let i = set.intersection(o);
                (!i.is_empty()).then(|| (pe.clone(), i))
            })
            .collect();
        FieldSet { members, children }
    }

    /// The paths of `self` that are not in `other`. A parent minus its child keeps the parent;
    /// a child minus its parent keeps the child (upstream's `Difference`).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                let d = match other.children.get(pe) {
                    Some(o) => set.difference(o),
                    None => set.clone(),
                };
                (!d.is_empty()).then(|| (pe.clone(), d))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Like `difference`, but a member of `other` also removes everything under it from `self`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .filter_map(|(pe, set)| {
                let d = match other.children.get(pe) {
                    Some(o) => set.recursive_difference(o),
                    None => set.clone(),
                };
                (!d.is_empty()).then(|| (pe.clone(), d))
            })
            .collect();
        FieldSet { members, children }
    }

    /// `recursive_difference` in place: drops the paths of `other`, and everything under its
    /// members, without copying what stays.
    pub fn remove_recursive(&mut self, other: &FieldSet) {
        for m in &other.members {
            self.members.remove(m);
            self.children.remove(m);
        }
        for (pe, o) in &other.children {
            if let Some(child) = self.children.get_mut(pe) {
                child.remove_recursive(o);
                if child.is_empty() {
                    self.children.remove(pe);
                }
            }
        }
    }

    /// `difference` in place: drops the paths of `other` (a member removes only itself).
    pub fn remove(&mut self, other: &FieldSet) {
        for m in &other.members {
            self.members.remove(m);
        }
        for (pe, o) in &other.children {
            if let Some(child) = self.children.get_mut(pe) {
                child.remove(o);
                if child.is_empty() {
                    self.children.remove(pe);
                }
            }
        }
    }

    /// Removes one member at this level (the paths under it stay).
    pub(crate) fn remove_member(&mut self, pe: &PathElement) {
        self.members.remove(pe);
    }

    /// Removes one member of the set under `parent` (the paths under it stay).
    pub(crate) fn remove_member_under(&mut self, parent: &PathElement, pe: &PathElement) {
        if let Some(child) = self.children.get_mut(parent) {
            child.members.remove(pe);
            if child.is_empty() {
                self.children.remove(parent);
            }
        }
    }

    /// `union` in place, consuming `other`.
    pub fn absorb(&mut self, other: FieldSet) {
        if self.members.is_empty() && self.children.is_empty() {
            *self = other;
            return;
        }
        self.members.extend(other.members);
        for (pe, set) in other.children {
            match self.children.get_mut(&pe) {
                Some(existing) => existing.absorb(set),
                None => {
                    if !set.is_empty() {
                        self.children.insert(pe, set);
                    }
                }
            }
        }
    }

    /// The paths under `pe`, with `pe` removed from their front.
    pub fn with_prefix(&self, pe: &PathElement) -> FieldSet {
        self.children.get(pe).cloned().unwrap_or_default()
    }

    /// Only the paths with nothing of the set under them.
    pub fn leaves(&self) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !self.children.contains_key(*m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .map(|(pe, set)| (pe.clone(), set.leaves()))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        FieldSet { members, children }
    }

    /// Every path of the set, in upstream's order: at each level the members, then the paths
    /// under each child, children in element order.
    pub fn iter(&self) -> impl Iterator<Item = Path> {
        let mut out = Vec::with_capacity(self.len());
        self.collect_paths(&mut Vec::new(), &mut out);
        out.into_iter()
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(Path(p));
        }
        for (pe, set) in &self.children {
            prefix.push(pe.clone());
            set.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The elements that are members at the top level.
    pub fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// The elements with deeper paths at the top level, with the set under each.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn is_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub(crate) fn from_parts(
        members: BTreeSet<PathElement>,
        children: BTreeMap<PathElement, FieldSet>,
    ) -> FieldSet {
        FieldSet { members, children }.pruned()
    }

    /// Drops empty children, keeping the invariant.
    fn pruned(mut self) -> FieldSet {
        self.children.retain(|_, s| !s.is_empty());
        self
    }
}

impl fmt::Display for FieldSet {
    /// One path per line, as upstream's `Set.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Builds a path from `"field"`, `{"k": v}` (a key) and `["=", v]` (a set value) parts.
    pub(crate) fn p(parts: &[serde_json::Value]) -> Path {
        Path(
            parts
                .iter()
                .map(|part| match part {
                    serde_json::Value::String(s) => PathElement::field(s.as_str()),
                    serde_json::Value::Object(m) => {
                        PathElement::key(m.iter().map(|(k, v)| (k.clone(), v.clone())))
                    }
                    serde_json::Value::Array(a) if a.len() == 2 => PathElement::Value(a[1].clone()),
                    serde_json::Value::Number(n) => {
                        PathElement::Index(n.as_u64().unwrap_or_default() as usize)
                    }
                    other => panic!("bad path part {other}"),
                })
                .collect(),
        )
    }

    pub(crate) fn set(paths: &[Path]) -> FieldSet {
        FieldSet::from_paths(paths)
    }

    #[test]
    fn set_algebra_table() {
        let a = p(&[json!("a")]);
        let ab = p(&[json!("a"), json!("b")]);
        let ac = p(&[json!("a"), json!("c")]);
        let d = p(&[json!("d")]);
        struct Case {
            name: &'static str,
            got: FieldSet,
            want: FieldSet,
        }
        let s1 = set(&[a.clone(), ab.clone(), d.clone()]);
        let s2 = set(&[ab.clone(), ac.clone()]);
        let cases = [
            Case {
                name: "union",
                got: s1.union(&s2),
                want: set(&[a.clone(), ab.clone(), ac.clone(), d.clone()]),
            },
            Case {
                name: "intersection",
                got: s1.intersection(&s2),
                want: set(std::slice::from_ref(&ab)),
            },
            Case {
                name: "difference keeps the parent",
                got: s1.difference(&s2),
                want: set(&[a.clone(), d.clone()]),
            },
            Case {
                name: "child minus parent keeps child",
                got: s2.difference(&set(std::slice::from_ref(&a))),
                want: s2.clone(),
            },
            Case {
                name: "recursive difference drops the subtree",
                got: s2.recursive_difference(&set(std::slice::from_ref(&a))),
                want: FieldSet::new(),
            },
            Case {
                name: "leaves",
                got: s1.leaves(),
                want: set(&[ab.clone(), d.clone()]),
            },
            Case {
                name: "with prefix",
                got: s2.with_prefix(&PathElement::field("a")),
                want: set(&[p(&[json!("b")]), p(&[json!("c")])]),
            },
        ];
        for c in cases {
            assert_eq!(c.got, c.want, "{}", c.name);
        }
        let mut in_place = s2.clone();
        in_place.remove_recursive(&set(std::slice::from_ref(&a)));
        assert_eq!(
            in_place,
            s2.recursive_difference(&set(std::slice::from_ref(&a)))
        );
        let mut in_place = s1.clone();
        in_place.remove_recursive(&s2);
        assert_eq!(in_place, s1.recursive_difference(&s2));
        let mut in_place = s1.clone();
        in_place.absorb(s2.clone());
        assert_eq!(in_place, s1.union(&s2));
        let mut in_place = s1.clone();
        in_place.remove(&s2);
        assert_eq!(in_place, s1.difference(&s2));
        let mut in_place = s2.clone();
        in_place.remove(&set(std::slice::from_ref(&a)));
        assert_eq!(in_place, s2);
        let mut in_place = FieldSet::new();
        in_place.absorb(s2.clone());
        assert_eq!(in_place, s2);
        assert!(s1.has(&ab) && s1.has(&a) && !s2.has(&a));
        assert_eq!(s1.len(), 3);
        assert!(set(&[]).is_empty());
        assert!(s1.difference(&s1).is_empty());
    }

    #[test]
    fn iterates_members_before_children() {
        let s = set(&[
            p(&[json!("b"), json!("x")]),
            p(&[json!("a")]),
            p(&[json!("c")]),
            p(&[json!("b")]),
        ]);
        assert_eq!(s.to_string(), ".a\n.b\n.c\n.b.x");
    }
}
