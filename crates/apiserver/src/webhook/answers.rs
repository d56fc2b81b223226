//! Answers of a webhook the server itself asks (the token and authorization webhooks), kept
//! for a while so the same question is not sent again at once: each with when it came, fresh
//! for a time the caller gives per answer. Past [`CAPACITY`] answers the cache starts over.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Answers kept at most.
pub const CAPACITY: usize = 10_000;

/// The kept answers, by question.
pub struct Answers<K, V> {
    entries: parking_lot::Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> Default for Answers<K, V> {
    fn default() -> Self {
        Answers {
            entries: parking_lot::Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Answers<K, V> {
    /// The answer to `key`, if it came less than `ttl(answer)` ago.
    pub fn get(&self, key: &K, ttl: impl Fn(&V) -> Duration) -> Option<V> {
        let entries = self.entries.lock();
        let (at, answer) = entries.get(key)?;
        (at.elapsed() < ttl(answer)).then(|| answer.clone())
    }

    /// Keeps `answer` to `key`, from now.
    pub fn put(&self, key: K, answer: V) {
        let mut entries = self.entries.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_fresh_for_their_ttl_and_start_over_when_full() {
        let answers: Answers<u32, bool> = Answers::default();
        answers.put(1, true);
        let ttl = |ok: &bool| {
            if *ok {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            }
        };
        assert_eq!(answers.get(&1, ttl), Some(true));
        answers.put(2, false);
        assert_eq!(answers.get(&2, ttl), None, "stale at once");
        for key in 3..=CAPACITY as u32 {
            answers.put(key, true);
        }
        answers.put(0, true);
        assert_eq!(answers.get(&1, ttl), None, "started over");
        assert_eq!(answers.get(&0, ttl), Some(true));
    }
}
