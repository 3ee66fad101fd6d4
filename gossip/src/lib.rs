//! gantry's gossip layer: [chitchat] 0.13 with a typed node state, a sealed UDP transport and
//! change events. Gossip carries what changes every second and may be slightly stale (liveness,
//! load, endpoint health, applied config revision); nothing in it is authoritative.
//!
//! [chitchat]: https://docs.rs/chitchat/0.13.0
//!
//! # Code map
//!
//! | module | owns |
//! |---|---|
//! | `gossip` | [`Gossip`]: start/shutdown, setters for the local state, views, events, keys, members |
//! | `config` | [`GossipConfig`], [`GossipTuning`] (defaults below) |
//! | `state` | [`NodeState`] and its mapping onto chitchat keys (the only place key names exist) |
//! | `view` | [`ClusterView`] / [`MemberView`] (members only, with [`Liveness`]) and [`GossipEvent`]s |
//! | `transport` | the sealed chitchat `Transport` (loopback encode/decode, replay cache, fragments) |
//! | [`wire`] | the sealed datagram format: pure `seal` / `open` |
//! | `key`, `counters`, `error` | [`GossipKey`] / [`KeyRing`], [`GossipCounters`], [`GossipError`] |
//!
//! Architecture invariants: the crate never learns anything from a datagram it could not open
//! with a key it holds, from a sender outside the member set; the rest of gantry never sees a
//! chitchat key string; no read of the view awaits.
//!
//! # Failure detection: settings and trade-off
//!
//! chitchat's detector is "phi accrual" in a simplified form: a peer is dead once the time since
//! its heartbeat last advanced exceeds `phi_threshold` × its mean heartbeat interval, that mean
//! being taken over the last `sampling_window` intervals plus a prior (`prior_interval_ms`)
//! weighted like 5 samples. Heartbeats advance every gossip round and reach an observer directly
//! or second-hand in digests, so the observed interval is ~100–170 ms with a 200 ms round; the
//! resulting timeout is ~1.3–2.0 s depending on the observer (seeds hear more often).
//!
//! | setting | default | chitchat default | why |
//! |---|---|---|---|
//! | `gossip_interval_ms` | 200 | 1 000 | memberlist's LAN gossip interval; sets detection and convergence speed |
//! | `phi_threshold` | 12 | 8 | ≈ 1.3–2.0 s timeout: above a 1 s stall plus heartbeat jitter, below 3 s with propagation |
//! | `sampling_window` | 20 | 1 000 | a short window lets the prior keep ~20 % weight and forgets a stall's long interval quickly |
//! | `prior_interval_ms` | 170 | 5 000 | the interval actually observed with a 200 ms round, so a new node is judged right at once |
//! | `max_interval_ms` | 1 000 | 10 000 | longer gaps are not averaged in (a restart does not stretch the mean) |
//! | `dead_node_grace_ms` | 30 min | 24 h | old generations and removed nodes are forgotten sooner |
//! | `suspect_after_ms` | 800 | – | gantry's `Suspect`: alive for chitchat but silent for 4 rounds |
//! | `max_clock_skew_ms` | 30 000 | – | freshness window of sealed datagrams (and of the replay cache) |
//!
//! Measured over loopback in one process (`cargo bench -p gantry-benches --bench gossip_cluster`,
//! 2 shared cores; see `gossip/README.md`): a killed node is dead on every other node after
//! 1.5 s (3 nodes), 2.1–2.3 s (10), 2.5–2.7 s (50) and 2.7–2.9 s (100); a node stalled for
//! 900 ms is declared dead by nobody at any size; a state change reaches every node in
//! 0.1–0.2 s (3), ~0.3 s (10) and ~0.5 s (100).
//!
//! The trade-off: detection time ≈ propagation of the last heartbeat (grows with log N) + the
//! timeout + up to one round. Lowering `phi_threshold` or the prior detects sooner but turns
//! stalls (GC or allocator pauses, CPU starvation on a busy host, a slow disk on the same
//! runtime) into false deaths and flapping: with phi 8 (same round) one of 49 observers
//! declared a 900 ms stall dead at 50 nodes, and CPU hiccups caused 6 false deaths in a minute. Raising them tolerates longer stalls but a 100-node
//! cluster would then miss the 3 s bound. A shorter `gossip_interval_ms` speeds both up at the
//! cost of proportionally more packets and CPU (every round sends each node's whole digest to
//! 3 peers, so bytes per node grow with cluster size, ~25 kB/s at 100 nodes). On real networks
//! with latency and loss, give the timeout more room before giving it less.
//!
//! A restarted node gossips under a new generation (its start time, or
//! [`GossipConfig::generation`]): the old generation is left to die; the view shows the live one,
//! else the newest.
//!
//! # Security
//!
//! Every datagram on the gossip port is sealed with ChaCha20-Poly1305 under a key derived (HKDF)
//! from the 32-byte cluster gossip key; the clear header (version, key id, sender node id, send
//! time, fragment fields, nonce) is authenticated as associated data (see [`wire`]). A datagram
//! is dropped, and counted by [`DropReason`], when it is malformed, oversized, sealed with an
//! unknown key, older or newer than `max_clock_skew_ms`, from a sender outside the member set,
//! forged or garbled, or a replay of a nonce seen within the window.
//!
//! chitchat's envelope codec is crate-private, so the transport uses chitchat's own UDP sockets
//! over loopback to encode and decode, and checks the sender address of everything that reaches
//! its loopback sockets (see `transport`). What this does not protect against: a member holding
//! the key can gossip state in another member's name (the key and the member set are the trust
//! boundary, as in Serf or Consul), and root on the host can read loopback traffic (and the key).
//!
//! Key rotation without a partition, driven by Raft: (1) every node calls
//! `set_keys(old, Some(new))` (accepts the new key), (2) every node calls
//! `set_keys(new, Some(old))` (seals with it), (3) every node calls `set_keys(new, None)`.
//!
//! # Datagram size
//!
//! chitchat 0.13 has no MTU setting: it fills deltas up to a private 65,507-byte constant, and a
//! sealed datagram adds 55 bytes ([`wire::OVERHEAD`]). Envelopes that would not fit are split
//! into two separately sealed fragments and reassembled (bounded: 16 pending, 2 s). chitchat's
//! zstd-compressed deltas rarely come that close; the limit that matters is the state size, so
//! each node publishes at most [`MAX_ENDPOINTS_PER_NODE`] health entries.
#![forbid(unsafe_code)]

mod config;
mod counters;
mod error;
mod gossip;
mod key;
mod state;
mod transport;
mod view;
pub mod wire;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{GossipConfig, GossipTuning};
pub use counters::GossipCounters;
pub use error::GossipError;
pub use gossip::Gossip;
pub use key::{GossipKey, KeyRing, KEY_LEN};
pub use state::{
    Addresses, EndpointHealth, Load, NodeState, RaftRole, Verdict, ZoneInFlight, MAX_ENDPOINTS_PER_NODE, MAX_FIELD_LEN,
};
pub use view::{ClusterView, EndpointReport, GossipEvent, Liveness, MemberView, EVENT_CAPACITY};
pub use wire::DropReason;

/// A Raft node id: the same type as `gantry_proto::cluster::NodeId` (kept local so that this
/// crate builds without the config schema).
pub type NodeId = u64;
