//! The query parameters that decide where a LIST or WATCH starts, as upstream's
//! `metainternalversion.ListOptions`: the WatchList defaults (`SetListOptionsDefaults`), the
//! checks of `ValidateListOptions` — refused as 422 on `ListOptions.meta.k8s.io ""` — and, for
//! a watch, where its stream starts ([`Start`]).
//!
//! A streaming list (KEP-3157, client-go's WatchListClient, kube-rs' `streaming_lists()`) is a
//! watch with `sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`:
//! the matching objects as ADDED, then a BOOKMARK annotated `k8s.io/initial-events-end`, then
//! the changes. Upstream serves it only when the `WatchList` feature gate is on.

use std::collections::HashMap;
use std::time::Duration;

use ferry_store::Revision;

use crate::status::{ApiError, FieldError};

/// `resourceVersionMatch=NotOlderThan`.
pub const NOT_OLDER_THAN: &str = "NotOlderThan";

/// `resourceVersionMatch=Exact`.
pub const EXACT: &str = "Exact";

/// The annotation of the bookmark that ends a watch's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// The annotation carrying, on that bookmark, the empty list a client builds the list in
/// (base64 of its encoding).
pub const INITIAL_EVENTS_LIST_BLUEPRINT: &str = "kubernetes.io/initial-events-list-blueprint";

/// How long a watch lasts when the client sets no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The parameters of a LIST or WATCH that validation and the start of a watch look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// A watch (`watch=true`, or the watch verb) rather than a list.
    pub watch: bool,
    /// `resourceVersion`, as given ("" when absent).
    pub resource_version: String,
    /// `resourceVersionMatch` ("" when absent).
    pub resource_version_match: String,
    /// `sendInitialEvents`, when given.
    pub send_initial_events: Option<bool>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `continue` ("" when absent).
    pub continue_token: String,
    /// `timeoutSeconds`, when given.
    pub timeout_seconds: Option<u64>,
}

/// Where a watch's stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The matching objects first, as ADDED, from a read of the store at its latest revision,
    /// which must be at least `not_older_than`; then the changes after that read.
    Initial {
        /// The oldest revision the initial state may be read at (`None`: any).
        not_older_than: Option<Revision>,
        /// Mark the end of the initial events with a bookmark (a streaming list).
        end_bookmark: bool,
    },
    /// The changes after the store's current revision.
    Now,
    /// The changes after this revision.
    After(Revision),
}

impl ListOptions {
    /// The options in `query`, for a watch when `watch` (the verb) says so.
    pub fn from_query(query: &HashMap<String, String>, watch: bool) -> ListOptions {
        let text = |key: &str| query.get(key).cloned().unwrap_or_default();
        let flag = |key: &str| query.get(key).map(|v| crate::request::query_bool(v));
        ListOptions {
            watch: watch || flag("watch").unwrap_or(false),
            resource_version: text("resourceVersion"),
            resource_version_match: text("resourceVersionMatch"),
            send_initial_events: flag("sendInitialEvents"),
            allow_watch_bookmarks: flag("allowWatchBookmarks").unwrap_or(false),
            continue_token: text("continue"),
            timeout_seconds: query.get("timeoutSeconds").and_then(|t| t.parse().ok()),
        }
    }

    /// The options in `query` with upstream's defaults applied, or the 422 upstream answers
    /// invalid ones with. `watch_list`: whether the `WatchList` feature gate is on.
    pub fn parse(
        query: &HashMap<String, String>,
        watch: bool,
        watch_list: bool,
    ) -> Result<ListOptions, ApiError> {
        let mut options = ListOptions::from_query(query, watch);
        options.set_defaults(watch_list);
        let errors = options.validate(watch_list);
        if errors.is_empty() {
            Ok(options)
        } else {
            Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", &errors))
        }
    }

    /// Upstream's `SetListOptionsDefaults`: with WatchList on, a watch from "" or "0" that
    /// says nothing of initial events is a streaming list (whose initial state is a consistent
    /// read; its end is marked when bookmarks are allowed).
    pub fn set_defaults(&mut self, watch_list: bool) {
        if !watch_list
            || self.send_initial_events.is_some()
            || !self.resource_version_match.is_empty()
        {
            return;
        }
        if self.watch && matches!(self.resource_version.as_str(), "" | "0") {
            self.send_initial_events = Some(true);
            self.resource_version_match = NOT_OLDER_THAN.to_string();
        }
    }

    /// Upstream's `ValidateListOptions`, cause for cause.
    pub fn validate(&self, watch_list: bool) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let forbidden = |errors: &mut Vec<FieldError>, field: &str, detail: &str| {
            errors.push(FieldError::forbidden(field, detail))
        };
        let rv_match = self.resource_version_match.as_str();
        if self.watch {
            if self.send_initial_events.is_some() {
                if rv_match != NOT_OLDER_THAN {
                    forbidden(
                        &mut errors,
                        "resourceVersionMatch",
                        &format!(
                            "sendInitialEvents requires setting resourceVersionMatch to {NOT_OLDER_THAN}"
                        ),
                    );
                }
                if !watch_list {
                    forbidden(
                        &mut errors,
                        "sendInitialEvents",
                        "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
                    );
                }
            }
            if !rv_match.is_empty() {
                if self.send_initial_events.is_none() {
                    forbidden(
                        &mut errors,
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    );
                }
                if rv_match != NOT_OLDER_THAN {
                    errors.push(FieldError::not_supported(
                        "resourceVersionMatch",
                        rv_match,
                        &[NOT_OLDER_THAN],
                    ));
                }
                if !self.continue_token.is_empty() {
                    forbidden(
                        &mut errors,
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    );
                }
            }
            return errors;
        }
        if !rv_match.is_empty() {
            if self.resource_version.is_empty() {
                forbidden(
                    &mut errors,
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                );
            }
            if !self.continue_token.is_empty() {
                forbidden(
                    &mut errors,
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                );
            }
            if rv_match != EXACT && rv_match != NOT_OLDER_THAN {
                errors.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    rv_match,
                    &[EXACT, NOT_OLDER_THAN, ""],
                ));
            }
            if rv_match == EXACT && self.resource_version == "0" {
                forbidden(
                    &mut errors,
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                );
            }
        }
        if self.send_initial_events.is_some() {
            forbidden(
                &mut errors,
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            );
        }
        errors
    }

    /// Upstream's `isListWatchRequest`: a streaming list, whose initial events end with a
    /// bookmark (only validated options with WatchList on get here with `sendInitialEvents`).
    pub fn is_list_watch(&self) -> bool {
        self.send_initial_events == Some(true) && self.allow_watch_bookmarks
    }

    /// How long the watch lasts.
    pub fn timeout(&self) -> Duration {
        self.timeout_seconds
            .filter(|t| *t > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Where a watch with these options starts, as upstream's watch cache decides it.
    pub fn start(&self) -> Result<Start, ApiError> {
        let revision =
            match self.resource_version.as_str() {
                "" | "0" => None,
                rv => Some(rv.parse::<Revision>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?),
            };
        Ok(match (self.send_initial_events, revision) {
            (Some(true), not_older_than) => Start::Initial {
                not_older_than,
                end_bookmark: self.is_list_watch(),
            },
            // Initial events declined: "" and "0" mean from now.
            (Some(false), None) => Start::Now,
            // The legacy watch from "" or "0" begins with the current state, unmarked.
            (None, None) => Start::Initial {
                not_older_than: None,
                end_bookmark: false,
            },
            (_, Some(rv)) => Start::After(rv),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Query parameters.
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    /// The validation messages expected.
    type Messages<'a> = &'a [&'a str];

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn messages(pairs: &[(&str, &str)], watch: bool, watch_list: bool) -> Vec<String> {
        let mut options = ListOptions::from_query(&query(pairs), watch);
        options.set_defaults(watch_list);
        options
            .validate(watch_list)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const STREAMING: &[(&str, &str)] = &[
        ("sendInitialEvents", "true"),
        ("allowWatchBookmarks", "true"),
        ("resourceVersionMatch", "NotOlderThan"),
        ("resourceVersion", "0"),
    ];

    #[test]
    fn a_streaming_list_is_valid_with_watch_list_on() {
        assert!(messages(STREAMING, true, true).is_empty());
        let options = ListOptions::parse(&query(STREAMING), true, true).expect("valid");
        assert!(options.is_list_watch());
        assert_eq!(
            options.start().expect("start"),
            Start::Initial {
                not_older_than: None,
                end_bookmark: true
            }
        );
    }

    #[test]
    fn watch_options_are_validated_as_upstream() {
        let cases: &[(Pairs, bool, Messages)] = &[
            (
                STREAMING,
                false,
                &["sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"],
            ),
            (
                &[("sendInitialEvents", "true")],
                true,
                &["resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"],
            ),
            (
                &[("sendInitialEvents", "false"), ("resourceVersionMatch", "Exact")],
                true,
                &[
                    "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    "resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"",
                ],
            ),
            (
                &[("resourceVersion", "5"), ("resourceVersionMatch", "NotOlderThan")],
                true,
                &["resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"],
            ),
            (
                &[
                    ("sendInitialEvents", "true"),
                    ("resourceVersionMatch", "NotOlderThan"),
                    ("continue", "x"),
                ],
                true,
                &["resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"],
            ),
            // Without the gate nothing is defaulted, and a plain watch is fine.
            (&[("resourceVersion", "0")], false, &[]),
            (&[("resourceVersion", "12")], true, &[]),
        ];
        for (pairs, watch_list, want) in cases {
            assert_eq!(
                messages(pairs, true, *watch_list),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{pairs:?} watch_list={watch_list}"
            );
        }
    }

    #[test]
    fn list_options_are_validated_as_upstream() {
        let cases: &[(Pairs, Messages)] = &[
            (&[("resourceVersion", "5"), ("resourceVersionMatch", "Exact")], &[]),
            (
                &[("resourceVersionMatch", "NotOlderThan")],
                &["resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"],
            ),
            (
                &[("resourceVersion", "0"), ("resourceVersionMatch", "Exact")],
                &["resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""],
            ),
            (
                &[("resourceVersion", "5"), ("resourceVersionMatch", "Newest")],
                &["resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\""],
            ),
            (
                &[("sendInitialEvents", "true")],
                &["sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"],
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                messages(pairs, false, true),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_refusal_is_a_422_on_list_options() {
        let error = ListOptions::parse(&query(STREAMING), true, false).expect_err("refused");
        let status = error.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["kind"], "ListOptions");
        assert_eq!(status["details"]["group"], "meta.k8s.io");
        assert_eq!(
            status["message"],
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
        );
    }

    #[test]
    fn watch_list_defaults_apply_to_legacy_watches_only() {
        let defaulted = |pairs: &[(&str, &str)]| {
            let mut options = ListOptions::from_query(&query(pairs), true);
            options.set_defaults(true);
            (options.send_initial_events, options.resource_version_match)
        };
        let streaming = (Some(true), NOT_OLDER_THAN.to_string());
        assert_eq!(defaulted(&[]), streaming);
        assert_eq!(defaulted(&[("resourceVersion", "0")]), streaming);
        assert_eq!(
            defaulted(&[("resourceVersion", "7")]),
            (None, String::new())
        );
        assert_eq!(
            defaulted(&[
                ("sendInitialEvents", "false"),
                ("resourceVersionMatch", "NotOlderThan")
            ]),
            (Some(false), NOT_OLDER_THAN.to_string())
        );
        // Lists are never defaulted.
        let mut list = ListOptions::from_query(&query(&[]), false);
        list.set_defaults(true);
        assert_eq!(list.send_initial_events, None);
    }

    #[test]
    fn where_a_watch_starts() {
        let start = |pairs: &[(&str, &str)]| {
            ListOptions::from_query(&query(pairs), true)
                .start()
                .expect("start")
        };
        let initial = |not_older_than, end_bookmark| Start::Initial {
            not_older_than,
            end_bookmark,
        };
        assert_eq!(start(&[]), initial(None, false));
        assert_eq!(start(&[("resourceVersion", "0")]), initial(None, false));
        assert_eq!(start(&[("resourceVersion", "9")]), Start::After(9));
        assert_eq!(
            start(&[("sendInitialEvents", "true"), ("resourceVersion", "9")]),
            initial(Some(9), false)
        );
        assert_eq!(
            start(&[
                ("sendInitialEvents", "true"),
                ("allowWatchBookmarks", "true")
            ]),
            initial(None, true)
        );
        assert_eq!(start(&[("sendInitialEvents", "false")]), Start::Now);
        assert_eq!(
            start(&[("sendInitialEvents", "false"), ("resourceVersion", "0")]),
            Start::Now
        );
        assert_eq!(
            start(&[("sendInitialEvents", "false"), ("resourceVersion", "4")]),
            Start::After(4)
        );
        assert!(
            ListOptions::from_query(&query(&[("resourceVersion", "x")]), true)
                .start()
                .is_err()
        );
    }
}
