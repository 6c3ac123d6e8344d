//! The `outbox` strategy's relay on a ledger shard: the shard hosts the
//! [`producer::outbox`](crate::producer::outbox) engine for the credit rows its debits wrote
//! (each in the same record as its debit voucher). Once the record is durable the row is sent to
//! the broker's credits topic; the resender sends every row still unsent, those found at start
//! included; an acknowledged row is marked sent.

use super::core::{LedgerCore, LedgerRecord};
use super::types::{CreditRow, CREDITS_TOPIC};
use crate::broker::{BrokerCall, BrokerCommand, BrokerReply};
use crate::ids::{EventId, Xid};
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::outbox::participant::OutboxRecord;
use crate::producer::outbox::{Origin, Outbox, OutboxOutput, RESEND_INTERVAL};
use crate::producer::Message;
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long one send waits for the broker.
const SEND_TIMEOUT: Duration = Duration::from_millis(300);

/// The relay of one ledger shard.
pub(super) struct Credits {
    broker: SocketAddr,
    outbox: Mutex<Outbox>,
    core: Arc<Mutex<LedgerCore>>,
    log: DurableLog<LedgerRecord>,
    transport: Transport,
    probes: crate::probes::Probes,
}

impl Credits {
    /// The relay of a shard recovered with `core`'s unsent rows; its resender starts now.
    pub(super) fn start(
        env: &NodeEnv,
        broker: SocketAddr,
        core: Arc<Mutex<LedgerCore>>,
        log: DurableLog<LedgerRecord>,
        transport: Transport,
    ) -> Arc<Credits> {
        let unsent: Vec<Message> = {
            let c = core.lock().unwrap_or_else(|p| p.into_inner());
            c.outbox().unsent_rows().map(CreditRow::message).collect()
        };
        let credits = Arc::new(Credits {
            broker,
            outbox: Mutex::new(Outbox::recovered(env.bugs, unsent)),
            core,
            log,
            transport,
            probes: env.probes.clone(),
        });
        madsim::task::spawn(credits.clone().resend_unsent());
        credits
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A record carrying `row` was appended (not durable yet).
    pub(super) fn appended(&self, row: &CreditRow) {
        let out = self.outbox().appended(row.message());
        debug_assert!(out.is_empty(), "an appended row is not sendable yet");
    }

    /// The record carrying `row` is durable: relay it.
    pub(super) fn durable(self: &Arc<Self>, row: &CreditRow) {
        let out = self.outbox().durable(&[row.message().id]);
        let credits = self.clone();
        madsim::task::spawn(async move { credits.perform(out).await });
    }

    async fn resend_unsent(self: Arc<Self>) {
        loop {
            madsim::time::sleep(RESEND_INTERVAL).await;
            let out = self.outbox().tick();
            self.perform(out).await;
        }
    }

    async fn perform(&self, out: Vec<OutboxOutput>) {
        for output in out {
            match output {
                OutboxOutput::Send { message, .. } => self.send(message).await,
                OutboxOutput::MarkSent { id, origin } => self.mark_sent(&id, origin),
            }
        }
    }

    /// Sends one row and reports the broker's answer to the engine.
    async fn send(&self, message: Message) {
        let id = message.id.clone();
        let command = BrokerCommand::Send {
            topic: CREDITS_TOPIC.to_string(),
            key: message.key,
            payload: message.payload,
            producer_msg_id: id.to_string(),
        };
        let call = BrokerCall(command);
        let answer = self.transport.call(self.broker, call, SEND_TIMEOUT).await;
        let out = if matches!(answer, Ok(Ok(BrokerReply::Sent { .. }))) {
            self.outbox().acked(&id)
        } else {
            self.outbox().failed(&id)
        };
        for output in out {
            if let OutboxOutput::MarkSent { id, origin } = output {
                self.mark_sent(&id, origin);
            }
        }
    }

    /// Writes the sent mark under the core's lock (not synced).
    fn mark_sent(&self, id: &EventId, origin: Origin) {
        if origin == Origin::ResendAfterRestart {
            self.probes
                .hit(crate::probes::names::CREDIT_RESENT_AFTER_RESTART);
        }
        let Some(xid) = id.to_string().strip_prefix("credit:").map(Xid::new) else {
            return;
        };
        let sent = OutboxRecord::RowsSent { xids: vec![xid] };
        let record = LedgerRecord::Participant(sent.into());
        let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        self.log.append(&record);
        let _ = core.apply(record);
    }
}
