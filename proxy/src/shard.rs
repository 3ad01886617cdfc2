//! One copy per event loop of what every request writes (counters, idle connections), so
//! that loops on different cores never write the same cache line: a line written by two
//! cores moves between them on every write, and a request made some twenty such writes.

use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    /// Which shard this thread's event loop writes (0 outside the proxy's own threads).
    static EVENT_LOOP: Cell<usize> = const { Cell::new(0) };
}

/// Most shards kept of one value; loops beyond share them round the shards.
const MAX_SHARDS: usize = 16;

/// Marks this thread as event loop `index`: it then writes its own shards (loops beyond the
/// shard count share them round the shards; reduced here once rather than on every access).
pub(crate) fn set_event_loop(index: usize) {
    EVENT_LOOP.with(|slot| slot.set(index % shard_count()));
}

/// How many shards each value has: one per CPU (the default number of event loops).
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_SHARDS)
    })
}

/// Aligned to two cache lines: x86 prefetches lines in pairs, so one line apart is not enough.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A value kept once per event loop.
#[derive(Debug)]
pub(crate) struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| Padded::default()).collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// This event loop's copy.
    pub(crate) fn local(&self) -> &T {
        self.get(self.local_index())
    }

    /// Which copy is this event loop's, to find the same one again from another thread.
    /// Every value has [`shard_count`] copies, so the index fits them all.
    pub(crate) fn local_index(&self) -> usize {
        EVENT_LOOP.with(Cell::get)
    }

    /// The copy at `index` (from [`Sharded::local_index`]).
    pub(crate) fn get(&self, index: usize) -> &T {
        &self.shards[index].0
    }

    /// Every copy, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|shard| &shard.0)
    }

    /// The total of `read` over every copy.
    pub(crate) fn sum<N: std::iter::Sum>(&self, read: impl Fn(&T) -> N) -> N {
        self.shards.iter().map(|shard| read(&shard.0)).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn each_loop_writes_its_own_copy_and_the_sum_sees_all() {
        let counter = std::sync::Arc::new(Sharded::<AtomicU64>::default());
        let threads: Vec<_> = (0..4)
            .map(|index| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    set_event_loop(index);
                    for _ in 0..1000 {
                        counter.local().fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let total = counter.sum(|c| c.load(Ordering::Relaxed));
        assert_eq!(total, 4000);
    }
}
