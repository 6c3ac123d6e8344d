//! What the simulator tests of node shells share: running a test on fixed seeds.

/// The seeds every test here runs on: fixed, so a failure replays exactly, and several, because
/// the simulated network's latencies (and so every interleaving) come from the seed.
pub const SEEDS: [u64; 4] = [1, 7, 42, 1_337];

/// Runs `test` in a fresh simulation for each of [`SEEDS`], each on an OS thread of its own (a
/// second runtime on one thread would inherit its thread-locals), named after its seed so that
/// a failure says which seed broke.
pub fn on_fixed_seeds<F, Fut>(test: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    for seed in SEEDS {
        let test = test.clone();
        std::thread::Builder::new()
            .name(format!("seed-{seed}"))
            .spawn(move || {
                let runtime =
                    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
                runtime.block_on(test());
            })
            .expect("spawn a simulation thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    }
}
