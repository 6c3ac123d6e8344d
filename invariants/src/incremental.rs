//! The periodic check, incrementally: each snapshot is judged by what changed since the
//! previous one ([`Delta`]), so that a run's checking costs time linear in its length.
//!
//! The batch checkers ([`crate::check_always`]) stay the oracle: for any sequence of
//! observations, the violations this checker reports (first sighting of each, by invariant
//! and message) equal those of the batch checkers run on each whole observation.

use crate::delta::Delta;
use crate::world::World;
use crate::Violation;

/// The always-invariants, checked one delta at a time.
#[derive(Debug, Default)]
pub struct IncrementalChecker {
    world: World,
}

impl IncrementalChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one snapshot's changes and returns what they broke.
    pub fn step(&mut self, delta: &Delta) -> Vec<Violation> {
        self.world.apply(delta);
        crate::check_always(&self.world.observation())
    }

    /// The world as of the last delta.
    pub fn world(&self) -> &World {
        &self.world
    }
}
