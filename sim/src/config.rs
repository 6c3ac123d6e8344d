//! What one run is: the user's choices (topology, workload size, planted bug), validated.

use crate::plan::FaultKind;
use paylab_system::broker::FlushPolicy;
use paylab_system::bugs::Bug;
use paylab_system::node::NodeName;
use paylab_system::strategy::StrategyKind;
use paylab_system::trade::MessageMode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Limits on every knob, so a typo cannot ask for a run that never ends.
pub const SHARDS_MAX: u32 = 64;
pub const CLIENTS_MAX: u32 = 256;
pub const OPS_MAX: u32 = 100_000;
/// The most hostile clients a run may have (`--hostile`).
pub const HOSTILE_MAX: u32 = 8;
/// The most banks a run may clear through.
pub const BANKS_MAX: u32 = 3;
pub const TRADE_SHARDS_MAX: u32 = 16;
pub const PAYMENT_NODES_MAX: u32 = 16;
/// Open-loop limits. A user costs its client a few hundred bytes and the platform an account
/// row, a journal and the vouchers of its payments: two million is what this testbed's memory
/// budget (8 GiB for the `peak-2015` scenario) allows.
pub const RATE_MAX: u32 = 200_000;
pub const DURATION_MAX_S: u64 = 3_600;
pub const USERS_MAX: u32 = 2_000_000;
pub const MERCHANTS_MAX: u32 = 100_000;
/// At most this many arrivals (`--rate` × `--duration`) in one run.
pub const ARRIVALS_MAX: u64 = 10_000_000;
/// Closed-loop business steps in one run (`--clients` × `--ops`): a run keeps about 9 KiB per
/// operation, so this bounds a run to about 9 GiB and a few minutes.
pub const STEPS_MAX: u64 = 1_000_000;
/// Bounds of the timing knobs.
pub const CLOSE_AFTER_MS_MAX: u64 = 3_600_000;
pub const FSYNC_LATENCY_MS_MAX: u64 = 1_000;
pub const SNAPSHOT_INTERVAL_MS_MAX: u64 = 60_000;
/// What `--rate` alone implies.
pub const DEFAULT_DURATION_MS: u64 = 10_000;
pub const DEFAULT_USERS: u32 = 10_000;
/// The largest `--consume-batch`: a trade-event consumer's pull (16 deliveries).
pub const CONSUME_BATCH_MAX: u32 = 16;
/// The largest `--event-consumers`: one member per queue of the trade-events topic.
pub const EVENT_CONSUMERS_MAX: u32 = paylab_system::trade::TRADE_EVENTS_QUEUES;
/// The largest `--serve-loops`.
pub const SERVE_LOOPS_MAX: u32 = 256;
/// The `peak-2015` scenario's `--serve-loops`: up to 64,000 requests per simulated second a
/// node (the broker takes every event of the peak).
pub const PEAK_SERVE_LOOPS: u32 = 64;
pub const DEFAULT_MERCHANTS: u32 = 100;

/// The configuration of one run, and the `paylab run` flags that set it: every default is
/// written once, here. Everything else (faults, workload choices) comes from the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct RunConfig {
    /// The seed: every choice of the run derives from it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of ledger shards (one node each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=i64::from(SHARDS_MAX)))]
    pub shards: u32,
    /// Number of concurrent client nodes.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=i64::from(CLIENTS_MAX)))]
    pub clients: u32,
    /// Business steps per client (trade flows and transfers), after opening and funding its
    /// accounts.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=i64::from(OPS_MAX)))]
    pub ops: u32,
    /// A named scenario that sets the topology and the load it implies. `peak-2015`: Alipay's
    /// 11.11 2015 peak, 85,900 payments per simulated second for 60 simulated seconds, a
    /// million users, 10,000 merchants, 64 ledger shards, 16 trade shards, 16 payment nodes
    /// and 64 client nodes, without the clearing layer, under the swarm fault plan;
    /// `--duration` scales it down.
    #[serde(default)]
    #[arg(long, conflicts_with_all = ["shards", "clients", "ops", "trade_shards", "payment_nodes", "rate", "users", "merchants", "banks"])]
    pub scenario: Option<Scenario>,
    /// Open-loop load: payments per simulated second, Poisson arrivals spread over the client
    /// nodes, each arrival one business flow in its own task (instead of `--ops` closed-loop
    /// steps per client).
    #[serde(default)]
    #[arg(long, conflicts_with = "ops", allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=i64::from(RATE_MAX)))]
    pub rate: Option<u32>,
    /// With `--rate`: simulated seconds of arrivals (decimals allowed; default 10, at most
    /// 3600).
    #[serde(default)]
    #[arg(long = "duration", value_name = "SECONDS", allow_hyphen_values = true, value_parser = parse_duration_ms)]
    pub duration_ms: Option<u64>,
    /// With `--rate`: users (buyers), each account opened and funded by its first payment
    /// (default 10,000, at most 2,000,000).
    #[serde(default)]
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=i64::from(USERS_MAX)))]
    pub users: Option<u32>,
    /// With `--rate`: merchants, opened at the start (default 100, at most 100,000).
    #[serde(default)]
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=i64::from(MERCHANTS_MAX)))]
    pub merchants: Option<u32>,
    /// Number of trade shards (one node each).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=i64::from(TRADE_SHARDS_MAX)))]
    pub trade_shards: u32,
    /// Number of payment nodes (business-activity managers).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=i64::from(PAYMENT_NODES_MAX)))]
    pub payment_nodes: u32,
    /// The consistency strategy for cross-shard money movements.
    #[arg(long, default_value_t = StrategyKind::Tcc)]
    pub strategy: StrategyKind,
    /// A trade unpaid this long after creation is closed by its trade node.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(1..=CLOSE_AFTER_MS_MAX))]
    pub close_after_ms: u64,
    /// How trade events reach the broker; `None` runs without the message layer (no broker,
    /// replicas or notifications). On the command line: `--messages`, resolved by
    /// [`RunConfig::resolve`].
    #[serde(default = "default_messages")]
    #[arg(skip = default_messages())]
    pub messages: Option<MessageMode>,
    /// `--messages`: how trade events reach the broker: outbox (mode 1), txmsg (mode 2, half
    /// messages) or off (no message layer). Default: outbox, or the mode a planted message bug
    /// lives in. Folded into `messages` by [`RunConfig::resolve`].
    #[serde(skip)]
    #[arg(
        long = "messages",
        value_name = "MODE",
        help = "How trade events reach the broker: outbox (mode 1), txmsg (mode 2, half messages) or off (no message layer). Default: outbox, or the mode a planted message bug lives in"
    )]
    pub messages_flag: Option<MessagesFlag>,
    /// When the broker fsyncs relative to acknowledging: sync (one fsync per write), group
    /// (group commit, the default) or async / async:<ms> (RocketMQ's ASYNC_FLUSH every 500 ms:
    /// acknowledged writes can be lost in a crash — unsafe by design).
    #[serde(default)]
    #[arg(long, default_value = "group")]
    pub broker_flush: FlushPolicy,
    /// Banks clearing through the platform's gateway: every deposit pulls from the user's
    /// card and every withdrawal pays out to it through a channel order, and reconciliation
    /// matches every bank date's statement. 0 runs without the clearing layer (deposits and
    /// withdrawals then post against the world account).
    /// (A saved configuration from before clearing has no such field: it ran without banks.)
    #[serde(default)]
    #[arg(long, default_value_t = DEFAULT_BANKS, value_parser = clap::value_parser!(u32).range(0..=i64::from(BANKS_MAX)))]
    pub banks: u32,
    /// Plant a bug from the catalogue (see `paylab bugs`).
    #[arg(long)]
    pub bug: Option<Bug>,
    /// Hostile clients, besides `--clients`: each tries what it may not do (others' money,
    /// forged internal steps, reused keys, forged credentials). Default: the swarm draws 0, 1
    /// or 2 from the seed. Closed loop only.
    #[serde(default)]
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(0..=i64::from(HOSTILE_MAX)))]
    pub hostile: Option<u32>,
    /// The fault kinds the plan may use: `None` lets swarm testing choose; `Some(list)` is
    /// exactly those (`--faults`), and an empty list is a run without faults (`--no-faults`).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "no_faults",
        help = "Only these fault kinds, comma-separated (crash, pause, partition, one-way, loss, latency, duplicate, delay, clock-jump, slow-disk, buggify)"
    )]
    pub faults: Option<Vec<FaultKind>>,
    /// `--no-faults`, folded into an empty `faults` list by [`RunConfig::resolve`].
    #[serde(skip)]
    #[arg(long, help = "Run without any fault")]
    pub no_faults: bool,
    /// Simulated cost of one fsync on every node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=FSYNC_LATENCY_MS_MAX))]
    pub fsync_latency_ms: u64,
    /// God's-eye snapshots are taken and checked this often during the faulted phase.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=SNAPSHOT_INTERVAL_MS_MAX))]
    pub snapshot_interval_ms: u64,
    /// Batch consumption by the trade-event consumers (the replicas and the notifier): up to
    /// this many deliveries of one pull processed and made durable by one fsync (RocketMQ's
    /// `consumeMessageBatchMaxSize`). Default 1 (one at a time), `peak-2015` 16; at most 16.
    #[serde(default)]
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=i64::from(CONSUME_BATCH_MAX)))]
    pub consume_batch: Option<u32>,
    /// How many requests of one kind each node takes off the network at once. madsim holds
    /// every receive for at least 1 simulated ms, so one receiving loop serves at most 1,000
    /// requests per simulated second; each loop adds as many. Default 1, `peak-2015` 64; at
    /// most 256.
    #[serde(default)]
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=i64::from(SERVE_LOOPS_MAX)))]
    pub serve_loops: Option<u32>,
    /// Members of each trade-event consumer group (the replicas', the notifier's) run on its
    /// node, each pulling its share of the four queues concurrently with the others, as
    /// RocketMQ keeps a pull in flight per queue. Default 1 (one member working every queue in
    /// turn), `peak-2015` 4; at most 4.
    #[serde(default)]
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=i64::from(EVENT_CONSUMERS_MAX)))]
    pub event_consumers: Option<u32>,
}

/// A named scenario (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Scenario {
    /// Alipay's 11.11 2015 peak: 85,900 payments per second for one minute.
    #[value(name = "peak-2015")]
    #[serde(rename = "peak-2015")]
    Peak2015,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Peak2015 => "peak-2015",
        }
    }

    /// Sets the flags the scenario implies; a `--duration` already given is kept.
    fn apply(self, c: &mut RunConfig) {
        match self {
            Scenario::Peak2015 => {
                c.shards = SHARDS_MAX;
                c.trade_shards = TRADE_SHARDS_MAX;
                c.payment_nodes = PAYMENT_NODES_MAX;
                c.clients = 64;
                c.rate = Some(85_900);
                c.duration_ms.get_or_insert(60_000);
                // The event consumers keep up with the peak only by batches (one fsync each).
                c.consume_batch.get_or_insert(CONSUME_BATCH_MAX);
                // A node serving the peak takes far more than 1,000 requests a second.
                c.serve_loops.get_or_insert(PEAK_SERVE_LOOPS);
                c.event_consumers.get_or_insert(EVENT_CONSUMERS_MAX);
                c.users = Some(1_000_000);
                c.merchants = Some(10_000);
                // Its users are funded at their first payment: through the one clearing
                // gateway that would be a million card deposits in the first seconds, a load
                // the 2015 peak (payments from balances) did not put on the banks.
                c.banks = 0;
            }
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The open-loop load of a run (`--rate`), every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenLoop {
    /// Payments (arrivals) per simulated second, over all client nodes.
    pub rate: u32,
    pub duration_ms: u64,
    pub users: u32,
    pub merchants: u32,
}

impl OpenLoop {
    /// The expected number of arrivals (business flows of every kind, not only payments).
    pub fn arrivals(&self) -> u64 {
        crate::openloop::expected_arrivals(self)
    }
}

/// `--duration SECONDS`: a positive number of simulated seconds, at most [`DURATION_MAX_S`],
/// kept in milliseconds.
fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| "not a number of simulated seconds".to_string())?;
    if !secs.is_finite() || secs < 0.001 {
        return Err("the duration must be at least 0.001 simulated seconds".to_string());
    }
    if secs > DURATION_MAX_S as f64 {
        return Err(format!(
            "the duration must be at most {DURATION_MAX_S} simulated seconds"
        ));
    }
    Ok((secs * 1_000.0).round() as u64)
}

/// Milliseconds as the seconds `--duration` reads back.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        (ms / 1_000).to_string()
    } else {
        format!("{}.{:03}", ms / 1_000, ms % 1_000)
    }
}

/// `--messages`: a mode, or no message layer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MessagesFlag {
    Outbox,
    Txmsg,
    Off,
}

/// The flags of a run alone, for parsing a configuration outside the binary.
#[derive(clap::Parser)]
#[command(name = "paylab run", no_binary_name = true)]
struct RunFlags {
    #[command(flatten)]
    config: RunConfig,
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--shards must be between 1 and {SHARDS_MAX}, got {0}")]
    Shards(u32),
    #[error("--clients must be between 1 and {CLIENTS_MAX}, got {0}")]
    Clients(u32),
    #[error("--ops must be between 1 and {OPS_MAX}, got {0}")]
    Ops(u32),
    #[error("--banks must be between 0 and {BANKS_MAX}, got {0}")]
    Banks(u32),
    #[error("--hostile must be between 0 and {HOSTILE_MAX}, got {0}")]
    Hostile(u32),
    #[error("--trade-shards must be between 1 and {TRADE_SHARDS_MAX}, got {0}")]
    TradeShards(u32),
    #[error("--payment-nodes must be between 1 and {PAYMENT_NODES_MAX}, got {0}")]
    PaymentNodes(u32),
    #[error("--clients {clients} x --ops {ops} is {steps} business steps; at most {STEPS_MAX} in one run")]
    TooManySteps { clients: u32, ops: u32, steps: u64 },
    #[error("--{flag} must be between {min} and {max}, got {got}")]
    OutOfRange {
        flag: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
    #[error("bug {bug} lives in message mode {needs}; run it with --messages {needs}")]
    BugNeedsMode { bug: Bug, needs: MessageMode },
    #[error("bug {0} lives in the message layer; run it with messages on")]
    BugNeedsMessages(Bug),
    #[error("--strategy {0} moves its credits through the broker; run it with --messages outbox or txmsg")]
    StrategyNeedsMessages(StrategyKind),
    #[error("bug {bug} lives in the {needs} strategy; run it with --strategy {needs}")]
    BugNeedsStrategy { bug: Bug, needs: StrategyKind },
    #[error("bug {0} lives in the clearing layer; run it with --banks 2")]
    BugNeedsBanks(Bug),
    #[error("{0} only applies to an open-loop run; give --rate too")]
    NeedsRate(&'static str),
    #[error("--rate {rate} for {seconds} simulated seconds asks for {arrivals} business flows; at most {ARRIVALS_MAX}")]
    TooManyArrivals {
        rate: u32,
        seconds: String,
        arrivals: u64,
    },
    #[error("--{flag} must be at least --clients ({clients}): every client node serves its own share; got {got}")]
    FewerThanClients {
        flag: &'static str,
        clients: u32,
        got: u32,
    },
}

/// The banks of a run unless told otherwise.
pub const DEFAULT_BANKS: u32 = 2;

fn default_messages() -> Option<MessageMode> {
    Some(MessageMode::Outbox)
}

/// The message mode a planted bug lives in, if it needs one.
pub fn mode_of_bug(bug: Bug) -> Option<MessageMode> {
    match bug {
        Bug::OutboxNoResender => Some(MessageMode::Outbox),
        Bug::CheckbackFromMemory | Bug::CheckbackDefaultsCommit => Some(MessageMode::Txmsg),
        _ => None,
    }
}

/// The strategy a planted bug lives in, if it lives in one.
pub fn strategy_of_bug(bug: Bug) -> Option<StrategyKind> {
    match bug {
        Bug::TwoPcLockIgnoresCredits => Some(StrategyKind::TwoPc),
        _ => None,
    }
}

/// Whether a planted bug lives in the clearing layer (and so needs banks).
pub fn bug_needs_banks(bug: Bug) -> bool {
    matches!(
        bug,
        Bug::WithdrawalReversedOnTimeout
            | Bug::DepositCreditedOnReplyAndNotify
            | Bug::UnknownTreatedAsFail
            | Bug::ReconRepairNotIdempotent
            | Bug::ChannelOrderNotDurableBeforeSend
    )
}

/// Whether a planted bug lives in the message layer (and so needs it on).
pub fn bug_needs_messages(bug: Bug) -> bool {
    mode_of_bug(bug).is_some()
        || matches!(
            bug,
            Bug::ConsumerNoDedup
                | Bug::OffsetBeforeProcessing
                | Bug::ReplicaNoVersion
                | Bug::NotifierTimeoutAsAck
                | Bug::BrokerAckBeforeFsync
                | Bug::ReplicaAckBeforeFsync
        )
}

impl RunConfig {
    /// The default run for a seed: the flags' defaults.
    pub fn new(seed: u64) -> Self {
        RunConfig {
            seed,
            ..RunConfig::from_args::<&str>(&[]).expect("the defaults parse")
        }
    }

    /// Parses `paylab run` flags (without the `run`) into a resolved configuration. Not
    /// validated: see [`RunConfig::validate`].
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, clap::Error> {
        use clap::Parser;
        let flags = RunFlags::try_parse_from(args.iter().map(|a| a.as_ref()))?;
        Ok(flags.config.resolve())
    }

    /// Folds the flags that only exist on the command line into the configuration:
    /// `--messages` (absent: outbox, or the mode the planted bug lives in) and `--no-faults`.
    pub fn resolve(mut self) -> Self {
        if let Some(flag) = self.messages_flag.take() {
            self.messages = match flag {
                MessagesFlag::Outbox => Some(MessageMode::Outbox),
                MessagesFlag::Txmsg => Some(MessageMode::Txmsg),
                MessagesFlag::Off => None,
            };
        } else if let Some(mode) = self.bug.and_then(mode_of_bug) {
            self.messages = Some(mode);
        }
        if std::mem::take(&mut self.no_faults) {
            self.faults = Some(Vec::new());
        }
        if let Some(scenario) = self.scenario {
            scenario.apply(&mut self);
        }
        if self.rate.is_some() {
            self.duration_ms.get_or_insert(DEFAULT_DURATION_MS);
            self.users.get_or_insert(DEFAULT_USERS);
            self.merchants.get_or_insert(DEFAULT_MERCHANTS);
        }
        self
    }

    /// Receiving loops per served request type on every node (`--serve-loops`, default 1).
    pub fn serve_loops(&self) -> u32 {
        self.serve_loops.unwrap_or(1)
    }

    /// The open-loop load, if the run has a `--rate` (defaults filled in).
    pub fn open_loop(&self) -> Option<OpenLoop> {
        self.rate.map(|rate| OpenLoop {
            rate,
            duration_ms: self.duration_ms.unwrap_or(DEFAULT_DURATION_MS),
            users: self.users.unwrap_or(DEFAULT_USERS),
            merchants: self.merchants.unwrap_or(DEFAULT_MERCHANTS),
        })
    }

    /// The hostile clients of this run: `--hostile`, or the swarm's draw from the seed (0 a
    /// fifth of the time, 1 half of the time, else 2); none in the open loop.
    pub fn hostile_clients(&self) -> u32 {
        if self.rate.is_some() {
            return 0;
        }
        self.hostile.unwrap_or_else(|| {
            use rand::{Rng, SeedableRng};
            const HOSTILE_STREAM: u64 = 0x484f_5354_494c_4521; // "HOSTILE!"
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ HOSTILE_STREAM);
            match rng.gen_range(0..10) {
                0..=1 => 0,
                2..=6 => 1,
                _ => 2,
            }
        })
    }

    /// Who owns which account: one client per slot range in the closed loop, users and
    /// merchants shared out among the client nodes in the open loop.
    pub fn directory(&self) -> paylab_system::auth::Directory {
        use paylab_system::auth::Directory;
        match self.open_loop() {
            Some(open) => {
                Directory::open_loop(self.shards, open.users, open.merchants, self.clients)
            }
            None => Directory::new(self.shards),
        }
    }

    /// Every flag with its value, in `--help` order (`--faults` and `--no-faults` as one).
    fn flags(&self) -> Vec<(&'static str, Option<String>)> {
        let faults = self.faults.as_ref().map(|kinds| {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            names.join(",")
        });
        vec![
            ("seed", Some(self.seed.to_string())),
            ("shards", Some(self.shards.to_string())),
            ("clients", Some(self.clients.to_string())),
            ("ops", Some(self.ops.to_string())),
            ("hostile", self.hostile.map(|h| h.to_string())),
            ("scenario", self.scenario.map(|s| s.name().to_string())),
            ("rate", self.rate.map(|r| r.to_string())),
            ("duration", self.duration_ms.map(seconds)),
            ("users", self.users.map(|u| u.to_string())),
            ("merchants", self.merchants.map(|m| m.to_string())),
            ("trade-shards", Some(self.trade_shards.to_string())),
            ("payment-nodes", Some(self.payment_nodes.to_string())),
            ("strategy", Some(self.strategy.to_string())),
            ("close-after-ms", Some(self.close_after_ms.to_string())),
            (
                "messages",
                Some(self.messages.map_or("off", |m| m.name()).to_string()),
            ),
            ("broker-flush", Some(self.broker_flush.to_string())),
            ("banks", Some(self.banks.to_string())),
            ("bug", self.bug.map(|b| b.name().to_string())),
            ("faults", faults),
            ("fsync-latency-ms", Some(self.fsync_latency_ms.to_string())),
            (
                "snapshot-interval-ms",
                Some(self.snapshot_interval_ms.to_string()),
            ),
            ("consume-batch", self.consume_batch.map(|b| b.to_string())),
            ("serve-loops", self.serve_loops.map(|n| n.to_string())),
            (
                "event-consumers",
                self.event_consumers.map(|n| n.to_string()),
            ),
        ]
    }

    /// The `paylab run` flags that make exactly this configuration: every flag whose value
    /// differs from its default, and always the seed and the message mode (whose default
    /// depends on the planted bug, so a reader need not know the rule). With a scenario, the
    /// defaults are the scenario's: the flags it sets are implied, not repeated.
    pub fn to_args(&self) -> Vec<String> {
        let defaults = RunConfig {
            scenario: self.scenario,
            ..RunConfig::new(self.seed)
        }
        .resolve()
        .flags();
        let mut out = Vec::new();
        for ((flag, value), (_, default)) in self.flags().into_iter().zip(defaults) {
            let always = matches!(flag, "seed" | "messages" | "scenario");
            match value {
                Some(v) if flag == "faults" && v.is_empty() => out.push("--no-faults".into()),
                Some(v) if always || Some(&v) != default.as_ref() => {
                    out.push(format!("--{flag}"));
                    out.push(v);
                }
                _ => {}
            }
        }
        out
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=SHARDS_MAX).contains(&self.shards) {
            return Err(ConfigError::Shards(self.shards));
        }
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            return Err(ConfigError::Clients(self.clients));
        }
        if !(1..=OPS_MAX).contains(&self.ops) {
            return Err(ConfigError::Ops(self.ops));
        }
        if self.banks > BANKS_MAX {
            return Err(ConfigError::Banks(self.banks));
        }
        if let Some(h) = self.hostile.filter(|&h| h > HOSTILE_MAX) {
            return Err(ConfigError::Hostile(h));
        }
        if !(1..=TRADE_SHARDS_MAX).contains(&self.trade_shards) {
            return Err(ConfigError::TradeShards(self.trade_shards));
        }
        if !(1..=PAYMENT_NODES_MAX).contains(&self.payment_nodes) {
            return Err(ConfigError::PaymentNodes(self.payment_nodes));
        }
        self.validate_ranges()?;
        self.validate_open_loop()?;
        let by_message = matches!(self.strategy, StrategyKind::Outbox | StrategyKind::Txmsg);
        if by_message && self.messages.is_none() {
            return Err(ConfigError::StrategyNeedsMessages(self.strategy));
        }
        if let Some(bug) = self.bug {
            if bug_needs_messages(bug) && self.messages.is_none() {
                return Err(ConfigError::BugNeedsMessages(bug));
            }
            if bug_needs_banks(bug) && self.banks == 0 {
                return Err(ConfigError::BugNeedsBanks(bug));
            }
            match strategy_of_bug(bug) {
                Some(needs) if needs != self.strategy => {
                    return Err(ConfigError::BugNeedsStrategy { bug, needs })
                }
                _ => {}
            }
            if let (Some(needs), Some(mode)) = (mode_of_bug(bug), self.messages) {
                if needs != mode {
                    return Err(ConfigError::BugNeedsMode { bug, needs });
                }
            }
        }
        Ok(())
    }

    /// The knobs a hand-edited report or a library caller could set past what the flags
    /// accept: each within the same bounds as its flag.
    fn validate_ranges(&self) -> Result<(), ConfigError> {
        let steps = u64::from(self.clients) * u64::from(self.ops);
        if self.rate.is_none() && steps > STEPS_MAX {
            let (clients, ops) = (self.clients, self.ops);
            return Err(ConfigError::TooManySteps {
                clients,
                ops,
                steps,
            });
        }
        let duration = self
            .duration_ms
            .map(|ms| ("duration (ms)", 1, DURATION_MAX_S * 1_000, ms));
        let checks = [
            Some(("close-after-ms", 1, CLOSE_AFTER_MS_MAX, self.close_after_ms)),
            Some((
                "fsync-latency-ms",
                0,
                FSYNC_LATENCY_MS_MAX,
                self.fsync_latency_ms,
            )),
            Some((
                "snapshot-interval-ms",
                1,
                SNAPSHOT_INTERVAL_MS_MAX,
                self.snapshot_interval_ms,
            )),
            self.rate
                .map(|r| ("rate", 1, u64::from(RATE_MAX), u64::from(r))),
            duration,
            self.users
                .map(|u| ("users", 1, u64::from(USERS_MAX), u64::from(u))),
            self.merchants
                .map(|m| ("merchants", 1, u64::from(MERCHANTS_MAX), u64::from(m))),
            self.consume_batch.map(|b| {
                (
                    "consume-batch",
                    1,
                    u64::from(CONSUME_BATCH_MAX),
                    u64::from(b),
                )
            }),
            self.serve_loops
                .map(|n| ("serve-loops", 1, u64::from(SERVE_LOOPS_MAX), u64::from(n))),
            self.event_consumers.map(|n| {
                (
                    "event-consumers",
                    1,
                    u64::from(EVENT_CONSUMERS_MAX),
                    u64::from(n),
                )
            }),
        ];
        for (flag, min, max, got) in checks.into_iter().flatten() {
            if !(min..=max).contains(&got) {
                return Err(ConfigError::OutOfRange {
                    flag,
                    min,
                    max,
                    got,
                });
            }
        }
        Ok(())
    }

    /// The open-loop flags: only with `--rate`, within the arrival budget, and with at least
    /// one user and one merchant per client node.
    fn validate_open_loop(&self) -> Result<(), ConfigError> {
        let Some(open) = self.open_loop() else {
            let lone = [
                ("--duration", self.duration_ms.is_some()),
                ("--users", self.users.is_some()),
                ("--merchants", self.merchants.is_some()),
            ];
            return match lone.into_iter().find(|(_, set)| *set) {
                Some((flag, _)) => Err(ConfigError::NeedsRate(flag)),
                None => Ok(()),
            };
        };
        if open.arrivals() > ARRIVALS_MAX {
            return Err(ConfigError::TooManyArrivals {
                rate: open.rate,
                seconds: seconds(open.duration_ms),
                arrivals: open.arrivals(),
            });
        }
        for (flag, got) in [("users", open.users), ("merchants", open.merchants)] {
            if got < self.clients {
                let clients = self.clients;
                return Err(ConfigError::FewerThanClients { flag, clients, got });
            }
        }
        Ok(())
    }

    /// Operations the whole workload performs at least: per client, open each account (its
    /// merchant account included), fund each user account, then one operation per business
    /// step (a trade flow counts its creation only; its payment and refunds come on top).
    /// Open-loop: the merchants' openings, about two operations per arrival (a flow's trade
    /// and its payment) and one per user its first payment opens.
    pub fn total_ops(&self) -> u64 {
        if let Some(open) = self.open_loop() {
            let arrivals = open.arrivals();
            return u64::from(open.merchants) + 2 * arrivals + arrivals.min(u64::from(open.users));
        }
        let setup = 2 * u64::from(self.accounts_per_client()) + 1;
        u64::from(self.clients) * (setup + u64::from(self.ops))
    }

    /// The names of every serving node (what a fault plan may name), in start order.
    pub fn server_nodes(&self) -> Vec<NodeName> {
        crate::services::fault_targets(self)
    }

    /// The node slots a fault plan draws from: every node that any strategy or message mode
    /// of this configuration's sizes runs (the message layer's nodes included even when this
    /// run has none), so that a seed's plan is the same whatever the strategy and the message
    /// mode. A fault on a slot this run lacks is skipped, visibly.
    pub fn slot_nodes(&self) -> Vec<NodeName> {
        let mut widest = self.clone();
        widest.messages.get_or_insert(MessageMode::Outbox);
        crate::services::fault_targets(&widest)
    }

    /// Accounts each client opens: two per shard, so every shard has a transfer pair.
    pub fn accounts_per_client(&self) -> u32 {
        2 * self.shards
    }
}

impl fmt::Display for RunConfig {
    /// Every setting but the seed, as `flag=value`, from the same list as [`RunConfig::to_args`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .flags()
            .into_iter()
            .filter(|(flag, value)| {
                let shown_when_set = matches!(
                    *flag,
                    "scenario"
                        | "rate"
                        | "duration"
                        | "users"
                        | "merchants"
                        | "consume-batch"
                        | "serve-loops"
                        | "event-consumers"
                );
                *flag != "seed" && !(shown_when_set && value.is_none())
            })
            .map(|(flag, value)| match value {
                Some(v) if v.is_empty() => format!("{flag}=none"),
                Some(v) => format!("{flag}={v}"),
                None if flag == "faults" || flag == "hostile" => format!("{flag}=swarm"),
                None => format!("{flag}=none"),
            })
            .collect();
        f.write_str(&shown.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the arguments a configuration emits.
    fn round_trip(config: &RunConfig) -> RunConfig {
        RunConfig::from_args(&config.to_args()).expect("to_args parses")
    }

    #[test]
    fn the_default_emits_only_the_seed_and_the_mode_and_parses_back() {
        let config = RunConfig::new(9);
        assert_eq!(config.to_args(), ["--seed", "9", "--messages", "outbox"]);
        assert_eq!(round_trip(&config), config);
    }

    #[test]
    fn every_changed_setting_survives_the_round_trip() {
        let changed = [
            RunConfig {
                shards: 7,
                clients: 3,
                ops: 12,
                trade_shards: 3,
                payment_nodes: 1,
                close_after_ms: 900,
                fsync_latency_ms: 4,
                snapshot_interval_ms: 50,
                ..RunConfig::new(1)
            },
            RunConfig {
                bug: Some(Bug::CheckbackFromMemory),
                messages: Some(MessageMode::Txmsg),
                faults: Some(vec![FaultKind::Crash, FaultKind::Buggify]),
                ..RunConfig::new(2)
            },
            RunConfig {
                messages: None,
                broker_flush: FlushPolicy::Async { interval_ms: 500 },
                faults: Some(Vec::new()),
                ..RunConfig::new(3)
            },
        ];
        for config in changed {
            assert_eq!(round_trip(&config), config, "{:?}", config.to_args());
        }
    }

    #[test]
    fn open_loop_flags_and_the_scenario_survive_the_round_trip() {
        let open =
            RunConfig::from_args(&["--rate", "250", "--duration", "1.5", "--users", "40"]).unwrap();
        assert_eq!(open.duration_ms, Some(1_500));
        assert_eq!(
            open.merchants,
            Some(DEFAULT_MERCHANTS),
            "defaults filled in"
        );
        let peak = RunConfig::from_args(&["--scenario", "peak-2015", "--seed", "4"]).unwrap();
        assert_eq!(peak.duration_ms, Some(60_000));
        assert_eq!(peak.consume_batch, Some(CONSUME_BATCH_MAX));
        assert_eq!(peak.serve_loops, Some(PEAK_SERVE_LOOPS));
        assert_eq!(peak.event_consumers, Some(EVENT_CONSUMERS_MAX));
        assert_eq!(
            peak.to_args(),
            [
                "--seed",
                "4",
                "--scenario",
                "peak-2015",
                "--messages",
                "outbox"
            ]
        );
        let short =
            RunConfig::from_args(&["--scenario", "peak-2015", "--duration", "0.25"]).unwrap();
        let lean = RunConfig {
            merchants: Some(7),
            ..RunConfig::from_args(&["--rate", "9"]).unwrap()
        };
        // A consumption batch given with the scenario is kept, and repeated.
        let one = ["--scenario", "peak-2015", "--consume-batch", "1"];
        let one = RunConfig::from_args(&one).unwrap();
        assert_eq!(one.consume_batch, Some(1));
        assert!(one.to_args().contains(&"--consume-batch".to_string()));
        let batched = RunConfig::from_args(&[
            "--consume-batch",
            "4",
            "--serve-loops",
            "8",
            "--event-consumers",
            "2",
        ])
        .unwrap();
        assert_eq!(batched.event_consumers, Some(2));
        assert_eq!(batched.serve_loops(), 8);
        assert_eq!(RunConfig::new(1).serve_loops(), 1);
        for config in [open, peak, short, lean, one, batched] {
            assert_eq!(round_trip(&config), config, "{:?}", config.to_args());
            config.validate().expect("valid");
        }
        assert!(!RunConfig::new(1).to_string().contains("rate="));
    }

    #[test]
    fn a_message_bug_defaults_to_its_mode_and_an_explicit_mode_wins() {
        let bug = RunConfig::from_args(&["--bug", "checkback-from-memory"]).unwrap();
        assert_eq!(bug.messages, Some(MessageMode::Txmsg));
        let off = RunConfig::from_args(&["--messages", "off"]).unwrap();
        assert_eq!(off.messages, None);
        let quiet = RunConfig::from_args(&["--no-faults"]).unwrap();
        assert_eq!(quiet.faults, Some(Vec::new()));
        assert!(RunConfig::from_args(&["--no-faults", "--faults", "crash"]).is_err());
    }
}
