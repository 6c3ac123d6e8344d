//! The simulated banks (the edge of the world): each bank keeps its own books (cards with
//! their opening balances, the platform's reserve account), takes debit and credit
//! instructions idempotently by `instr_id`, answers some PROCESSING and decides them later,
//! refuses some for good, notifies the gateway asynchronously (late, sometimes twice), answers
//! queries, and publishes a statement of every movement per bank date.

pub mod core;
pub mod node;
pub mod types;

pub use self::core::{BankCore, BankRecord, Card, InstrState, CARD_OPENING};
pub use node::BankNode;
pub use types::{
    BankBehaviour, BankCall, BankCommand, BankConfig, BankError, BankNotifyCall, BankReply,
    Direction, FailReason, InstrStatus, Instruction, InterbankCall, Statement, StatementLine,
    SIMULATION_BANK,
};
