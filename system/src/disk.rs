//! The simulated disk: per-node files with a synced and an unsynced part.
//!
//! madsim's own file system keeps every write across a crash, so paylab models durability
//! itself. The harness owns each node's [`Disk`] (it survives restarts); a power loss drops every
//! byte not yet synced and can, on request, leave a torn prefix of the unsynced bytes behind,
//! as a real disk that wrote some sectors of the last record would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default, Clone)]
struct File {
    /// Every byte written: the first `synced` survive a power loss, the rest are lost.
    bytes: Vec<u8>,
    /// How many of `bytes` are durable (an fsync moves the mark; nothing is copied).
    synced: usize,
    /// The harness's note, not the platform's: how much of the file some acknowledgement has
    /// promised is durable (the crash-time form of invariant 19 finds it all after a restart).
    acknowledged: usize,
    /// Likewise for acknowledgements sent before their fsync by a policy that is unsafe by
    /// design (the broker's async flush): their loss is expected, not a breach.
    acknowledged_unsafely: usize,
}

/// What a power loss did, for the run's report and coverage probes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PowerLossReport {
    /// Unsynced bytes dropped, over all files.
    pub lost_bytes: usize,
    /// Unsynced bytes kept as a torn tail (a partial write).
    pub torn_bytes: usize,
}

/// Counters of disk activity.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskStats {
    pub appends: u64,
    pub syncs: u64,
    pub power_losses: u64,
}

#[derive(Debug, Default)]
struct DiskState {
    files: BTreeMap<String, File>,
    stats: DiskStats,
    /// A slow disk (a fault): every fsync takes this long instead of the log's own latency.
    slow_fsync: Option<Duration>,
}

/// What [`Disk::append_with`] reserves before a write: more than most log records take.
const RECORD_ROOM: usize = 256;

/// A cloneable handle to one node's disk.
#[derive(Debug, Default, Clone)]
pub struct Disk {
    state: Arc<Mutex<DiskState>>,
}

impl Disk {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut DiskState) -> T) -> T {
        // No thread ever panics while holding this lock inside a simulation; a poisoned lock
        // still holds consistent bytes, so recover it rather than cascade the panic.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Appends bytes to the end of a file (creating it); they are not durable until `sync`.
    pub fn append(&self, file: &str, bytes: &[u8]) {
        self.with(|s| {
            s.stats.appends += 1;
            // Look up before inserting: appends are hot and the file almost always exists.
            match s.files.get_mut(file) {
                Some(f) => f.bytes.extend_from_slice(bytes),
                None => {
                    let f = s.files.entry(file.to_string()).or_default();
                    f.bytes.extend_from_slice(bytes);
                }
            }
        });
    }

    /// Appends what `write` puts at the end of the file (creating it), in place: no buffer of
    /// the caller's own. `write` must only append to the vector (the file's whole contents).
    pub fn append_with<T>(&self, file: &str, write: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        self.with(|s| {
            s.stats.appends += 1;
            let f = match s.files.get_mut(file) {
                Some(f) => f,
                None => s.files.entry(file.to_string()).or_default(),
            };
            // Room for a typical record, so that serializing into it rarely reallocates.
            f.bytes.reserve(RECORD_ROOM);
            write(&mut f.bytes)
        })
    }

    /// Makes everything appended to `file` so far durable, at once: an fsync issued and
    /// completed in one step. A log's fsync, which takes time, uses [`Disk::sync_to`].
    pub fn sync(&self, file: &str) {
        let written = self.lengths(file).1;
        self.sync_to(file, written);
    }

    /// Completes an fsync of `file` that was issued when the file was `len` bytes long: makes
    /// durable the first `len` bytes, and nothing appended after (a real fsync promises only
    /// the bytes written before it was issued). Bytes already durable stay so; a `len` past
    /// the end (the file was cut meanwhile) covers what is there.
    pub fn sync_to(&self, file: &str, len: usize) {
        self.with(|s| {
            s.stats.syncs += 1;
            if let Some(f) = s.files.get_mut(file) {
                f.synced = f.synced.max(len.min(f.bytes.len()));
            }
        });
    }

    /// Makes every fsync on this disk take `latency` (a slow-disk fault), or restores the
    /// normal latency with `None`.
    pub fn set_slow_fsync(&self, latency: Option<Duration>) {
        self.with(|s| s.slow_fsync = latency);
    }

    /// The fsync latency a slow-disk fault imposes, if any.
    pub fn slow_fsync(&self) -> Option<Duration> {
        self.with(|s| s.slow_fsync)
    }

    /// Notes that an acknowledgement promised the first `len` bytes of `file` are durable.
    pub fn acknowledge(&self, file: &str, len: usize) {
        self.with(|s| {
            // A promise of bytes is a promise about a file that holds them.
            if let Some(f) = s.files.get_mut(file) {
                f.acknowledged = f.acknowledged.max(len);
            }
        });
    }

    /// Notes that an acknowledgement sent before its fsync, by design, covered the first `len`
    /// bytes of `file`.
    pub fn acknowledge_unsafely(&self, file: &str, len: usize) {
        self.with(|s| {
            if let Some(f) = s.files.get_mut(file) {
                f.acknowledged_unsafely = f.acknowledged_unsafely.max(len);
            }
        });
    }

    /// How much of `file` acknowledgements have promised (safely, and unsafely by design),
    /// and forgets promises beyond `len` (what recovery kept), so that one loss is reported
    /// once.
    pub fn take_acknowledged_beyond(&self, file: &str, len: usize) -> (usize, usize) {
        self.with(|s| {
            s.files.get_mut(file).map_or((0, 0), |f| {
                let promised = (f.acknowledged, f.acknowledged_unsafely);
                f.acknowledged = f.acknowledged.min(len);
                f.acknowledged_unsafely = f.acknowledged_unsafely.min(len);
                promised
            })
        })
    }

    /// (bytes durable, bytes written) of `file`.
    pub fn lengths(&self, file: &str) -> (usize, usize) {
        self.with(|s| {
            s.files
                .get(file)
                .map_or((0, 0), |f| (f.synced, f.bytes.len()))
        })
    }

    /// Whether `file` has bytes that a power loss would drop.
    pub fn has_unsynced(&self, file: &str) -> bool {
        self.with(|s| s.files.get(file).is_some_and(|f| f.bytes.len() > f.synced))
    }

    /// The file's contents as a running process sees them (synced and unsynced).
    pub fn read(&self, file: &str) -> Vec<u8> {
        self.with(|s| {
            s.files
                .get(file)
                .map(|f| f.bytes.clone())
                .unwrap_or_default()
        })
    }

    /// The file's durable contents only: what a power loss right now would leave.
    pub fn read_synced(&self, file: &str) -> Vec<u8> {
        self.with(|s| {
            s.files
                .get(file)
                .map(|f| f.bytes[..f.synced].to_vec())
                .unwrap_or_default()
        })
    }

    /// Cuts a file to `len` bytes (used by recovery to drop a torn tail). Durable at once.
    pub fn truncate(&self, file: &str, len: usize) {
        self.with(|s| {
            if let Some(f) = s.files.get_mut(file) {
                f.bytes.truncate(len);
                f.synced = f.bytes.len();
            }
        });
    }

    /// Loses power: every unsynced byte is dropped, except that `torn_keep` (a fraction in
    /// 0..1, chosen by the harness from the seed) of the first file's unsynced bytes that has
    /// any may survive as a torn partial write.
    pub fn power_loss(&self, torn_keep: Option<f64>) -> PowerLossReport {
        self.with(|s| {
            s.stats.power_losses += 1;
            let mut report = PowerLossReport::default();
            let mut tear = torn_keep;
            for f in s.files.values_mut() {
                let pending = f.bytes.len() - f.synced;
                if pending == 0 {
                    continue;
                }
                let keep = match tear.take() {
                    // Strictly less than everything: a torn write never completes the tail.
                    Some(frac) => {
                        ((pending as f64 * frac.clamp(0.0, 1.0)) as usize).min(pending - 1)
                    }
                    None => 0,
                };
                f.synced += keep;
                f.bytes.truncate(f.synced);
                report.torn_bytes += keep;
                report.lost_bytes += pending - keep;
            }
            report
        })
    }

    /// Drops every file (the counters stay): for the harness once a run has read its last,
    /// when nothing will ever read or recover from this disk again.
    pub fn discard(&self) {
        self.with(|s| s.files.clear());
    }

    pub fn stats(&self) -> DiskStats {
        self.with(|s| s.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_drops_unsynced_and_keeps_synced() {
        let d = Disk::new();
        d.append("log", b"abc");
        d.sync("log");
        d.append("log", b"def");
        assert_eq!(d.read("log"), b"abcdef");
        let r = d.power_loss(None);
        assert_eq!(r.lost_bytes, 3);
        assert_eq!(d.read("log"), b"abc");
    }

    #[test]
    fn discard_drops_every_file_and_keeps_the_counters() {
        let d = Disk::new();
        d.append("log", b"abc");
        d.sync("log");
        d.append("other", b"de");
        d.discard();
        assert!(d.read("log").is_empty());
        assert!(d.read("other").is_empty());
        assert_eq!(d.stats().appends, 2);
    }

    #[test]
    fn torn_power_loss_keeps_a_strict_prefix_of_the_unsynced_tail() {
        let d = Disk::new();
        d.append("log", b"abc");
        d.sync("log");
        d.append("log", b"defgh");
        let r = d.power_loss(Some(0.99));
        assert_eq!(r.torn_bytes, 4);
        assert_eq!(d.read("log"), b"abcdefg");
    }

    #[test]
    fn an_fsync_covers_only_the_bytes_appended_before_it_was_issued() {
        let d = Disk::new();
        d.append("log", b"abc");
        let issued_at = d.lengths("log").1;
        // Appended while the fsync is in flight: not covered by it.
        d.append("log", b"def");
        d.sync_to("log", issued_at);
        assert_eq!(d.lengths("log"), (3, 6));
        assert!(d.has_unsynced("log"));
        assert_eq!(d.read_synced("log"), b"abc");
        d.power_loss(None);
        assert_eq!(d.read("log"), b"abc");
    }

    #[test]
    fn a_late_or_stale_fsync_never_shrinks_or_overreaches_the_durable_part() {
        let d = Disk::new();
        d.append("log", b"abcdef");
        d.sync_to("log", 4);
        // An fsync issued earlier, when the file was shorter, completes later: nothing lost.
        d.sync_to("log", 2);
        assert_eq!(d.lengths("log"), (4, 6));
        // One issued for more than the file holds (it was cut meanwhile) covers what is there.
        d.sync_to("log", 100);
        assert_eq!(d.lengths("log"), (6, 6));
        assert_eq!(d.stats().syncs, 3);
    }

    #[test]
    fn truncate_cuts_and_makes_durable() {
        let d = Disk::new();
        d.append("log", b"abcdef");
        d.truncate("log", 2);
        d.power_loss(None);
        assert_eq!(d.read("log"), b"ab");
    }
}
