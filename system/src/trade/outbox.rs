//! Mode 1's runtime: the trade node hosting the [`producer::outbox`](crate::producer::outbox)
//! engine. An event's row is written in the same record as the trade change it announces (see
//! [`super::core::TradeCore::apply`]); this file only performs what the engine decides: it
//! sends rows to the broker, writes the sent marks and ticks the resender.

use super::core::TradeRecord;
use super::events::{TradeEvent, TRADE_EVENTS_TOPIC};
use super::node::Shell;
use crate::broker::{BrokerCall, BrokerCommand, BrokerReply};
use crate::buggify::Point;
use crate::ids::EventId;
use crate::probes::names;
use crate::producer::outbox::{Origin, Outbox, OutboxOutput, RESEND_INTERVAL};
use crate::producer::Message;
use std::sync::Arc;
use std::time::Duration;

/// How long one send waits for the broker.
const SEND_TIMEOUT: Duration = Duration::from_millis(300);

/// The engine of a node whose durable table holds these unsent rows.
pub(super) fn recovered(shell_bugs: crate::bugs::Bugs, unsent: &[TradeEvent]) -> Outbox {
    Outbox::recovered(shell_bugs, unsent.iter().map(TradeEvent::message))
}

/// A record carrying `event`'s row was appended (not yet durable).
pub(super) fn appended(shell: &Shell, event: &TradeEvent) {
    let out = shell.outbox().appended(event.message());
    debug_assert!(out.is_empty(), "an appended row is not sendable yet");
}

/// The record carrying `event`'s row is durable: perform the relay the engine asks for.
pub(super) fn durable(shell: &Arc<Shell>, event: &TradeEvent) {
    let out = shell.outbox().durable(&[event.id()]);
    for output in out {
        match output {
            OutboxOutput::Send { message, origin } => relay(shell.clone(), message, origin),
            OutboxOutput::MarkSent { id, origin } => mark_sent(shell, id, origin),
        }
    }
}

/// The relay: once, right after the commit, in its own task.
fn relay(shell: Arc<Shell>, message: Message, origin: Origin) {
    madsim::task::spawn(async move {
        let env = &shell.env;
        env.buggify
            .window(Point::CommitToMessage, &env.probes)
            .await;
        send(&shell, message, origin).await;
    });
}

/// The resender: ticks the engine for as long as the node lives and sends, one after the
/// other, the rows it names.
pub(super) async fn resend_unsent(shell: Arc<Shell>) {
    loop {
        madsim::time::sleep(RESEND_INTERVAL).await;
        let out = shell.outbox().tick();
        for output in out {
            match output {
                OutboxOutput::Send { message, origin } => send(&shell, message, origin).await,
                OutboxOutput::MarkSent { id, origin } => mark_sent(&shell, id, origin),
            }
        }
    }
}

/// Sends one row and reports the broker's answer to the engine.
async fn send(shell: &Shell, message: Message, origin: Origin) {
    let Some(messages) = shell.config.messages else {
        return;
    };
    let id = message.id.clone();
    let command = BrokerCommand::Send {
        topic: TRADE_EVENTS_TOPIC.to_string(),
        key: message.key,
        payload: message.payload,
        producer_msg_id: id.to_string(),
    };
    let answer = shell
        .transport
        .call(messages.broker, BrokerCall(command), SEND_TIMEOUT)
        .await;
    let out = if matches!(answer, Ok(Ok(BrokerReply::Sent { .. }))) {
        shell.outbox().acked(&id)
    } else {
        if let Ok(Err(refusal)) = answer {
            tracing::warn!(event = %id, %refusal, ?origin, "the broker refused an outbox row");
        }
        shell.outbox().failed(&id)
    };
    for output in out {
        match output {
            OutboxOutput::MarkSent { id, origin } => mark_sent(shell, id, origin),
            OutboxOutput::Send { .. } => unreachable!("an answer never asks for a send"),
        }
    }
}

/// Writes the sent mark (not synced on its own: if the mark is lost in a crash, the row is
/// sent again and the broker recognises it).
fn mark_sent(shell: &Shell, id: EventId, origin: Origin) {
    {
        let mut core = shell.core();
        let _ = shell.write(&mut core, TradeRecord::OutboxSent { events: vec![id] });
    }
    let probes = &shell.env.probes;
    match origin {
        Origin::Relay => probes.hit(names::OUTBOX_RELAYED),
        Origin::Resend => probes.hit(names::OUTBOX_RESENT),
        Origin::ResendAfterRestart => {
            probes.hit(names::OUTBOX_RESENT);
            probes.hit(names::OUTBOX_RESENT_AFTER_RESTART);
        }
    }
}
