//! Where a pod worker is in its pod's life, as upstream's `pod_workers.go` tracks it with its
//! work types `SyncPod`, `TerminatingPod` and `TerminatedPod`; upstream's `SyncPod` that
//! returns a terminal phase is our [`Lifecycle::Completed`].
//!
//! ```text
//!               complete
//!   Syncing ─────────────────▶ Completed
//!    │   ▲                         │
//!    │   │ resume (seen again,     │
//!    │   │ not deleted)            │
//!    ▼   │                         │
//!   Terminating { deadline } ◀─────┘    start_terminating(deadline), from either;
//!    │                                  shorten_deadline: only ever sooner
//!    │ terminated
//!    ▼
//!   Terminated
//! ```
//!
//! Each transition is a method that makes only the moves drawn above: a move from anywhere
//! else is refused (it returns `false` and leaves the state as it was), so a worker cannot be
//! both completed and terminated, or hold a deadline it is not terminating by. Asking for the
//! state the worker is already in is a no-op that returns `true`; in particular a termination
//! that resumes after a failed step keeps its first deadline.

use tokio::time::Instant;

/// A pod worker's lifecycle; see the module docs for the moves between states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lifecycle {
    /// Upstream `SyncPod`: the pod runs as its spec says.
    #[default]
    Syncing,
    /// The pod reached a terminal phase without being deleted (its restart policy let every
    /// container end, or its sandbox died under `Never`): nothing starts again, its sandbox is
    /// stopped, and its final status is kept posted.
    Completed,
    /// Upstream `TerminatingPod`: the pod is deleted (or gone from the API) and its containers
    /// are being stopped, all of them by `deadline` (the grace period from when termination
    /// began, cut short when the pod's grace period is).
    Terminating {
        /// When the grace period ends.
        deadline: Instant,
    },
    /// Upstream `TerminatedPod`: containers and sandbox are stopped and removed, volumes and
    /// directories cleaned, the final status posted; only finalizing the delete is left.
    Terminated,
}

impl Lifecycle {
    /// Syncing → Completed: the pod ran to its end. Refused once termination began.
    pub fn complete(&mut self) -> bool {
        match self {
            Lifecycle::Syncing | Lifecycle::Completed => {
                *self = Lifecycle::Completed;
                true
            }
            Lifecycle::Terminating { .. } | Lifecycle::Terminated => false,
        }
    }

    /// Syncing or Completed → Terminating by `deadline`. Already terminating, the deadline
    /// set when termination began is kept; refused once terminated.
    pub fn start_terminating(&mut self, deadline: Instant) -> bool {
        match self {
            Lifecycle::Syncing | Lifecycle::Completed => {
                *self = Lifecycle::Terminating { deadline };
                true
            }
            Lifecycle::Terminating { .. } => true,
            Lifecycle::Terminated => false,
        }
    }

    /// Moves the termination deadline to `sooner` if that is earlier (the pod's grace period
    /// was shortened); never later. Refused unless terminating.
    pub fn shorten_deadline(&mut self, sooner: Instant) -> bool {
        match self {
            Lifecycle::Terminating { deadline } => {
                *deadline = (*deadline).min(sooner);
                true
            }
            _ => false,
        }
    }

    /// Terminating → Terminated: everything is stopped, removed and cleaned. Refused unless
    /// termination began.
    pub fn terminated(&mut self) -> bool {
        match self {
            Lifecycle::Terminating { .. } | Lifecycle::Terminated => {
                *self = Lifecycle::Terminated;
                true
            }
            Lifecycle::Syncing | Lifecycle::Completed => false,
        }
    }

    /// Terminating → Syncing: the pod is in the API again and not deleted after it was seen
    /// gone (a stale list), so the termination that began is dropped with its deadline.
    /// Refused for a completed or terminated pod: neither runs again.
    pub fn resume(&mut self) -> bool {
        match self {
            Lifecycle::Syncing | Lifecycle::Terminating { .. } => {
                *self = Lifecycle::Syncing;
                true
            }
            Lifecycle::Completed | Lifecycle::Terminated => false,
        }
    }

    /// When termination must be over, while terminating.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Lifecycle::Terminating { deadline } => Some(*deadline),
            _ => None,
        }
    }

    /// Whether termination began: the status posted is then that of a deleted pod (upstream
    /// `TerminatePod`, see [`terminal_status_of_deleted_pod`](super::terminal_status_of_deleted_pod)).
    pub fn termination_started(&self) -> bool {
        matches!(self, Lifecycle::Terminating { .. } | Lifecycle::Terminated)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn terminating(deadline: Instant) -> Lifecycle {
        Lifecycle::Terminating { deadline }
    }

    #[test]
    fn legal_moves() {
        let t0 = Instant::now();
        let mut l = Lifecycle::default();
        assert_eq!(l, Lifecycle::Syncing);
        assert!(l.complete());
        assert_eq!(l, Lifecycle::Completed);
        assert!(l.start_terminating(t0));
        assert_eq!(l, terminating(t0));
        assert!(l.terminated());
        assert_eq!(l, Lifecycle::Terminated);

        // Straight from Syncing, and back when the pod reappears.
        let mut l = Lifecycle::Syncing;
        assert!(l.start_terminating(t0));
        assert_eq!(l.deadline(), Some(t0));
        assert!(l.resume());
        assert_eq!(l, Lifecycle::Syncing);
        assert_eq!(l.deadline(), None);
    }

    #[test]
    fn illegal_moves_are_refused_and_change_nothing() {
        let t0 = Instant::now();
        // Every move not drawn in the module docs, from each state it is not drawn from.
        type Move = fn(&mut Lifecycle, Instant) -> bool;
        let complete: Move = |l, _| l.complete();
        let start: Move = |l, t| l.start_terminating(t);
        let shorten: Move = |l, t| l.shorten_deadline(t);
        let terminated: Move = |l, _| l.terminated();
        let resume: Move = |l, _| l.resume();
        let table: [(Lifecycle, Move, &str); 10] = [
            (terminating(t0), complete, "complete while terminating"),
            (Lifecycle::Terminated, complete, "complete when terminated"),
            (Lifecycle::Terminated, start, "terminate again"),
            (Lifecycle::Syncing, shorten, "shorten without a deadline"),
            (Lifecycle::Completed, shorten, "shorten without a deadline"),
            (Lifecycle::Terminated, shorten, "shorten when terminated"),
            (
                Lifecycle::Syncing,
                terminated,
                "terminated without terminating",
            ),
            (
                Lifecycle::Completed,
                terminated,
                "terminated without terminating",
            ),
            (
                Lifecycle::Completed,
                resume,
                "a completed pod does not run again",
            ),
            (
                Lifecycle::Terminated,
                resume,
                "a terminated pod does not run again",
            ),
        ];
        for (from, step, name) in table {
            let mut l = from;
            assert!(!step(&mut l, t0 + Duration::from_secs(1)), "{name}");
            assert_eq!(l, from, "{name}");
        }
    }

    #[test]
    fn repeated_moves_are_no_ops() {
        let mut l = Lifecycle::Completed;
        assert!(l.complete());
        assert_eq!(l, Lifecycle::Completed);
        let mut l = Lifecycle::Syncing;
        assert!(l.resume());
        assert_eq!(l, Lifecycle::Syncing);
        let mut l = Lifecycle::Terminated;
        assert!(l.terminated());
        assert_eq!(l, Lifecycle::Terminated);
        assert!(l.termination_started());
    }

    #[test]
    fn the_deadline_is_kept_and_only_ever_shortened() {
        let t0 = Instant::now();
        let mut l = Lifecycle::Syncing;
        assert!(l.start_terminating(t0 + Duration::from_secs(30)));
        // A later sync of the terminating pod (after a failed step) keeps the first deadline.
        assert!(l.start_terminating(t0 + Duration::from_secs(60)));
        assert_eq!(l.deadline(), Some(t0 + Duration::from_secs(30)));
        assert!(l.start_terminating(t0 + Duration::from_secs(5)));
        assert_eq!(l.deadline(), Some(t0 + Duration::from_secs(30)));
        // A shorter grace period moves it sooner, never later.
        assert!(l.shorten_deadline(t0 + Duration::from_secs(10)));
        assert_eq!(l.deadline(), Some(t0 + Duration::from_secs(10)));
        assert!(l.shorten_deadline(t0 + Duration::from_secs(20)));
        assert_eq!(l.deadline(), Some(t0 + Duration::from_secs(10)));
        assert!(l.termination_started());
        assert!(l.terminated());
        assert_eq!(l.deadline(), None);
    }
}
