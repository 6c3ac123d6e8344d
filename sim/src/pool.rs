//! The worker pool of the commands that run many seeds in this process (`paylab compare`,
//! `paylab bugs --measure`, `paylab replay`): `jobs` OS threads take the work items in order,
//! each run on its own simulator runtime, and the results come back in the items' order,
//! whatever the order the runs finished in (so every report is the same for any `--jobs`).
//! `paylab campaign` runs each seed in a child process instead, for its resumable log and
//! its determinism check.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `run` on every item of `work` on `jobs` threads (at least one); `done` hears (runs
/// finished, runs in all) after each. The results are in `work`'s order.
pub fn run_all<T, R>(
    work: &[T],
    jobs: usize,
    run: impl Fn(&T) -> R + Sync,
    done: &(dyn Fn(usize, usize) + Sync),
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let (next, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let slots: Vec<Mutex<Option<R>>> = work.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = work.get(i) else { break };
                let result = run(item);
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                done(finished.fetch_add(1, Ordering::Relaxed) + 1, work.len());
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            let result = slot.into_inner().unwrap_or_else(|p| p.into_inner());
            result.expect("every item ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_items_order_for_any_job_count() {
        let work: Vec<u64> = (0..50).collect();
        for jobs in [1, 2, 7] {
            let heard = AtomicUsize::new(0);
            let out = run_all(&work, jobs, |&n| n * n, &|_, all| {
                assert_eq!(all, 50);
                heard.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(out, work.iter().map(|n| n * n).collect::<Vec<_>>());
            assert_eq!(heard.load(Ordering::Relaxed), 50);
        }
    }
}
