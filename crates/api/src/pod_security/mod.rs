//! The Pod Security Standards as upstream's `k8s.io/pod-security-admission` evaluates them: the
//! three levels, policy versions, a namespace's `pod-security.kubernetes.io/*` labels turned
//! into the policy to evaluate, and the checks a pod's metadata and spec go through
//! ([`checks`]), with upstream's reasons and details so that refusals and warnings read as
//! theirs.
//!
//! A version names the rules as they were in that Kubernetes minor; `latest`, and any version
//! newer than the newest rule ([`NEWEST_MINOR`]), is evaluated as the newest (and printed as
//! given).

mod checks;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use checks::Violation;

/// The prefix of the namespace labels.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// The newest minor any rule was revised in (v1.32: the sysctls list); `latest` means it.
pub const NEWEST_MINOR: u32 = 32;

/// A level of the standards, from the least to the most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No checks.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Pod hardening best practices.
    Restricted,
}

impl Level {
    /// The level called `name` (exactly, as upstream's `ParseLevel`).
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name {
            "privileged" => Level::Privileged,
            "baseline" => Level::Baseline,
            "restricted" => Level::Restricted,
            _ => return None,
        })
    }

    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A policy version: `latest` or `v1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The newest rules.
    Latest,
    /// The rules of Kubernetes 1.`minor`.
    Minor(u32),
}

impl Version {
    /// `latest` or `v1.<minor>` without leading zeros (upstream's `ParseVersion`).
    pub fn parse(text: &str) -> Option<Version> {
        if text == "latest" {
            return Some(Version::Latest);
        }
        let minor = text.strip_prefix("v1.")?;
        let digits = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
        if !digits || (minor.len() > 1 && minor.starts_with('0')) {
            return None;
        }
        minor.parse().ok().map(Version::Minor)
    }

    /// The minor whose rules apply.
    pub fn rules(self) -> u32 {
        match self {
            Version::Latest => NEWEST_MINOR,
            Version::Minor(minor) => minor.min(NEWEST_MINOR),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Minor(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A level at a version, printed `level:version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version of its rules.
    pub version: Version,
}

impl LevelVersion {
    /// `privileged:latest`, which checks nothing.
    pub const PRIVILEGED: LevelVersion = LevelVersion {
        level: Level::Privileged,
        version: Version::Latest,
    };

    /// Whether the two evaluate the same rules.
    pub fn equivalent(&self, other: &LevelVersion) -> bool {
        self.level == other.level
            && (self.level == Level::Privileged || self.version.rules() == other.version.rules())
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// What a namespace's pods are held to, in each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Refused when violated.
    pub enforce: LevelVersion,
    /// Recorded in the audit log when violated.
    pub audit: LevelVersion,
    /// Returned to the client as a warning when violated.
    pub warn: LevelVersion,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            enforce: LevelVersion::PRIVILEGED,
            audit: LevelVersion::PRIVILEGED,
            warn: LevelVersion::PRIVILEGED,
        }
    }
}

impl Policy {
    /// Whether nothing is checked in any mode.
    pub fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }
}

/// A namespace label with a value the standards do not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    /// The field: `metadata.labels[pod-security.kubernetes.io/enforce]`.
    pub field: String,
    /// The label's value.
    pub value: String,
    /// Upstream's detail.
    pub detail: &'static str,
}

const LEVEL_DETAIL: &str = "must be one of privileged, baseline, restricted";
const VERSION_DETAIL: &str = "must be \"latest\" or \"v1.x\"";

/// The policy a namespace with `labels` is held to: `defaults` overridden label by label
/// (upstream's `PolicyToEvaluate`). A bad enforce level falls back to restricted, a bad audit
/// or warn level to privileged, a bad version to latest, each with an error. Without a `warn`
/// label, warnings follow an `enforce` label that is stricter than the default.
pub fn policy_for(
    labels: &BTreeMap<String, String>,
    defaults: &Policy,
) -> (Policy, Vec<LabelError>) {
    let mut policy = *defaults;
    let mut errors = Vec::new();
    if labels.is_empty() {
        return (policy, errors);
    }
    let mut enforce_labelled = false;
    let modes = [
        ("enforce", &mut policy.enforce, Level::Restricted),
        ("audit", &mut policy.audit, Level::Privileged),
        ("warn", &mut policy.warn, Level::Privileged),
    ];
    for (mode, target, fallback) in modes {
        let level_label = format!("{LABEL_PREFIX}{mode}");
        if let Some(value) = labels.get(&level_label) {
            match Level::parse(value) {
                Some(level) => {
                    target.level = level;
                    enforce_labelled |= mode == "enforce";
                }
                None => {
                    target.level = fallback;
                    errors.push(LabelError {
                        field: format!("metadata.labels[{level_label}]"),
                        value: value.clone(),
                        detail: LEVEL_DETAIL,
                    });
                }
            }
        }
        let version_label = format!("{LABEL_PREFIX}{mode}-version");
        if let Some(value) = labels.get(&version_label) {
            target.version = Version::parse(value).unwrap_or_else(|| {
                errors.push(LabelError {
                    field: format!("metadata.labels[{version_label}]"),
                    value: value.clone(),
                    detail: VERSION_DETAIL,
                });
                Version::Latest
            });
        }
    }
    let warn_labelled = labels.contains_key(&format!("{LABEL_PREFIX}warn"));
    if !warn_labelled && enforce_labelled && policy.enforce.level > policy.warn.level {
        policy.warn.level = policy.enforce.level;
        if !labels.contains_key(&format!("{LABEL_PREFIX}warn-version")) {
            policy.warn.version = policy.enforce.version;
        }
    }
    (policy, errors)
}

/// The rules `level_version` breaks for a pod with `meta` and `spec`, in upstream's check
/// order (empty when it passes).
pub fn evaluate(level_version: LevelVersion, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    checks::run(
        level_version.level,
        level_version.version.rules(),
        meta,
        spec,
    )
}

/// Every violation as `reason (detail)`, joined with `, ` (upstream's `ForbiddenDetail`).
pub fn forbidden_detail(violations: &[Violation]) -> String {
    let items: Vec<String> = violations
        .iter()
        .map(|v| match v.detail.is_empty() {
            true => v.reason.clone(),
            false => format!("{} ({})", v.reason, v.detail),
        })
        .collect();
    items.join(", ")
}

/// The violations' reasons, joined with `, ` (upstream's `ForbiddenReason`).
pub fn forbidden_reason(violations: &[Violation]) -> String {
    let reasons: Vec<&str> = violations.iter().map(|v| v.reason.as_str()).collect();
    reasons.join(", ")
}

/// Where the pod template sits in the workload resources upstream's default extractor knows
/// (`group`, `resource`, JSON pointer): their writes are warned about, never refused.
const POD_TEMPLATES: &[(&str, &str, &str)] = &[
    ("", "replicationcontrollers", "/spec/template"),
    ("", "podtemplates", "/template"),
    ("apps", "replicasets", "/spec/template"),
    ("apps", "deployments", "/spec/template"),
    ("apps", "statefulsets", "/spec/template"),
    ("apps", "daemonsets", "/spec/template"),
    ("batch", "jobs", "/spec/template"),
    ("batch", "cronjobs", "/spec/jobTemplate/spec/template"),
];

/// The JSON pointer to the pod template of a workload resource, if it is one.
pub fn template_pointer(group: &str, resource: &str) -> Option<&'static str> {
    POD_TEMPLATES
        .iter()
        .find(|(g, r, _)| *g == group && *r == resource)
        .map(|(_, _, pointer)| *pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v.to_string()))
            .collect()
    }

    fn lv(level: Level, version: Version) -> LevelVersion {
        LevelVersion { level, version }
    }

    #[test]
    fn versions_are_latest_or_minors_without_leading_zeros() {
        assert_eq!(Version::parse("latest"), Some(Version::Latest));
        assert_eq!(Version::parse("v1.0"), Some(Version::Minor(0)));
        assert_eq!(Version::parse("v1.999"), Some(Version::Minor(999)));
        for bad in ["v1.01", "1.25", "v2.0", "v1.", "v1.x", "Latest"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert_eq!(Version::Minor(999).rules(), NEWEST_MINOR);
        assert_eq!(
            lv(Level::Restricted, Version::Minor(99)).to_string(),
            "restricted:v1.99"
        );
    }

    #[test]
    fn labels_override_defaults_and_bad_values_fall_back_with_errors() {
        let defaults = Policy::default();
        let (policy, errors) = policy_for(&BTreeMap::new(), &defaults);
        assert_eq!((policy, errors.len()), (defaults, 0));

        let (policy, errors) = policy_for(&labels(&[("enforce", "baseline")]), &defaults);
        assert!(errors.is_empty());
        assert_eq!(policy.enforce, lv(Level::Baseline, Version::Latest));
        assert_eq!(
            policy.warn, policy.enforce,
            "warn follows a stricter enforce label"
        );
        assert_eq!(policy.audit, LevelVersion::PRIVILEGED);

        let (policy, _) = policy_for(
            &labels(&[
                ("enforce", "restricted"),
                ("enforce-version", "v1.24"),
                ("warn-version", "v1.30"),
            ]),
            &defaults,
        );
        assert_eq!(policy.warn, lv(Level::Restricted, Version::Minor(30)));
        let (policy, _) = policy_for(
            &labels(&[("enforce", "restricted"), ("warn", "baseline")]),
            &defaults,
        );
        assert_eq!(
            policy.warn.level,
            Level::Baseline,
            "an explicit warn label wins"
        );

        let (policy, errors) = policy_for(
            &labels(&[
                ("enforce", "strict"),
                ("audit", "x"),
                ("warn-version", "1.2"),
            ]),
            &defaults,
        );
        assert_eq!(policy.enforce.level, Level::Restricted);
        assert_eq!(policy.audit.level, Level::Privileged);
        assert_eq!(
            policy.warn.level,
            Level::Privileged,
            "a bad enforce level is not followed"
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels[pod-security.kubernetes.io/enforce]",
                "metadata.labels[pod-security.kubernetes.io/audit]",
                "metadata.labels[pod-security.kubernetes.io/warn-version]"
            ]
        );
        assert_eq!(errors[2].detail, "must be \"latest\" or \"v1.x\"");
    }

    #[test]
    fn workload_templates_are_found_by_resource() {
        assert_eq!(
            template_pointer("apps", "deployments"),
            Some("/spec/template")
        );
        assert_eq!(
            template_pointer("batch", "cronjobs"),
            Some("/spec/jobTemplate/spec/template")
        );
        assert_eq!(template_pointer("", "pods"), None);
    }
}
