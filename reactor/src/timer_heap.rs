//! The reactor's own timers: "after this long, call this", kept in a binary
//! heap ordered by deadline. No descriptor per timer: the loop's
//! `epoll_wait` timeout is the time to the earliest deadline, so a thousand
//! timers cost a thousand heap entries, not a thousand `timerfd`s.
//!
//! Re-arming or cancelling does not search the heap: each arming gets a new
//! sequence number, and a heap entry whose number is no longer its timer's
//! is skipped when it comes up. The heap is rebuilt when stale entries
//! outnumber live ones, so re-arming an idle timeout on every message keeps
//! memory bounded.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::callback::OnEvent;

/// Names a timer made with [`Context::after`](crate::Context::after) or [`Context::every`](crate::Context::every), to
/// re-arm or cancel it. Like a [`Token`](crate::Token), it carries a
/// generation: a key kept after its timer is gone never reaches another.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerKey {
    key: u32,
    generation: u32,
}

impl fmt::Debug for TimerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerKey({}#{})", self.key, self.generation)
    }
}

struct Entry {
    generation: u32,
    /// The arming that counts; heap entries with another number are stale.
    seq: u64,
    deadline: Instant,
    period: Option<Duration>,
    /// `None` while the callback runs.
    callback: Option<OnEvent>,
}

#[derive(Default)]
pub(crate) struct TimerHeap {
    entries: Slab<Entry>,
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    seq: u64,
    generations: u32,
}

impl TimerHeap {
    pub(crate) fn add(&mut self, delay: Duration, period: Option<Duration>, callback: OnEvent) -> TimerKey {
        let deadline = deadline_after(delay);
        self.seq += 1;
        self.generations = self.generations.wrapping_add(1);
        let entry =
            Entry { generation: self.generations, seq: self.seq, deadline, period, callback: Some(callback) };
        let key = self.entries.insert(entry);
        self.heap.push(Reverse((deadline, self.seq, key)));
        TimerKey { key: key as u32, generation: self.generations }
    }

    fn entry_mut(&mut self, key: TimerKey) -> Option<&mut Entry> {
        self.entries.get_mut(key.key as usize).filter(|e| e.generation == key.generation)
    }

    /// Sets a new deadline, `delay` from now; works from the timer's own
    /// callback, and on a one-shot timer that is running (it then stays).
    pub(crate) fn rearm(&mut self, key: TimerKey, delay: Duration) -> bool {
        self.seq += 1;
        let seq = self.seq;
        let Some(entry) = self.entry_mut(key) else { return false };
        entry.seq = seq;
        entry.deadline = deadline_after(delay);
        let deadline = entry.deadline;
        self.heap.push(Reverse((deadline, seq, key.key as usize)));
        self.compact();
        true
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) -> bool {
        if self.entry_mut(key).is_none() {
            return false;
        }
        self.entries.remove(key.key as usize);
        self.compact();
        true
    }

    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        self.entries.get(key.key as usize).is_some_and(|e| e.generation == key.generation)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.heap.clear();
    }

    /// The earliest live deadline; pops stale heap entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, seq, key))) = self.heap.peek() {
            if self.is_live(seq, key) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes out the callback of one timer due at `now`, with what is needed
    /// to put it back.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, u64, OnEvent)> {
        while let Some(&Reverse((deadline, seq, key))) = self.heap.peek() {
            if deadline > now {
                return None;
            }
            self.heap.pop();
            if !self.is_live(seq, key) {
                continue;
            }
            let entry = &mut self.entries[key];
            if let Some(callback) = entry.callback.take() {
                return Some((TimerKey { key: key as u32, generation: entry.generation }, seq, callback));
            }
        }
        None
    }

    /// Puts a callback back after it ran: a timer re-armed meanwhile keeps its
    /// new deadline, a periodic one gets its next, a one-shot one goes.
    pub(crate) fn restore(&mut self, key: TimerKey, fired_seq: u64, callback: OnEvent) {
        let now = Instant::now();
        let Some(entry) = self.entry_mut(key) else { return };
        entry.callback = Some(callback);
        if entry.seq != fired_seq {
            return; // re-armed from a callback: its heap entry is in place
        }
        match entry.period {
            Some(period) => {
                // Late by more than a period: skip the missed ticks.
                let mut next = entry.deadline + period;
                if next <= now {
                    next = now + period;
                }
                entry.deadline = next;
                self.seq += 1;
                let seq = self.seq;
                if let Some(entry) = self.entry_mut(key) {
                    entry.seq = seq;
                }
                self.heap.push(Reverse((next, seq, key.key as usize)));
            }
            None => {
                self.entries.remove(key.key as usize);
            }
        }
    }

    fn is_live(&self, seq: u64, key: usize) -> bool {
        self.entries.get(key).is_some_and(|e| e.seq == seq)
    }

    /// Rebuilds the heap from the live timers when most entries are stale.
    fn compact(&mut self) {
        if self.heap.len() <= 2 * self.entries.len() + 64 {
            return;
        }
        let mut heap = std::mem::take(&mut self.heap).into_vec();
        heap.retain(|&Reverse((_, seq, key))| self.is_live(seq, key));
        self.heap = BinaryHeap::from(heap);
    }

    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

fn deadline_after(delay: Duration) -> Instant {
    let now = Instant::now();
    // A delay beyond the clock's range is "never" in practice: a century.
    now.checked_add(delay).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() -> OnEvent {
        Box::new(|_| {})
    }

    #[test]
    fn rearming_many_times_keeps_the_heap_small() {
        let mut timers = TimerHeap::default();
        let key = timers.add(Duration::from_secs(60), None, nothing());
        for _ in 0..10_000 {
            assert!(timers.rearm(key, Duration::from_secs(60)));
        }
        assert!(timers.heap_len() <= 2 + 64, "heap holds {} entries", timers.heap_len());
    }

    #[test]
    fn a_cancelled_timer_is_never_due_and_its_key_is_dead() {
        let mut timers = TimerHeap::default();
        let key = timers.add(Duration::ZERO, None, nothing());
        assert!(timers.cancel(key));
        assert!(!timers.cancel(key));
        assert!(timers.pop_due(Instant::now() + Duration::from_secs(1)).is_none());
        let other = timers.add(Duration::ZERO, None, nothing());
        assert!(!timers.contains(key) && timers.contains(other));
    }

    #[test]
    fn due_timers_come_in_deadline_order() {
        let mut timers = TimerHeap::default();
        let late = timers.add(Duration::from_millis(2), None, nothing());
        let early = timers.add(Duration::from_millis(1), None, nothing());
        let at = Instant::now() + Duration::from_secs(1);
        assert_eq!(timers.pop_due(at).map(|t| t.0), Some(early));
        assert_eq!(timers.pop_due(at).map(|t| t.0), Some(late));
    }
}
