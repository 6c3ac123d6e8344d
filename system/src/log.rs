//! A durable record log on a node's [`Disk`]: framed, checksummed, replayable.
//!
//! Frame: `len: u32 LE | crc32(payload): u32 LE | payload (bincode)`. Replay stops at the first
//! frame that is short or fails its checksum (a torn tail after a power loss) and truncates the
//! file there, so the next append starts on a clean boundary.
//!
//! A node's log ([`DurableLog::open`]) folds every append (node, file, the record's checksum
//! and length) into the run's platform digest in its [`Probes`], so the trace hash covers what
//! the platform wrote, not only what its clients saw.
//!
//! Syncs follow a real disk's promise: an fsync makes durable the bytes appended before it was
//! issued, nothing appended while it is in flight ([`Disk::sync_to`]). Every sync that returns
//! checks, on the disk itself, that everything the log held when the call began is durable;
//! a breach is recorded in the run's probes as evidence for invariant 19 (durability).

use crate::bugs::{Bug, Bugs};
use crate::disk::Disk;
use crate::durability::SyncBreach;
use crate::node::{NodeEnv, NodeName};
use crate::probes::{origin_key, Probes};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const HEADER: usize = 8;

/// What replay found besides the records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub records: usize,
    /// Bytes dropped from the end because the last frame was torn.
    pub torn_bytes: usize,
}

/// A typed append-only log in one file of a node's disk.
#[derive(Debug, Clone)]
pub struct DurableLog<R> {
    disk: Disk,
    file: String,
    fsync_latency: Duration,
    /// Group commit: at most one fsync in flight; callers that arrive meanwhile wait for it.
    group: Arc<GroupCommit>,
    /// Where appends are folded into the platform digest and durability breaches recorded.
    /// `None` for a bare disk outside any node.
    witness: Option<Witness>,
    /// The run's planted bug (the log hosts `group-commit-early-ack`).
    bugs: Bugs,
    _records: PhantomData<fn() -> R>,
}

/// A node's log's tie to its run: the run's probes, the node, and the [`origin_key`] of
/// (node, file).
#[derive(Debug, Clone)]
struct Witness {
    probes: Probes,
    node: NodeName,
    origin: u64,
}

#[derive(Debug, Default)]
struct GroupCommit {
    in_flight: Mutex<bool>,
    done: Notify,
}

impl<R: Serialize + DeserializeOwned> DurableLog<R> {
    /// Opens a node's log named `file` on the node's disk; `fsync_latency` is the simulated
    /// cost of a sync. Every append is folded into the run's platform digest under the node's
    /// name and the file.
    pub fn open(env: &NodeEnv, file: impl Into<String>, fsync_latency: Duration) -> Self {
        let file = file.into();
        let origin = origin_key(&[&env.name.to_string(), &file]);
        let witness = Witness {
            probes: env.probes.clone(),
            node: env.name.clone(),
            origin,
        };
        DurableLog {
            witness: Some(witness),
            bugs: env.bugs,
            ..Self::on_disk(env.disk.clone(), file, fsync_latency)
        }
    }

    /// Opens the log named `file` on a bare disk, outside any node: its appends are in no
    /// run's platform digest. For tests of the log and the disk themselves.
    pub fn on_disk(disk: Disk, file: impl Into<String>, fsync_latency: Duration) -> Self {
        DurableLog {
            disk,
            file: file.into(),
            fsync_latency,
            group: Arc::default(),
            witness: None,
            bugs: Bugs::none(),
            _records: PhantomData,
        }
    }

    /// Reads every intact record and cuts off a torn tail.
    pub fn replay(&self) -> (Vec<R>, ReplayReport) {
        let bytes = self.disk.read(&self.file);
        let mut records = Vec::new();
        let mut pos = 0;
        while let Some((record, next)) = decode_frame::<R>(&bytes, pos) {
            records.push(record);
            pos = next;
        }
        let torn = bytes.len() - pos;
        if torn > 0 {
            self.disk.truncate(&self.file, pos);
        }
        self.check_recovered(pos);
        let report = ReplayReport {
            records: records.len(),
            torn_bytes: torn,
        };
        (records, report)
    }

    /// Reads the intact records of the durable (synced) part only, without changing the file:
    /// what the node would recover if it lost power now. Used by god's-eye snapshots of a node
    /// that is down.
    pub fn read_durable(&self) -> Vec<R> {
        let bytes = self.disk.read_synced(&self.file);
        let mut records = Vec::new();
        let mut pos = 0;
        while let Some((record, next)) = decode_frame::<R>(&bytes, pos) {
            records.push(record);
            pos = next;
        }
        records
    }

    /// Appends one record (not yet durable), serialized straight into the file's unsynced
    /// bytes behind a header that is filled in afterwards.
    pub fn append(&self, record: &R) {
        let (crc, len) = self.disk.append_with(&self.file, |bytes| {
            let start = bytes.len();
            bytes.resize(start + HEADER, 0);
            bincode::serialize_into(&mut *bytes, record).expect("log records always serialize");
            let payload = &bytes[start + HEADER..];
            let len = u32::try_from(payload.len()).expect("a log record is under 4 GiB");
            let crc = crc32fast::hash(payload);
            bytes[start..start + 4].copy_from_slice(&len.to_le_bytes());
            bytes[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
            (crc, len)
        });
        if let Some(w) = &self.witness {
            // The checksum already is a hash of the record's bytes: folding it costs nothing.
            w.probes
                .digest_record(w.origin, u64::from(crc), u64::from(len));
        }
    }

    /// Waits until everything appended so far is durable. Costs one simulated fsync when there
    /// is anything to sync. Concurrent callers share it (group commit): while one fsync is in
    /// flight, later callers wait for it; since it covers only what was appended before it was
    /// issued, a caller whose bytes it does not cover then waits for, or leads, the next one.
    pub async fn sync(&self) {
        let promised = self.written();
        while self.durable() < promised {
            // No await between the check and the registration: a simulation is one thread, so
            // the leader cannot finish in between and the wake-up cannot be missed.
            if self.group.lead() {
                let _leading = Leading(&self.group);
                self.fsync().await;
                break;
            }
            self.group.done.notified().await;
            if self.bugs.is(Bug::GroupCommitEarlyAck) {
                // The planted bug: the fsync it waited on ended, so it takes itself as covered.
                break;
            }
        }
        self.check_promise("sync", promised);
    }

    /// Where the log ends now: what an acknowledgement decided at this point depends on (its
    /// own record, or the earlier record a repeat is answered from, both appended before).
    pub fn mark(&self) -> usize {
        self.written()
    }

    /// ([`DurableLog::mark`]'s bytes durable so far, [`DurableLog::mark`]) in one read of the
    /// disk.
    pub fn synced_and_mark(&self) -> (usize, usize) {
        self.disk.lengths(&self.file)
    }

    /// Invariant 19, reply form, checked as a reply leaves the node: every byte the log held at
    /// the reply's `mark` is durable. A reply sent before its record's fsync is a breach on
    /// the spot, crash or not (recorded like a sync's, with the call `reply`).
    pub fn witness_reply(&self, mark: usize) {
        self.check_promise("reply", mark);
    }

    /// Batch consumption's verdicts as they leave the node: each `Ok` witnessed at its
    /// delivery's `mark` (its record, or the earlier one a duplicate is answered from, must be
    /// durable by then), in order.
    pub fn witness_verdicts(
        &self,
        verdicts: Vec<(Result<(), String>, usize)>,
    ) -> Vec<Result<(), String>> {
        let witnessed = |(result, mark): (Result<(), String>, usize)| {
            if result.is_ok() {
                self.witness_reply(mark);
            }
            result
        };
        verdicts.into_iter().map(witnessed).collect()
    }

    /// Notes a reply sent, by the node's chosen policy, before the bytes it depends on (up to
    /// `mark`) are durable (the broker's async flush, unsafe by design): not a breach, but a
    /// crash that then loses them is reported as the expected loss it is.
    pub fn note_unsafe_reply(&self, mark: usize) {
        self.disk.acknowledge_unsafely(&self.file, mark);
    }

    /// Makes everything appended so far durable with an fsync of the caller's own: it always
    /// costs one simulated fsync (a slow disk's latency when that fault is on), never waits for
    /// or shares another caller's. The broker's sync-each-write flush policy uses it to show
    /// what group commit saves; callers that want one fsync at a time serialize around it.
    pub async fn sync_unshared(&self) {
        let promised = self.written();
        self.fsync().await;
        self.check_promise("sync_unshared", promised);
    }

    /// One simulated fsync: issued now, so it covers the bytes appended so far; complete after
    /// the latency (a slow disk's when that fault is on).
    async fn fsync(&self) {
        if let Some(w) = &self.witness {
            w.probes.fsync();
        }
        let issued_at = self.written();
        let latency = self.disk.slow_fsync().unwrap_or(self.fsync_latency);
        if !latency.is_zero() {
            madsim::time::sleep(latency).await;
        }
        self.disk.sync_to(&self.file, issued_at);
    }

    /// Invariant 19, checked as a sync returns: every byte the log held when the call began
    /// (`promised`, capped at what the file holds now: recovery may have cut a torn tail) is
    /// durable on the disk. A breach goes to the run's probes with its evidence.
    fn check_promise(&self, call: &'static str, promised: usize) {
        let (durable, written) = self.disk.lengths(&self.file);
        let promised = promised.min(written);
        self.disk.acknowledge(&self.file, promised);
        if durable < promised {
            self.breach(call, promised, durable);
        }
    }

    /// Invariant 19, crash-time form, checked as the log is replayed after a restart: every
    /// byte an acknowledgement promised before the crash was recovered (`recovered` bytes).
    fn check_recovered(&self, recovered: usize) {
        let (promised, unsafely) = self.disk.take_acknowledged_beyond(&self.file, recovered);
        if promised > recovered {
            self.breach("recovery", promised, recovered);
        } else if unsafely > recovered {
            self.record("recovery", unsafely, recovered, true);
        }
    }

    fn breach(&self, call: &'static str, promised: usize, durable: usize) {
        self.record(call, promised, durable, false);
    }

    fn record(&self, call: &'static str, promised: usize, durable: usize, by_design: bool) {
        if let Some(w) = &self.witness {
            w.probes.durability().record(SyncBreach {
                node: w.node.to_string(),
                file: self.file.clone(),
                call,
                promised_len: promised as u64,
                durable_len: durable as u64,
                at_ms: madsim::time::TimeHandle::current().elapsed().as_millis() as u64,
                by_design,
            });
        }
    }

    /// Bytes durable in the log's file.
    fn durable(&self) -> usize {
        self.disk.lengths(&self.file).0
    }

    /// Bytes written to the log's file, durable or not.
    fn written(&self) -> usize {
        self.disk.lengths(&self.file).1
    }
}

impl GroupCommit {
    /// Becomes the fsync leader unless one is in flight.
    fn lead(&self) -> bool {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        !std::mem::replace(&mut *in_flight, true)
    }
}

/// Ends a leader's fsync, also when its task is dropped mid-way, and wakes the followers.
struct Leading<'a>(&'a GroupCommit);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        *self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.0.done.notify_waiters();
    }
}

fn decode_frame<R: DeserializeOwned>(bytes: &[u8], pos: usize) -> Option<(R, usize)> {
    let header = bytes.get(pos..pos + HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let payload = bytes.get(pos + HEADER..pos + HEADER + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = bincode::deserialize(payload).ok()?;
    Some((record, pos + HEADER + len))
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
