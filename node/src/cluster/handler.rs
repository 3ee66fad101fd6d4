//! What a member answers on the fabric: openraft RPCs, writes and membership changes forwarded
//! to the leader, linearizable reads, pings, and joins. Undecodable requests are answered with
//! an error and counted; nothing a peer sends can panic the node.

use std::collections::BTreeSet;
use std::sync::Weak;

use gantry_proto::cluster::{Command, JoinReply, JoinRequest, Response};
use gantry_proto::codec;
use gantry_raft_store::openraft::{BasicNode, ChangeMembers};

use super::rpc::{ForwardError, RaftRpc, RaftRpcReply};
use super::{identity, now_unix_ms, Cluster, ClusterError};
use crate::fabric::{pki, FabricHandler, HandlerFuture, Peer, ALPN_JOIN, ALPN_RAFT};

pub struct Handler {
    pub cluster: Weak<Cluster>,
}

impl FabricHandler for Handler {
    fn handle(&self, alpn: &'static [u8], peer: Peer, request: Vec<u8>) -> HandlerFuture<'_> {
        Box::pin(async move {
            let Some(cluster) = self.cluster.upgrade() else {
                return encode(&RaftRpcReply::BadRequest("node shutting down".into()));
            };
            match alpn {
                ALPN_RAFT => match codec::decode_payload::<RaftRpc>(&request) {
                    Ok(rpc) => encode(&serve_raft(&cluster, rpc).await),
                    Err(error) => {
                        cluster.fabric.stats.bad_frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(peer = ?peer.node, addr = %peer.addr, %error, "undecodable raft request dropped");
                        encode(&RaftRpcReply::BadRequest(error.to_string()))
                    }
                },
                ALPN_JOIN => {
                    let reply = match codec::decode_payload::<JoinRequest>(&request) {
                        Ok(join) => serve_join(&cluster, join, peer).await,
                        Err(error) => {
                            cluster.fabric.stats.bad_frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            JoinReply::Refused { reason: format!("malformed join request: {error}") }
                        }
                    };
                    encode(&reply)
                }
                _ => encode(&RaftRpcReply::BadRequest("unknown protocol".into())),
            }
        })
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    match codec::encode_payload(value) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "cannot encode a fabric reply");
            codec::encode_payload(&RaftRpcReply::BadRequest(error.to_string())).unwrap_or_default()
        }
    }
}

async fn serve_raft(cluster: &Cluster, rpc: RaftRpc) -> RaftRpcReply {
    match rpc {
        RaftRpc::AppendEntries(request) => RaftRpcReply::AppendEntries(cluster.raft.append_entries(request).await),
        RaftRpc::Vote(request) => RaftRpcReply::Vote(cluster.raft.vote(request).await),
        RaftRpc::InstallSnapshot(request) => {
            RaftRpcReply::InstallSnapshot(cluster.raft.install_snapshot(request).await)
        }
        RaftRpc::Write(command) => RaftRpcReply::Write(cluster.propose_forwarded(command).await),
        RaftRpc::ReadRevision { revision } => RaftRpcReply::Revision(match cluster.raft.ensure_linearizable().await {
            Ok(_) => Ok(cluster.revision_here(revision)),
            Err(_) => Err(ForwardError::NotLeader { leader: cluster.metrics().current_leader }),
        }),
        rpc @ (RaftRpc::AddLearner { .. } | RaftRpc::RemoveMember { .. }) => {
            if cluster.metrics().current_leader != Some(cluster.node_id) {
                return RaftRpcReply::Done(Err(ForwardError::NotLeader { leader: cluster.metrics().current_leader }));
            }
            RaftRpcReply::Done(run_membership(cluster, rpc).await.map_err(|e| ForwardError::Failed(e.to_string())))
        }
        RaftRpc::Ping => RaftRpcReply::Pong { applied_revision: cluster.state().revision() },
        RaftRpc::Liveness => RaftRpcReply::Liveness { members: cluster.local_liveness() },
    }
}

/// Membership changes; must run on the leader.
pub(super) async fn run_membership(cluster: &Cluster, rpc: RaftRpc) -> Result<(), ClusterError> {
    match rpc {
        RaftRpc::AddLearner { id, fabric } => {
            cluster
                .raft
                .add_learner(id, BasicNode::new(fabric), false)
                .await
                .map_err(|e| ClusterError::Raft(e.to_string()))?;
            Ok(())
        }
        RaftRpc::RemoveMember { id } => {
            let membership = cluster.metrics().membership_config.membership().clone();
            if membership.voter_ids().any(|v| v == id) {
                let voters: BTreeSet<u64> = membership.voter_ids().filter(|v| *v != id).collect();
                if voters.is_empty() {
                    return Err(ClusterError::Invalid("cannot remove the last voter".into()));
                }
                cluster
                    .raft
                    .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
                    .await
                    .map_err(|e| ClusterError::Raft(e.to_string()))?;
            }
            let membership = cluster.metrics().membership_config.membership().clone();
            if membership.get_node(&id).is_some() {
                cluster
                    .raft
                    .change_membership(ChangeMembers::RemoveNodes([id].into_iter().collect()), false)
                    .await
                    .map_err(|e| ClusterError::Raft(e.to_string()))?;
            }
            cluster.commit(Command::RemoveNode { id }).await?;
            Ok(())
        }
        other => Err(ClusterError::Invalid(format!("not a membership change: {other:?}"))),
    }
}

async fn serve_join(cluster: &Cluster, join: JoinRequest, peer: Peer) -> JoinReply {
    match admit(cluster, join).await {
        Ok(reply) => reply,
        Err(reason) => {
            tracing::warn!(addr = %peer.addr, %reason, "join refused");
            JoinReply::Refused { reason }
        }
    }
}

async fn admit(cluster: &Cluster, join: JoinRequest) -> Result<JoinReply, String> {
    let state = cluster.state();
    let Some(identity_state) = state.identity.clone() else {
        return Err("this member has not finished bootstrapping; try again shortly".into());
    };
    let Some(token) = state.join_tokens.get(&join.token_id) else {
        return Err("unknown join token (create one with `gantry ctl token create`)".into());
    };
    if !identity::constant_time_eq(&identity::sha256(join.secret.as_bytes()), &token.secret_sha256) {
        return Err("wrong join token secret".into());
    }
    if token.revoked {
        return Err("this join token was revoked".into());
    }
    let now = now_unix_ms();
    if token.expires_at_unix_ms <= now {
        return Err("this join token has expired (create a new one with `gantry ctl token create`)".into());
    }
    let admitted = cluster
        .commit(Command::AdmitNode {
            token_id: join.token_id.clone(),
            name: join.name.clone(),
            zone: join.zone.clone(),
            fabric: join.fabric.clone(),
            admin: join.admin.clone(),
            gossip: join.gossip.clone(),
            at_unix_ms: now,
        })
        .await
        .map_err(|e| e.to_string())?;
    let Response::Admitted { node } = admitted else {
        return Err(format!("unexpected answer to the admission: {admitted:?}"));
    };
    let cert_pem =
        pki::sign_node_cert(&identity_state.cluster_id, &identity_state.ca_key_pem, node.id, &join.public_key)
            .map_err(|e| e.to_string())?;
    super::add_learner(cluster, node.id, join.fabric.clone()).await.map_err(|e| e.to_string())?;
    tracing::info!(node_id = node.id, name = %node.name, zone = %node.zone, "node admitted as a learner");
    Ok(JoinReply::Accepted {
        node_id: node.id,
        cluster_id: identity_state.cluster_id.clone(),
        cert_pem,
        ca_pem: identity_state.ca_cert_pem.clone(),
        members: cluster.state().nodes.values().cloned().collect(),
    })
}
