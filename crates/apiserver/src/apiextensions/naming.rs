//! Which names a CustomResourceDefinition may have (upstream's naming controller): a plural,
//! singular, short name, kind or list kind another definition of the same group already
//! accepted is refused, and the definition's `NamesAccepted` condition says which.

use serde_json::{json, Value};

/// The names a definition asks for or was given (`spec.names`, `status.acceptedNames`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// `plural`.
    pub plural: String,
    /// `singular`.
    pub singular: String,
    /// `shortNames`.
    pub short_names: Vec<String>,
    /// `kind`.
    pub kind: String,
    /// `listKind`.
    pub list_kind: String,
    /// `categories`.
    pub categories: Vec<String>,
}

impl Names {
    /// The names at `pointer` of a definition (`/spec/names`, `/status/acceptedNames`).
    pub fn at(crd: &Value, pointer: &str) -> Names {
        let names = crd.pointer(pointer);
        let text = |f: &str| {
            names
                .and_then(|n| n.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let list = |f: &str| -> Vec<String> {
            names
                .and_then(|n| n.get(f))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        };
        Names {
            plural: text("plural"),
            singular: text("singular"),
            short_names: list("shortNames"),
            kind: text("kind"),
            list_kind: text("listKind"),
            categories: list("categories"),
        }
    }

    /// As `status.acceptedNames` is written (empty lists and strings left out).
    pub fn to_json(&self) -> Value {
        let mut out = json!({"plural": self.plural, "kind": self.kind});
        if !self.singular.is_empty() {
            out["singular"] = json!(self.singular);
        }
        if !self.short_names.is_empty() {
            out["shortNames"] = json!(self.short_names);
        }
        if !self.list_kind.is_empty() {
            out["listKind"] = json!(self.list_kind);
        }
        if !self.categories.is_empty() {
            out["categories"] = json!(self.categories);
        }
        out
    }
}

/// Why requested names were refused: the `NamesAccepted=False` reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `PluralConflict`, `SingularConflict`, `ShortNamesConflict`, `KindConflict` or
    /// `ListKindConflict`.
    pub reason: &'static str,
    /// E.g. `"crontabs" is already in use`.
    pub message: String,
}

/// Whether `requested` can be accepted, given the names `others` (the other definitions of the
/// same group) accepted; `own` are the names this definition was given before, which stay its
/// own. Checked in upstream's order: plural, singular, short names, kind, list kind.
pub fn check(requested: &Names, own: &Names, others: &[Names]) -> Result<(), Conflict> {
    let taken = |name: &str, pick: &dyn Fn(&Names) -> Vec<String>| {
        !name.is_empty()
            && !pick(own).iter().any(|n| n == name)
            && others.iter().any(|o| pick(o).iter().any(|n| n == name))
    };
    let resource_names = |n: &Names| {
        let mut all = vec![n.plural.clone(), n.singular.clone()];
        all.extend(n.short_names.iter().cloned());
        all
    };
    let conflict = |reason, name: &str| Conflict {
        reason,
        message: format!("{name:?} is already in use"),
    };
    if taken(&requested.plural, &resource_names) {
        return Err(conflict("PluralConflict", &requested.plural));
    }
    if taken(&requested.singular, &resource_names) {
        return Err(conflict("SingularConflict", &requested.singular));
    }
    for short in &requested.short_names {
        if taken(short, &resource_names) {
            return Err(conflict("ShortNamesConflict", short));
        }
    }
    let kinds = |n: &Names| vec![n.kind.clone(), n.list_kind.clone()];
    if taken(&requested.kind, &kinds) {
        return Err(conflict("KindConflict", &requested.kind));
    }
    if taken(&requested.list_kind, &kinds) {
        return Err(conflict("ListKindConflict", &requested.list_kind));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(plural: &str, kind: &str, short: &[&str]) -> Names {
        Names {
            plural: plural.into(),
            singular: plural.trim_end_matches('s').into(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            categories: Vec::new(),
        }
    }

    #[test]
    fn conflicts_in_upstreams_order() {
        let others = [names("crontabs", "CronTab", &["ct"])];
        let none = Names::default();
        assert_eq!(
            check(&names("backups", "Backup", &["bk"]), &none, &others),
            Ok(())
        );
        let err = check(&names("crontabs", "Other", &[]), &none, &others).expect_err("plural");
        assert_eq!(
            (err.reason, err.message.as_str()),
            ("PluralConflict", "\"crontabs\" is already in use")
        );
        let err = check(&names("tabs", "Tab", &["ct"]), &none, &others).expect_err("short");
        assert_eq!(err.reason, "ShortNamesConflict");
        let err = check(&names("tabs", "CronTab", &[]), &none, &others).expect_err("kind");
        assert_eq!(err.reason, "KindConflict");
        // A definition keeps the names it was given.
        let own = names("crontabs", "CronTab", &["ct"]);
        assert_eq!(check(&own, &own, &others), Ok(()));
    }
}
