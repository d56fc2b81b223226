//! How many seats a request takes (upstream's `WorkEstimator`, its list part): one, but for a
//! LIST, the objects it goes through (the resource's stored objects, as last counted) at 100
//! per seat, between one and the level's maximum — 10, or 15% of the level's seats if fewer.
//! A LIST served from the watch cache goes through every object; one from storage through
//! twice its limit (upstream's estimate), or, with a selector, every object and its limit. Mutating requests take one seat (upstream adds
//! seats for watchers the write wakes; ferry does not).

use crate::request::RequestInfo;

/// Objects one seat stands for (upstream's `ObjectsPerSeat`).
const OBJECTS_PER_SEAT: u64 = 100;

/// The most seats any request takes (upstream's `MaximumListSeatsLimit`).
const MAXIMUM_SEATS: usize = 10;

/// The most seats a request at a level with `level_seats` takes: [`MAXIMUM_SEATS`], or 15%
/// of the level's seats (at least one) where that is fewer.
pub fn maximum_seats(level_seats: usize) -> usize {
    MAXIMUM_SEATS.min((level_seats * 15).div_ceil(100).max(1))
}

/// What of a LIST's query decides its cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `limit`, when positive.
    pub limit: Option<u64>,
    /// Whether a label or field selector is given.
    pub selective: bool,
    /// Whether it is served from storage rather than the cache (upstream's
    /// `shouldDelegateList` with consistent reads from the cache: an exact
    /// `resourceVersionMatch`, a `continue`, or a `limit` with a `resourceVersion` other than
    /// `0`).
    pub from_storage: bool,
}

impl ListQuery {
    /// The query string's LIST options.
    pub fn parse(query: &str) -> ListQuery {
        let mut out = ListQuery::default();
        let mut resource_version = String::new();
        let mut exact = false;
        let mut continued = false;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "limit" => out.limit = value.parse().ok().filter(|l: &u64| *l > 0),
                "labelSelector" | "fieldSelector" if !value.is_empty() => out.selective = true,
                "resourceVersion" => resource_version = value.into_owned(),
                "resourceVersionMatch" => exact = value == "Exact",
                "continue" if !value.is_empty() => continued = true,
                _ => {}
            }
        }
        out.from_storage = exact
            || continued
            || out.limit.is_some() && !matches!(resource_version.as_str(), "" | "0");
        out
    }
}

/// The seats `request` takes at a level whose maximum is `maximum` ([`maximum_seats`]):
/// `stored` is the resource's count of objects, if it was counted.
pub fn seats(request: &RequestInfo, query: &str, stored: Option<u64>, maximum: usize) -> usize {
    if !request.is_resource_request || request.verb != "list" || !request.name.is_empty() {
        return 1;
    }
    let Some(stored) = stored else {
        return 1;
    };
    let list = ListQuery::parse(query);
    let limit = list.limit.map_or(stored, |l| l.min(stored));
    let objects = if !list.from_storage {
        stored
    } else if list.selective {
        stored + limit
    } else {
        2 * limit
    };
    let seats = usize::try_from(objects.div_ceil(OBJECTS_PER_SEAT)).unwrap_or(usize::MAX);
    seats.clamp(1, maximum.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(namespace: &str) -> RequestInfo {
        RequestInfo {
            is_resource_request: true,
            verb: "list".into(),
            resource: "configmaps".into(),
            namespace: namespace.into(),
            ..Default::default()
        }
    }

    #[test]
    fn lists_take_a_seat_per_hundred_objects_up_to_the_levels_maximum() {
        let max = maximum_seats(100);
        assert_eq!(max, 10);
        // From the cache (kubectl's `limit=500` first page too): every object.
        assert_eq!(seats(&list("default"), "limit=500", Some(1_000), max), 10);
        assert_eq!(
            seats(&list("default"), "resourceVersion=0", Some(250), max),
            3
        );
        assert_eq!(seats(&list(""), "", Some(10), max), 1);
        // Pages from storage: twice the limit.
        assert_eq!(
            seats(&list(""), "limit=100&continue=abc", Some(1_000), max),
            2
        );
        assert_eq!(
            seats(&list(""), "limit=500&resourceVersion=7", Some(120), max),
            3
        );
        // With a selector: everything, then the limit.
        assert_eq!(
            seats(
                &list(""),
                "limit=100&continue=x&labelSelector=app%3Dweb",
                Some(300),
                max
            ),
            4
        );
        // Never counted, a GET, a write: one seat.
        assert_eq!(seats(&list(""), "", None, max), 1);
        let mut get = list("default");
        get.verb = "get".into();
        get.name = "x".into();
        assert_eq!(seats(&get, "", Some(1_000), max), 1);
        let mut create = list("default");
        create.verb = "create".into();
        assert_eq!(seats(&create, "", Some(1_000), max), 1);
    }

    #[test]
    fn small_levels_cap_the_seats() {
        assert_eq!(maximum_seats(1), 1);
        assert_eq!(maximum_seats(20), 3);
        assert_eq!(maximum_seats(1_000), 10);
        assert_eq!(seats(&list(""), "", Some(100_000), maximum_seats(20)), 3);
    }

    #[test]
    fn list_options_say_where_it_is_served_from() {
        assert!(!ListQuery::parse("").from_storage);
        assert!(!ListQuery::parse("limit=10").from_storage);
        assert!(!ListQuery::parse("resourceVersion=0&limit=10").from_storage);
        assert!(!ListQuery::parse("resourceVersion=42").from_storage);
        assert!(ListQuery::parse("resourceVersion=42&limit=10").from_storage);
        assert!(ListQuery::parse("resourceVersion=42&resourceVersionMatch=Exact").from_storage);
        assert!(ListQuery::parse("continue=abc").from_storage);
    }
}
