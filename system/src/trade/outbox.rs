//! Mode 1, the local message table (本地消息表 / outbox): an event's row is written in the same
//! record as the trade change it announces (see [`super::core::TradeCore::apply`]). After the
//! record is durable a relay sends the event to the broker and, on its acknowledgement, marks
//! the row sent; a resender scans for rows left unsent (a failed relay, a crash between the
//! commit and the relay) and sends them again. The broker deduplicates by the event id, which
//! is the producer message id, so sending twice is harmless.

use super::core::{TradeCore, TradeRecord};
use super::events::{TradeEvent, TRADE_EVENTS_TOPIC};
use super::node::Shell;
use crate::broker::{BrokerCall, BrokerCommand, BrokerReply};
use crate::buggify::Point;
use crate::probes::names;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one send waits for the broker.
const SEND_TIMEOUT: Duration = Duration::from_millis(300);

/// How often the resender scans the table.
const RESEND_INTERVAL: Duration = Duration::from_millis(300);

/// The relay's bookkeeping (memory only: after a crash the table itself says what is unsent).
pub(super) struct Outbox {
    /// Rows a relay or the resender is sending right now.
    sending: Mutex<BTreeSet<String>>,
    /// Rows that were unsent when the node started: sending one of them means a crash came
    /// between its commit and its relay.
    recovered: BTreeSet<String>,
}

impl Outbox {
    pub(super) fn recovered(core: &TradeCore) -> Outbox {
        Outbox {
            sending: Mutex::default(),
            recovered: core.unsent().map(TradeEvent::id).collect(),
        }
    }

    fn sending(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.sending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The relay: once, right after the commit, in its own task.
    pub(super) fn relay(shell: Arc<Shell>, event: TradeEvent) {
        madsim::task::spawn(async move {
            let env = &shell.env;
            env.buggify
                .window(Point::CommitToMessage, &env.probes)
                .await;
            if send(&shell, &event).await {
                env.probes.hit(names::OUTBOX_RELAYED);
            }
        });
    }

    /// The resender: scans for unsent rows for as long as the node lives.
    pub(super) async fn resend_unsent(shell: Arc<Shell>) {
        loop {
            madsim::time::sleep(RESEND_INTERVAL).await;
            let unsent: Vec<TradeEvent> = shell.core().unsent().cloned().collect();
            // The rows were read from memory, where a change is applied before its record is
            // durable: wait for their records to be synced, or a crash could lose a change
            // whose event is already out (found by seed 124 once the transport drew from its
            // own stream).
            shell.log.sync().await;
            for event in unsent {
                if send(&shell, &event).await {
                    shell.env.probes.hit(names::OUTBOX_RESENT);
                    if shell.outbox.recovered.contains(&event.id()) {
                        shell.env.probes.hit(names::OUTBOX_RESENT_AFTER_RESTART);
                    }
                }
            }
        }
    }
}

/// Sends one row and marks it sent on the broker's acknowledgement. False if the row was
/// already being sent, or the broker did not acknowledge it.
async fn send(shell: &Shell, event: &TradeEvent) -> bool {
    let id = event.id();
    if !shell.outbox.sending().insert(id.clone()) {
        return false;
    }
    let Some(messages) = shell.config.messages else {
        return false;
    };
    let command = BrokerCommand::Send {
        topic: TRADE_EVENTS_TOPIC.to_string(),
        key: event.key(),
        payload: event.encode(),
        producer_msg_id: id.clone(),
    };
    let answer = shell
        .transport
        .call(messages.broker, BrokerCall(command), SEND_TIMEOUT)
        .await;
    let acked = matches!(answer, Ok(Ok(BrokerReply::Sent { .. })));
    if acked {
        // Not synced on its own: if the mark is lost in a crash, the row is sent again and the
        // broker recognises it.
        let mut core = shell.core();
        let _ = shell.write(
            &mut core,
            TradeRecord::OutboxSent {
                events: vec![id.clone()],
            },
        );
    } else if let Ok(Err(refusal)) = answer {
        tracing::warn!(event = %id, %refusal, "the broker refused an outbox row");
    }
    shell.outbox.sending().remove(&id);
    acked
}
