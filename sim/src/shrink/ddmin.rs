//! Delta debugging (Zeller's ddmin) over a list, with the test asked a batch of candidates at a
//! time so that the caller can run them in parallel.
//!
//! The test receives candidate lists in order of preference and answers the index of the first
//! one that still fails (or `None`: none does, or the budget ran out). Given the same answers,
//! the search is the same whatever the batch is evaluated with, so the result does not depend
//! on the number of jobs.

/// Reduces `items` to a 1-minimal failing sublist: removing any one chunk the search tried no
/// longer fails. `items` itself is assumed to fail; the empty list is never tried (the caller
/// tries it first, it is one run).
pub fn ddmin<T: Clone>(items: &[T], test: &mut dyn FnMut(&[Vec<T>]) -> Option<usize>) -> Vec<T> {
    let mut current = items.to_vec();
    let mut n = 2;
    while current.len() >= 2 {
        let chunks = split(&current, n);
        let mut candidates: Vec<Vec<T>> = chunks.clone();
        if n > 2 {
            candidates.extend((0..chunks.len()).map(|i| complement(&chunks, i)));
        }
        match test(&candidates) {
            Some(i) if i < chunks.len() => {
                current = candidates.swap_remove(i);
                n = 2;
            }
            Some(i) => {
                current = candidates.swap_remove(i);
                n = (n - 1).max(2);
            }
            None if n >= current.len() => break,
            None => n = (n * 2).min(current.len()),
        }
    }
    current
}

/// `items` cut into `n` contiguous chunks of nearly equal size (none empty).
fn split<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.min(items.len()).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = start + (items.len() - start) / (n - i);
        out.push(items[start..end].to_vec());
        start = end;
    }
    out
}

/// Every chunk but chunk `skip`, concatenated in order.
fn complement<T: Clone>(chunks: &[Vec<T>], skip: usize) -> Vec<T> {
    chunks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != skip)
        .flat_map(|(_, c)| c.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test that fails when the candidate holds every one of `needed`, counting its calls.
    fn run(items: &[u32], needed: &[u32]) -> (Vec<u32>, usize) {
        let mut asked = 0;
        let mut test = |batch: &[Vec<u32>]| {
            asked += batch.len();
            batch
                .iter()
                .position(|c| needed.iter().all(|n| c.contains(n)))
        };
        (ddmin(items, &mut test), asked)
    }

    #[test]
    fn finds_the_one_culprit() {
        let items: Vec<u32> = (0..16).collect();
        let (found, asked) = run(&items, &[11]);
        assert_eq!(found, vec![11]);
        assert!(asked <= 2 * 16, "asked {asked}");
    }

    #[test]
    fn finds_a_pair_far_apart() {
        let items: Vec<u32> = (0..12).collect();
        assert_eq!(run(&items, &[1, 10]).0, vec![1, 10]);
    }

    #[test]
    fn keeps_everything_when_everything_is_needed() {
        let items = [3, 4, 5];
        assert_eq!(run(&items, &[3, 4, 5]).0, vec![3, 4, 5]);
    }

    #[test]
    fn a_search_cut_short_keeps_what_it_has() {
        let items: Vec<u32> = (0..8).collect();
        let mut never = |_: &[Vec<u32>]| None;
        assert_eq!(ddmin(&items, &mut never), items);
    }

    proptest::proptest! {
        /// Whatever the list and whichever items the failure needs, ddmin keeps exactly those
        /// (the test is monotone here, so the 1-minimal result is the needed set), in order.
        #[test]
        fn keeps_exactly_what_the_failure_needs(
            len in 1usize..40,
            picks in proptest::collection::vec(0usize..40, 1..4),
        ) {
            let items: Vec<u32> = (0..len as u32).collect();
            let mut needed: Vec<u32> = picks.iter().map(|p| (p % len) as u32).collect();
            needed.sort_unstable();
            needed.dedup();
            let (found, asked) = run(&items, &needed);
            proptest::prop_assert_eq!(found, needed);
            proptest::prop_assert!(asked <= 4 * len * len + 4);
        }
    }

    #[test]
    fn chunks_cover_the_list_in_order() {
        let items: Vec<u32> = (0..7).collect();
        let chunks = split(&items, 3);
        assert_eq!(chunks.concat(), items);
        assert!(chunks.iter().all(|c| !c.is_empty()));
        assert_eq!(complement(&chunks, 1).len(), 7 - chunks[1].len());
    }
}
