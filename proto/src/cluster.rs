//! The cluster's replicated state and the commands that change it. `ClusterState::apply` is the
//! Raft state machine's logic: deterministic (no clock, no I/O, no randomness), so every node
//! that applies the same log reaches the same state. Times come inside commands.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub type NodeId = u64;

/// How many past config revisions the cluster keeps.
pub const HISTORY_LIMIT: usize = 100;

/// A cluster member as Raft knows it: who it is and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub zone: String,
    /// `HOST:PORT` of its QUIC fabric endpoint.
    pub fabric: String,
    /// `HOST:PORT` of its admin API.
    pub admin: String,
    /// `HOST:PORT` of its gossip socket (UDP).
    pub gossip: String,
}

/// Secrets and trust anchors created at bootstrap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub cluster_id: String,
    pub ca_cert_pem: String,
    /// The CA key signs joiners' certificates; any member may serve a join, so every member
    /// holds it (as Consul's built-in CA does).
    pub ca_key_pem: String,
    pub gossip_key: [u8; 32],
    /// SHA-256 of the admin token; the token itself is never stored.
    pub admin_token_sha256: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub secret_sha256: [u8; 32],
    pub expires_at_unix_ms: u64,
    pub revoked: bool,
}

/// One committed config revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u64,
    /// The validated document, as canonical JSON.
    pub config_json: String,
    pub committed_at_unix_ms: u64,
    /// Set when this revision is a rollback to an older one.
    pub rolled_back_from: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets the cluster's identity; only the first one counts.
    Bootstrap {
        identity: ClusterIdentity,
    },
    /// Commits a new config revision; with `if_revision`, only if the current one is that.
    ApplyConfig {
        config_json: String,
        if_revision: Option<u64>,
        at_unix_ms: u64,
    },
    /// Commits an old revision's document as a new revision.
    Rollback {
        to_revision: u64,
        if_revision: Option<u64>,
        at_unix_ms: u64,
    },
    CreateJoinToken {
        id: String,
        token: JoinToken,
    },
    RevokeJoinToken {
        id: String,
    },
    /// Reserves the next node id for a joiner presenting token `token_id`; fails if the token is
    /// unknown, revoked or expired at `at_unix_ms`.
    AdmitNode {
        token_id: String,
        name: String,
        zone: String,
        fabric: String,
        admin: String,
        gossip: String,
        at_unix_ms: u64,
    },
    /// Records or updates a member's addresses (e.g. after a restart with a new advertise).
    UpsertNode {
        node: NodeInfo,
    },
    /// Forgets a member; its certificate is refused from then on.
    RemoveNode {
        id: NodeId,
    },
    /// Several commands proposed together by the leader (group commit), applied in order as if
    /// proposed one by one; answered by `Response::Batch` with one response each.
    Batch(Vec<Command>),
}

/// What a joiner sends (over the join protocol) to any member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token_id: String,
    /// The token's secret; the member compares its SHA-256 with the stored hash.
    pub secret: String,
    pub name: String,
    pub zone: String,
    pub fabric: String,
    pub admin: String,
    pub gossip: String,
    /// Raw P-256 public key the certificate is issued for (the private key stays home).
    pub public_key: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    Accepted { node_id: NodeId, cluster_id: String, cert_pem: String, ca_pem: String, members: Vec<NodeInfo> },
    Refused { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Done,
    Committed {
        revision: u64,
    },
    Admitted {
        node: NodeInfo,
    },
    Refused(Refusal),
    /// The responses to a `Command::Batch`, in its order.
    Batch(Vec<Response>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("revision conflict: expected {expected}, current is {current}")]
    RevisionConflict { expected: u64, current: u64 },
    #[error("revision {0} is not in the history")]
    UnknownRevision(u64),
    #[error("unknown join token")]
    UnknownToken,
    #[error("join token expired")]
    TokenExpired,
    #[error("join token revoked")]
    TokenRevoked,
    #[error("the cluster is already bootstrapped")]
    AlreadyBootstrapped,
    #[error("node {0} was removed from the cluster")]
    NodeRemoved(NodeId),
}

/// Everything Raft replicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub identity: Option<ClusterIdentity>,
    /// Oldest first, newest last, at most HISTORY_LIMIT. Each revision behind an `Arc`: the state
    /// machine copies the state once per applied batch, and copying 100 documents every write
    /// was a large share of every node's CPU. (`Arc<T>` encodes exactly as `T`.)
    pub history: VecDeque<Arc<Revision>>,
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub removed: BTreeSet<NodeId>,
    pub join_tokens: BTreeMap<String, JoinToken>,
    /// Next node id to hand out; the bootstrap node is 1.
    pub next_node_id: NodeId,
}

impl ClusterState {
    /// The current revision number (0 before the first config).
    pub fn revision(&self) -> u64 {
        self.history.back().map_or(0, |r| r.revision)
    }

    pub fn current(&self) -> Option<&Arc<Revision>> {
        self.history.back()
    }

    pub fn revision_at(&self, revision: u64) -> Option<&Arc<Revision>> {
        self.history.iter().find(|r| r.revision == revision)
    }

    pub fn apply(&mut self, command: Command) -> Response {
        match command {
            Command::Bootstrap { identity } => {
                if self.identity.is_some() {
                    return Response::Refused(Refusal::AlreadyBootstrapped);
                }
                self.identity = Some(identity);
                self.next_node_id = self.next_node_id.max(1);
                Response::Done
            }
            Command::ApplyConfig { config_json, if_revision, at_unix_ms } => {
                if let Err(refusal) = self.check_revision(if_revision) {
                    return Response::Refused(refusal);
                }
                self.commit(config_json, at_unix_ms, None)
            }
            Command::Rollback { to_revision, if_revision, at_unix_ms } => {
                if let Err(refusal) = self.check_revision(if_revision) {
                    return Response::Refused(refusal);
                }
                let Some(old) = self.revision_at(to_revision) else {
                    return Response::Refused(Refusal::UnknownRevision(to_revision));
                };
                let config_json = old.config_json.clone();
                self.commit(config_json, at_unix_ms, Some(to_revision))
            }
            Command::CreateJoinToken { id, token } => {
                self.join_tokens.insert(id, token);
                Response::Done
            }
            Command::RevokeJoinToken { id } => match self.join_tokens.get_mut(&id) {
                Some(token) => {
                    token.revoked = true;
                    Response::Done
                }
                None => Response::Refused(Refusal::UnknownToken),
            },
            Command::AdmitNode { token_id, name, zone, fabric, admin, gossip, at_unix_ms } => {
                match self.join_tokens.get(&token_id) {
                    None => return Response::Refused(Refusal::UnknownToken),
                    Some(token) if token.revoked => return Response::Refused(Refusal::TokenRevoked),
                    Some(token) if token.expires_at_unix_ms <= at_unix_ms => {
                        return Response::Refused(Refusal::TokenExpired)
                    }
                    Some(_) => {}
                }
                // Drop expired tokens while here, so the map does not grow forever.
                self.join_tokens.retain(|_, t| t.expires_at_unix_ms > at_unix_ms);
                let id = self.next_node_id.max(2);
                self.next_node_id = id + 1;
                let node = NodeInfo { id, name, zone, fabric, admin, gossip };
                self.nodes.insert(id, node.clone());
                Response::Admitted { node }
            }
            Command::UpsertNode { node } => {
                if self.removed.contains(&node.id) {
                    return Response::Refused(Refusal::NodeRemoved(node.id));
                }
                self.next_node_id = self.next_node_id.max(node.id + 1);
                self.nodes.insert(node.id, node);
                Response::Done
            }
            Command::RemoveNode { id } => {
                self.nodes.remove(&id);
                self.removed.insert(id);
                Response::Done
            }
            Command::Batch(commands) => Response::Batch(commands.into_iter().map(|c| self.apply(c)).collect()),
        }
    }

    fn check_revision(&self, expected: Option<u64>) -> Result<(), Refusal> {
        match expected {
            Some(expected) if expected != self.revision() => {
                Err(Refusal::RevisionConflict { expected, current: self.revision() })
            }
            _ => Ok(()),
        }
    }

    fn commit(&mut self, config_json: String, at_unix_ms: u64, rolled_back_from: Option<u64>) -> Response {
        let revision = self.revision() + 1;
        self.history.push_back(Arc::new(Revision {
            revision,
            config_json,
            committed_at_unix_ms: at_unix_ms,
            rolled_back_from,
        }));
        while self.history.len() > HISTORY_LIMIT {
            self.history.pop_front();
        }
        Response::Committed { revision }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_config(state: &mut ClusterState, json: &str, if_revision: Option<u64>) -> Response {
        state.apply(Command::ApplyConfig { config_json: json.into(), if_revision, at_unix_ms: 1 })
    }

    #[test]
    fn revisions_compare_and_set_and_rollback() {
        let mut state = ClusterState::default();
        assert_eq!(apply_config(&mut state, "a", None), Response::Committed { revision: 1 });
        assert_eq!(apply_config(&mut state, "b", Some(1)), Response::Committed { revision: 2 });
        assert_eq!(
            apply_config(&mut state, "c", Some(1)),
            Response::Refused(Refusal::RevisionConflict { expected: 1, current: 2 })
        );
        assert_eq!(state.revision(), 2);
        let rollback = state.apply(Command::Rollback { to_revision: 1, if_revision: None, at_unix_ms: 2 });
        assert_eq!(rollback, Response::Committed { revision: 3 });
        assert_eq!(state.current().map(|r| r.config_json.as_str()), Some("a"));
        assert_eq!(state.current().and_then(|r| r.rolled_back_from), Some(1));
        assert_eq!(
            state.apply(Command::Rollback { to_revision: 9, if_revision: None, at_unix_ms: 2 }),
            Response::Refused(Refusal::UnknownRevision(9))
        );
    }

    #[test]
    fn a_batch_applies_in_order_as_one_by_one() {
        let commands = vec![
            Command::ApplyConfig { config_json: "a".into(), if_revision: Some(0), at_unix_ms: 1 },
            Command::ApplyConfig { config_json: "b".into(), if_revision: Some(0), at_unix_ms: 1 },
            Command::ApplyConfig { config_json: "c".into(), if_revision: Some(1), at_unix_ms: 1 },
        ];
        let mut one_by_one = ClusterState::default();
        let expected: Vec<Response> = commands.iter().map(|c| one_by_one.apply(c.clone())).collect();
        let mut batched = ClusterState::default();
        assert_eq!(batched.apply(Command::Batch(commands)), Response::Batch(expected.clone()));
        assert_eq!(batched, one_by_one);
        assert_eq!(
            expected,
            vec![
                Response::Committed { revision: 1 },
                Response::Refused(Refusal::RevisionConflict { expected: 0, current: 1 }),
                Response::Committed { revision: 2 },
            ]
        );
    }

    #[test]
    fn history_is_bounded() {
        let mut state = ClusterState::default();
        for i in 0..(HISTORY_LIMIT + 20) {
            apply_config(&mut state, &i.to_string(), None);
        }
        assert_eq!(state.history.len(), HISTORY_LIMIT);
        assert_eq!(state.revision(), (HISTORY_LIMIT + 20) as u64);
        assert!(state.revision_at(20).is_none());
        assert!(state.revision_at(21).is_some());
    }

    #[test]
    fn join_tokens_admit_until_expiry_or_revocation() {
        let mut state = ClusterState::default();
        let token = JoinToken { secret_sha256: [1; 32], expires_at_unix_ms: 100, revoked: false };
        state.apply(Command::CreateJoinToken { id: "t".into(), token });
        let admit = |state: &mut ClusterState, at| {
            state.apply(Command::AdmitNode {
                token_id: "t".into(),
                name: "n".into(),
                zone: "z".into(),
                fabric: "f".into(),
                admin: "a".into(),
                gossip: "g".into(),
                at_unix_ms: at,
            })
        };
        match admit(&mut state, 50) {
            Response::Admitted { node } => assert_eq!(node.id, 2),
            other => panic!("{other:?}"),
        }
        match admit(&mut state, 60) {
            Response::Admitted { node } => assert_eq!(node.id, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(admit(&mut state, 100), Response::Refused(Refusal::TokenExpired));
        state.apply(Command::CreateJoinToken {
            id: "t".into(),
            token: JoinToken { secret_sha256: [1; 32], expires_at_unix_ms: 1000, revoked: false },
        });
        state.apply(Command::RevokeJoinToken { id: "t".into() });
        assert_eq!(admit(&mut state, 200), Response::Refused(Refusal::TokenRevoked));
    }

    #[test]
    fn removed_nodes_stay_removed() {
        let mut state = ClusterState::default();
        let node = NodeInfo {
            id: 4,
            name: "n4".into(),
            zone: "a".into(),
            fabric: "f".into(),
            admin: "a".into(),
            gossip: "g".into(),
        };
        assert_eq!(state.apply(Command::UpsertNode { node: node.clone() }), Response::Done);
        state.apply(Command::RemoveNode { id: 4 });
        assert!(!state.nodes.contains_key(&4));
        assert_eq!(state.apply(Command::UpsertNode { node }), Response::Refused(Refusal::NodeRemoved(4)));
    }
}
