//! Sets of completion indexes as upstream's `orderedIntervals` (`indexed_job_utils.go`): the
//! form of `status.completedIndexes`, `status.failedIndexes` and a success policy's
//! `succeededIndexes` — sorted, disjoint intervals written `1,3-5,7,8` (a run of two is written
//! as two numbers, longer runs with a dash).

use std::collections::BTreeSet;
use std::fmt;

/// Sorted, disjoint, non-adjacent intervals of indexes, each `(first, last)` inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(u32, u32)>);

impl Intervals {
    /// Reads `text` as upstream's `parseIndexesFromString` does for indexes below
    /// `completions`: a part that is not a number is skipped, the first interval starting at or
    /// above `completions` ends the list, and one reaching past it is cut there.
    pub fn parse(text: &str, completions: u32) -> Intervals {
        let mut result: Vec<(u32, u32)> = Vec::new();
        if text.is_empty() {
            return Intervals(result);
        }
        for part in text.split(',') {
            let mut limits = part.split('-');
            let Some(first) = limits.next().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                Some(s) => match s.parse::<u32>() {
                    Ok(last) => last.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match result.last_mut() {
                Some(previous) if previous.1.checked_add(1) == Some(first) => previous.1 = last,
                _ => result.push((first, last)),
            }
        }
        Intervals(result)
    }

    /// The intervals of a set of indexes.
    pub fn of(indexes: &BTreeSet<u32>) -> Intervals {
        Intervals::default().with_indexes(indexes)
    }

    /// These intervals and `indexes`.
    pub fn with_indexes(&self, indexes: &BTreeSet<u32>) -> Intervals {
        self.merge(&Intervals(indexes.iter().map(|&i| (i, i)).collect()))
    }

    /// The union of two sets of intervals.
    pub fn merge(&self, other: &Intervals) -> Intervals {
        let mut all: Vec<(u32, u32)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut result: Vec<(u32, u32)> = Vec::with_capacity(all.len());
        for (first, last) in all {
            match result.last_mut() {
                Some(previous) if u64::from(first) <= u64::from(previous.1) + 1 => {
                    previous.1 = previous.1.max(last);
                }
                _ => result.push((first, last)),
            }
        }
        Intervals(result)
    }

    /// How many indexes there are.
    pub fn total(&self) -> usize {
        self.0
            .iter()
            .map(|(first, last)| (last - first) as usize + 1)
            .sum()
    }

    /// Whether `index` is one of them.
    pub fn has(&self, index: u32) -> bool {
        let at = self.0.partition_point(|&(_, last)| last < index);
        self.0.get(at).is_some_and(|&(first, _)| first <= index)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The intervals, in order.
    pub fn intervals(&self) -> &[(u32, u32)] {
        &self.0
    }

    /// The first `count` indexes below `completions` that are not in these intervals
    /// (upstream's `firstPendingIndexes` over the indexes not pending).
    pub fn first_missing(&self, count: usize, completions: u32) -> Vec<u32> {
        let mut result = Vec::with_capacity(count.min(completions as usize));
        let mut candidate = 0u32;
        for &(first, last) in &self.0 {
            while candidate < completions && result.len() < count && candidate < first {
                result.push(candidate);
                candidate += 1;
            }
            candidate = candidate.max(last.saturating_add(1));
        }
        while candidate < completions && result.len() < count {
            result.push(candidate);
            candidate += 1;
        }
        result
    }

    /// Whether `succeeded` covers these intervals (a success policy's `succeededIndexes`), or
    /// at least `count` of them when given (upstream's `matchSucceededIndexesRule`).
    pub fn satisfied_by(&self, succeeded: &Intervals, count: Option<u32>) -> bool {
        let (rule, done) = (&self.0, &succeeded.0);
        let (mut r, mut s, mut contained) = (0, 0, 0usize);
        while r < rule.len() && s < done.len() {
            let overlap_first = rule[r].0.max(done[s].0);
            let overlap_last = rule[r].1.min(done[s].1);
            if overlap_last >= overlap_first {
                contained += (overlap_last - overlap_first) as usize + 1;
            }
            match done[s].1.cmp(&rule[r].1) {
                std::cmp::Ordering::Less => s += 1,
                std::cmp::Ordering::Greater => r += 1,
                std::cmp::Ordering::Equal => {
                    s += 1;
                    r += 1;
                }
            }
        }
        contained == self.total() || count.is_some_and(|c| contained >= c as usize)
    }
}

impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(first, last)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{first}")?;
            if last == first + 1 {
                write!(f, ",{last}")?;
            } else if last > first {
                write!(f, "-{last}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = &'static [(u32, u32)];

    fn iv(pairs: &[(u32, u32)]) -> Intervals {
        Intervals(pairs.to_vec())
    }

    #[test]
    fn written_as_upstream_writes_them() {
        let cases: &[(Pairs, &str)] = &[
            (&[], ""),
            (&[(0, 0)], "0"),
            (&[(0, 1)], "0,1"),
            (&[(0, 2), (4, 4), (6, 7)], "0-2,4,6,7"),
            (&[(1, 3), (5, 5), (7, 10)], "1-3,5,7-10"),
        ];
        for (pairs, want) in cases {
            assert_eq!(iv(pairs).to_string(), *want);
        }
    }

    /// Upstream's `TestParseIndexesFromString`.
    #[test]
    fn parsed_as_upstream_parses_them() {
        let cases: &[(&str, u32, Pairs)] = &[
            ("", 0, &[]),
            ("1", 3, &[(1, 1)]),
            ("1,3", 5, &[(1, 1), (3, 3)]),
            ("1-3,5-7", 10, &[(1, 3), (5, 7)]),
            ("1,3-5", 10, &[(1, 1), (3, 5)]),
            ("1,a-5", 10, &[(1, 1)]),
            ("1,2-a", 10, &[(1, 1)]),
            ("1-2,3", 10, &[(1, 3)]),
            ("1-3,5", 3, &[(1, 2)]),
            ("1,3,5", 3, &[(1, 1)]),
            ("0,1,2,3", 10, &[(0, 3)]),
        ];
        for (text, completions, want) in cases {
            assert_eq!(Intervals::parse(text, *completions), iv(want), "{text:?}");
        }
    }

    #[test]
    fn merged_and_looked_up() {
        let a = iv(&[(0, 2), (7, 8)]);
        let b = Intervals::of(&[3, 5, 9].into());
        assert_eq!(a.merge(&b), iv(&[(0, 3), (5, 5), (7, 9)]));
        assert_eq!(a.merge(&b).total(), 8);
        for (index, want) in [
            (0, true),
            (2, true),
            (3, false),
            (7, true),
            (8, true),
            (9, false),
        ] {
            assert_eq!(a.has(index), want, "{index}");
        }
        assert!(!Intervals::default().has(0));
    }

    /// Upstream's `TestFirstPendingIndexes`, over the indexes not pending.
    #[test]
    fn first_missing_indexes() {
        let cases: &[(Pairs, usize, u32, &[u32])] = &[
            (&[], 3, 10, &[0, 1, 2]),
            (&[(0, 0), (3, 3), (5, 5)], 3, 10, &[1, 2, 4]),
            (&[(0, 2)], 5, 5, &[3, 4]),
            (&[(1, 1), (4, 6), (8, 9)], 10, 12, &[0, 2, 3, 7, 10, 11]),
            (&[(0, 1), (3, 4)], 10, 5, &[2]),
            (&[(2, 2)], 0, 10, &[]),
        ];
        for (taken, count, completions, want) in cases {
            assert_eq!(iv(taken).first_missing(*count, *completions), *want);
        }
    }
}
