//! What a `PolicyRule` allows (upstream's `rbac.RuleAllows`) and whether one set of rules
//! covers another (upstream's `validation.Covers`, the heart of escalation prevention).
//!
//! A rule allows a resource request when its verbs, API groups and resources all contain the
//! request's (or `*`; `*/<sub>` matches that subresource of any resource) and its
//! `resourceNames` are empty or contain the object's name. A non-resource request is allowed by
//! a rule whose verbs contain the request's and whose `nonResourceURLs` contain its path, `*`,
//! or a prefix of it ending in `*`.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::request::RequestInfo;

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == "*" || item == value)
}

fn list(field: &Option<Vec<String>>) -> &[String] {
    field.as_deref().unwrap_or_default()
}

/// Whether `rule` names `resource` (`resource/subresource` when there is a subresource).
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    let combined;
    let wanted = if subresource.is_empty() {
        resource
    } else {
        combined = format!("{resource}/{subresource}");
        &combined
    };
    list(&rule.resources).iter().any(|r| {
        r == "*"
            || r == wanted
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// Whether `rule` names `path`: exactly, by `*`, or by a prefix ending in `*`.
fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls).iter().any(|url| {
        url == "*"
            || url == path
            || url
                .strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether `rule` allows `request`.
pub fn allows(rule: &PolicyRule, request: &RequestInfo) -> bool {
    if !has(&rule.verbs, &request.verb) {
        return false;
    }
    if !request.is_resource_request {
        return url_matches(rule, &request.path);
    }
    let names = list(&rule.resource_names);
    has(list(&rule.api_groups), &request.group)
        && resource_matches(rule, &request.resource, &request.subresource)
        && (names.is_empty() || names.iter().any(|n| n == &request.name))
}

/// Whether any of `rules` allows `request`.
pub fn any_allows(rules: &[PolicyRule], request: &RequestInfo) -> bool {
    rules.iter().any(|rule| allows(rule, request))
}

/// One verb on one resource of one group (and one name, if the rule names objects), or one
/// verb on one URL: the pieces [`covers`] checks one by one.
fn break_down(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |v: &String| Some(vec![v.clone()]);
    let mut pieces = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let piece = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: vec![verb.clone()],
                    ..Default::default()
                };
                let names = list(&rule.resource_names);
                for name in names {
                    pieces.push(PolicyRule {
                        resource_names: one(name),
                        ..piece.clone()
                    });
                }
                if names.is_empty() {
                    pieces.push(piece);
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            pieces.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..Default::default()
            });
        }
    }
    pieces
}

/// Whether `owner` grants everything the one-verb piece `piece` does.
fn rule_covers(owner: &PolicyRule, piece: &PolicyRule) -> bool {
    let covers_all = |owned: &[String], wanted: &[String]| {
        owned.iter().any(|o| o == "*") || wanted.iter().all(|w| owned.contains(w))
    };
    if !covers_all(&owner.verbs, &piece.verbs) {
        return false;
    }
    if let Some(url) = list(&piece.non_resource_urls).first() {
        return list(&owner.non_resource_urls).iter().any(|o| {
            o == "*"
                || o == url
                || o.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        });
    }
    let resource_covered = list(&piece.resources).iter().all(|wanted| {
        list(&owner.resources).iter().any(|o| {
            o == "*"
                || o == wanted
                || o.strip_prefix("*/").is_some_and(|sub| {
                    wanted
                        .split_once('/')
                        .is_some_and(|(_, wanted_sub)| wanted_sub == sub)
                })
        })
    });
    let owner_names = list(&owner.resource_names);
    let names_covered = owner_names.is_empty()
        || (!list(&piece.resource_names).is_empty()
            && list(&piece.resource_names)
                .iter()
                .all(|n| owner_names.contains(n)));
    covers_all(list(&owner.api_groups), list(&piece.api_groups))
        && resource_covered
        && names_covered
}

/// Whether `owner` grants everything `requested` does; if not, the pieces it lacks.
pub fn covers(owner: &[PolicyRule], requested: &[PolicyRule]) -> Result<(), Vec<PolicyRule>> {
    let missing: Vec<PolicyRule> = requested
        .iter()
        .flat_map(break_down)
        .filter(|piece| !owner.iter().any(|o| rule_covers(o, piece)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn quoted(items: &[String]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// A rule as upstream's `CompactString` prints it: `{APIGroups:[""], Resources:["pods"],
/// Verbs:["get"]}`, empty fields left out.
pub fn compact_string(rule: &PolicyRule) -> String {
    let fields = [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("ResourceNames", list(&rule.resource_names)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
        ("Verbs", &rule.verbs[..]),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| format!("{name}:{}", quoted(values)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Missing pieces as upstream lists them: pieces on the same group and resource (without
/// names) merged into one rule with all their verbs, each printed compactly, sorted, one a line.
pub fn missing_rules_message(missing: &[PolicyRule]) -> String {
    let mut merged: Vec<PolicyRule> = Vec::new();
    for piece in missing {
        let simple =
            list(&piece.resource_names).is_empty() && list(&piece.non_resource_urls).is_empty();
        let same = merged.iter_mut().find(|m| {
            simple
                && list(&m.resource_names).is_empty()
                && list(&m.non_resource_urls).is_empty()
                && m.api_groups == piece.api_groups
                && m.resources == piece.resources
        });
        match same {
            Some(rule) => {
                for verb in &piece.verbs {
                    if !rule.verbs.contains(verb) {
                        rule.verbs.push(verb.clone());
                    }
                }
            }
            None => merged.push(piece.clone()),
        }
    }
    let mut lines: Vec<String> = merged.iter().map(compact_string).collect();
    lines.sort();
    lines.join("\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A rule from slices, as tests write them.
    pub(crate) fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let strings = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: strings(verbs),
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            ..Default::default()
        }
    }

    fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            non_resource_urls: Some(urls.iter().map(|x| x.to_string()).collect()),
            ..Default::default()
        }
    }

    fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
        rule.resource_names = Some(names.iter().map(|x| x.to_string()).collect());
        rule
    }

    fn request(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> RequestInfo {
        RequestInfo {
            is_resource_request: true,
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "ns".into(),
            ..Default::default()
        }
    }

    fn path(verb: &str, path: &str) -> RequestInfo {
        RequestInfo {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_allow_as_upstream_matches_them() {
        let pods = rule(&["get", "list"], &[""], &["pods"]);
        let cases = [
            (&pods, request("get", "", "pods", "", "p"), true),
            (&pods, request("delete", "", "pods", "", "p"), false),
            (&pods, request("get", "apps", "pods", "", "p"), false),
            (&pods, request("get", "", "pods", "log", "p"), false),
            (&pods, request("get", "", "services", "", "s"), false),
        ];
        for (rule, req, want) in cases {
            assert_eq!(allows(rule, &req), want, "{req:?}");
        }
        let stars = rule(&["*"], &["*"], &["*"]);
        assert!(allows(
            &stars,
            &request("escalate", "x.io", "things", "status", "a")
        ));
        let any_status = rule(&["get"], &["apps"], &["*/status"]);
        assert!(allows(
            &any_status,
            &request("get", "apps", "deployments", "status", "d")
        ));
        assert!(!allows(
            &any_status,
            &request("get", "apps", "deployments", "", "d")
        ));
        assert!(!allows(
            &any_status,
            &request("get", "apps", "deployments", "scale", "d")
        ));
        let logs = rule(&["get"], &[""], &["pods/log"]);
        assert!(allows(&logs, &request("get", "", "pods", "log", "p")));
        let one = named(
            rule(&["get", "update"], &[""], &["configmaps"]),
            &["settings"],
        );
        assert!(allows(
            &one,
            &request("get", "", "configmaps", "", "settings")
        ));
        assert!(!allows(
            &one,
            &request("get", "", "configmaps", "", "other")
        ));
        // A list has no name: resourceNames never allow it.
        assert!(!allows(&one, &request("get", "", "configmaps", "", "")));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_star_prefix() {
        let discovery = url_rule(&["get"], &["/api", "/api/*", "/version"]);
        assert!(allows(&discovery, &path("get", "/api")));
        assert!(allows(&discovery, &path("get", "/api/v1")));
        assert!(!allows(&discovery, &path("get", "/apis")));
        assert!(!allows(&discovery, &path("post", "/api")));
        assert!(!allows(&discovery, &path("get", "/version/x")));
        assert!(allows(&url_rule(&["*"], &["*"]), &path("get", "/anything")));
        // Resource rules never allow paths, nor URL rules resources.
        assert!(!allows(&rule(&["*"], &["*"], &["*"]), &path("get", "/api")));
        assert!(!allows(&discovery, &request("get", "", "pods", "", "")));
    }

    #[test]
    fn coverage_is_checked_piece_by_piece() {
        let owner = [
            rule(&["get", "list"], &[""], &["pods", "services"]),
            rule(&["*"], &["apps"], &["deployments"]),
            named(rule(&["update"], &[""], &["configmaps"]), &["a", "b"]),
            rule(&["get"], &["batch"], &["*/status"]),
            url_rule(&["get"], &["/healthz/*"]),
        ];
        let ok = [
            rule(&["get"], &[""], &["pods"]),
            rule(&["get", "list"], &[""], &["services", "pods"]),
            rule(&["create", "delete"], &["apps"], &["deployments"]),
            named(rule(&["update"], &[""], &["configmaps"]), &["a"]),
            rule(&["get"], &["batch"], &["jobs/status"]),
            url_rule(&["get"], &["/healthz/etcd"]),
        ];
        for requested in &ok {
            assert_eq!(
                covers(&owner, std::slice::from_ref(requested)),
                Ok(()),
                "{requested:?}"
            );
        }
        let missing = covers(
            &owner,
            &[rule(&["get", "watch", "delete"], &[""], &["pods"])],
        )
        .expect_err("watch and delete are not held");
        assert_eq!(
            missing_rules_message(&missing),
            "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"watch\" \"delete\"]}"
        );
        let not_ok = [
            // Names held for some objects do not cover all objects.
            rule(&["update"], &[""], &["configmaps"]),
            named(rule(&["update"], &[""], &["configmaps"]), &["c"]),
            // `*` is only covered by `*`.
            rule(&["get"], &[""], &["*"]),
            rule(&["get"], &["*"], &["pods"]),
            rule(&["*"], &[""], &["pods"]),
            rule(&["get"], &["batch"], &["jobs"]),
            url_rule(&["get"], &["/healthz"]),
            url_rule(&["get"], &["*"]),
        ];
        for requested in &not_ok {
            assert!(
                covers(&owner, std::slice::from_ref(requested)).is_err(),
                "{requested:?}"
            );
        }
        let everything = [rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])];
        assert_eq!(covers(&everything, &owner), Ok(()));
    }

    #[test]
    fn rules_print_as_upstream_compact_strings() {
        assert_eq!(
            compact_string(&named(rule(&["get"], &["apps"], &["deployments"]), &["web"])),
            "{APIGroups:[\"apps\"], Resources:[\"deployments\"], ResourceNames:[\"web\"], Verbs:[\"get\"]}"
        );
        assert_eq!(
            compact_string(&url_rule(&["get", "post"], &["/logs"])),
            "{NonResourceURLs:[\"/logs\"], Verbs:[\"get\" \"post\"]}"
        );
    }
}
