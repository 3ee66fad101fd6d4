//! Admin API routes. Reads of public state are open; writes and secrets need the admin token.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use gantry_proto::cluster::{Command, Revision};
use gantry_proto::config::parse_duration;
use gantry_proto::Problem;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::AdminState;
use crate::cluster::config::ApplyError;
use crate::cluster::{identity, ClusterError, DEFAULT_TOKEN_TTL};
use crate::telemetry::{ClusterView, GossipView};
use std::sync::atomic::Ordering;

/// Largest request body the admin API reads (config documents).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

type Reply = Response<Full<Bytes>>;
/// An early answer (auth failure, bad input), boxed to keep `Result` small.
type Early = Box<Reply>;

pub async fn route(request: Request<Incoming>, state: &AdminState) -> Reply {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = query_map(request.uri().query());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok\n"),
        (&Method::GET, ["readyz"]) => readyz(state),
        (&Method::GET, ["metrics"]) => metrics(state),
        (&Method::GET, ["v1", "status"]) => json_reply(StatusCode::OK, &status(state)),
        (&Method::GET, ["v1", "members"]) => members(state).await,
        (&Method::GET, ["v1", "config"]) => get_config(state, &query).await,
        (&Method::GET, ["v1", "config", "history"]) => history(state),
        (&Method::PUT, ["v1", "config"]) => match authorized(&request, state) {
            Err(reply) => *reply,
            Ok(()) => put_config(request, state, &query).await,
        },
        (&Method::POST, ["v1", "config", "rollback"]) => match authorized(&request, state) {
            Err(reply) => *reply,
            Ok(()) => rollback(request, state).await,
        },
        (&Method::POST, ["v1", "tokens"]) => match authorized(&request, state) {
            Err(reply) => *reply,
            Ok(()) => create_token(request, state).await,
        },
        (&Method::DELETE, ["v1", "tokens", id]) => match authorized(&request, state) {
            Err(reply) => *reply,
            Ok(()) => revoke_token(state, id).await,
        },
        (&Method::POST, ["v1", "leave"]) => match authorized(&request, state) {
            Err(reply) => *reply,
            Ok(()) => leave(state).await,
        },
        (&Method::DELETE, ["v1", "members", id]) => match authorized(&request, state) {
            Err(reply) => *reply,
            Ok(()) => remove(state, id).await,
        },
        (
            _,
            ["healthz" | "readyz" | "metrics"]
            | ["v1", "status" | "members" | "config" | "tokens" | "leave"]
            | ["v1", "config", _]
            | ["v1", "members", _],
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{path} does not accept {method}"),
            &[],
        ),
        _ => error(StatusCode::NOT_FOUND, "not_found", &format!("no admin endpoint at {path}"), &[]),
    }
}

fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Checks `Authorization: Bearer TOKEN` against the cluster's admin token hash.
fn authorized(request: &Request<Incoming>, state: &AdminState) -> Result<(), Early> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this call needs the admin token: Authorization: Bearer TOKEN",
            &[],
        )));
    };
    let expected = state.cluster.state().identity.as_ref().map(|i| i.admin_token_sha256);
    match expected {
        Some(hash) if identity::constant_time_eq(&identity::sha256(presented.as_bytes()), &hash) => Ok(()),
        _ => Err(Box::new(error(StatusCode::UNAUTHORIZED, "unauthorized", "wrong admin token", &[]))),
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Early> {
    match Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is too large or broken",
            &[],
        ))),
    }
}

fn readyz(state: &AdminState) -> Reply {
    let cluster_revision = state.cluster.state().revision();
    let serving = state.dataplane.snapshot().revision;
    if state.tracker.is_draining() {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if state.cluster.metrics().current_leader.is_none() {
        text(StatusCode::SERVICE_UNAVAILABLE, "no raft leader known\n")
    } else if state.config_file.is_some() && serving == 0 {
        text(StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet\n")
    } else if serving < cluster_revision && state.dataplane.last_reload().is_none_or(|r| r.ok) {
        text(StatusCode::SERVICE_UNAVAILABLE, "catching up with the committed config\n")
    } else {
        text(StatusCode::OK, "ready\n")
    }
}

fn metrics(state: &AdminState) -> Reply {
    let cluster = &state.cluster;
    let raft = cluster.metrics();
    let membership = raft.membership_config.membership();
    let stats = &cluster.fabric.stats;
    let (proposals, proposed_writes) = cluster.proposals();
    state.dataplane.metrics.set_cluster(ClusterView {
        term: raft.current_term,
        is_leader: raft.current_leader == Some(cluster.node_id),
        last_log_index: raft.last_log_index.unwrap_or(0),
        applied_index: raft.last_applied.map_or(0, |l| l.index),
        committed_revision: cluster.state().revision(),
        voters: membership.voter_ids().count() as u64,
        learners: membership.learner_ids().count() as u64,
        fabric_refused_connections: stats.refused_connections.load(Ordering::Relaxed),
        fabric_bad_frames: stats.bad_frames.load(Ordering::Relaxed),
        proposals,
        proposed_writes,
    });
    if let Some(gossip) = cluster.gossip() {
        let counters = gossip.gossip.counters();
        let members = gossip.gossip.members();
        state.dataplane.metrics.set_gossip(GossipView {
            live_members: members.iter().filter(|m| m.liveness == gantry_gossip::Liveness::Alive).count() as u64,
            packets_in: counters.packets_in,
            packets_out: counters.packets_out,
            bytes_in: counters.bytes_in,
            bytes_out: counters.bytes_out,
            dropped: counters.dropped_by_reason().map(|(reason, count)| (reason.as_str(), count)).collect(),
            heartbeat_age: members
                .iter()
                .filter(|m| !m.is_self)
                .filter_map(|m| m.last_heard.map(|age| (m.node_id, age.as_secs_f64())))
                .collect(),
        });
    }
    let mut response = text(StatusCode::OK, state.dataplane.metrics.encode());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

fn status(state: &AdminState) -> Value {
    let snapshot = state.dataplane.snapshot();
    let settings = &state.dataplane.settings;
    let cluster = &state.cluster;
    let metrics = cluster.metrics();
    let replicated = cluster.state();
    json!({
        "node": { "id": cluster.node_id, "name": settings.name, "zone": settings.zone, "version": env!("CARGO_PKG_VERSION") },
        "cluster": {
            "id": cluster.cluster_id,
            "role": cluster.role(),
            "leader": metrics.current_leader,
            "term": metrics.current_term,
            "last_log_index": metrics.last_log_index,
            "applied_index": metrics.last_applied.map(|l| l.index),
            "snapshot_index": metrics.snapshot.map(|l| l.index),
            "voters": metrics.membership_config.membership().voter_ids().collect::<Vec<_>>(),
            "learners": metrics.membership_config.membership().learner_ids().collect::<Vec<_>>(),
        },
        "uptime_seconds": state.started.elapsed().as_secs(),
        "config": {
            "revision": snapshot.revision,
            "committed_revision": replicated.revision(),
            "file": state.config_file,
            "last_reload": state.dataplane.last_reload(),
        },
        "draining": state.tracker.is_draining(),
        "open_connections": state.tracker.active(),
        "listeners": snapshot.listeners.values().map(|l| json!({
            "name": &*l.name, "protocol": l.protocol, "address": l.address.to_string(),
        })).collect::<Vec<_>>(),
        "services": snapshot.services.values().map(|s| json!({
            "name": s.name,
            "endpoints": s.endpoints.iter().map(|e| json!({
                "address": e.address,
                "zone": e.zone,
                "subset": e.subset,
                "healthy": e.health.is_active_healthy(),
                "ejected": e.health.is_ejected(),
                "in_flight": e.health.in_flight(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn members(state: &AdminState) -> Reply {
    let cluster = &state.cluster;
    let metrics = cluster.metrics();
    let membership = metrics.membership_config.membership().clone();
    let replicated = cluster.state();
    let liveness = cluster.liveness().await.unwrap_or_default();
    let gossip_members = cluster.gossip().map(|g| g.gossip.members()).unwrap_or_default();
    let mut ids: std::collections::BTreeSet<u64> = replicated.nodes.keys().copied().collect();
    ids.extend(membership.nodes().map(|(id, _)| *id));
    let list: Vec<Value> = ids
        .into_iter()
        .map(|id| {
            let info = replicated.nodes.get(&id);
            let role = if membership.voter_ids().any(|v| v == id) {
                "voter"
            } else if membership.learner_ids().any(|l| l == id) {
                "learner"
            } else {
                "none"
            };
            let seen = liveness.get(&id);
            let gossiped = gossip_members.iter().find(|m| m.node_id == id);
            let gossip_liveness = gossiped.map(|m| match m.liveness {
                gantry_gossip::Liveness::Alive => "alive",
                gantry_gossip::Liveness::Suspect => "suspect",
                gantry_gossip::Liveness::Dead => "dead",
            });
            let gossip_state = gossiped.and_then(|m| m.state.clone());
            json!({
                "id": id,
                "name": info.map(|n| n.name.clone()),
                "zone": info.map(|n| n.zone.clone()),
                "fabric": info.map(|n| n.fabric.clone()),
                "admin": info.map(|n| n.admin.clone()),
                "role": role,
                "leader": metrics.current_leader == Some(id),
                "reachable": seen.map(|(ms, _)| *ms < 3_000),
                "last_seen_ms": seen.map(|(ms, _)| *ms),
                "applied_revision": gossip_state.as_ref().map(|s| s.config_revision).or(seen.map(|(_, rev)| *rev)),
                "liveness": gossip_liveness,
                "last_heard_ms": gossiped.and_then(|m| m.last_heard).map(|d| d.as_millis() as u64),
                "draining": gossip_state.as_ref().map(|s| s.draining),
                "load": gossip_state.as_ref().map(|s| json!({
                    "in_flight": s.load.in_flight,
                    "request_rate_per_s": s.load.request_rate_per_s,
                    "latency_ms_smoothed": s.load.latency_ms_smoothed,
                })),
            })
        })
        .collect();
    json_reply(StatusCode::OK, &json!({ "revision": replicated.revision(), "members": list }))
}

async fn get_config(state: &AdminState, query: &BTreeMap<String, String>) -> Reply {
    let revision = match query.get("revision").map(|r| r.parse::<u64>()) {
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "bad_request", "revision must be a number", &[]),
        None => None,
    };
    let consistent = query.get("consistent").is_some_and(|v| v == "true" || v == "1");
    let found = if consistent {
        match state.cluster.read_revision_linearizable(revision).await {
            Ok(found) => found,
            Err(e) => return cluster_error(e),
        }
    } else if revision.is_none() {
        // The revision this node serves.
        let snapshot = state.dataplane.snapshot();
        return json_reply(StatusCode::OK, &json!({ "revision": snapshot.revision, "config": &*snapshot.document }));
    } else {
        let replicated = state.cluster.state();
        revision.and_then(|r| replicated.revision_at(r).map(|found| Revision::clone(found)))
    };
    match found {
        Some(found) => {
            let config: Value = serde_json::from_str(&found.config_json).unwrap_or(Value::Null);
            json_reply(
                StatusCode::OK,
                &json!({ "revision": found.revision, "committed_at_unix_ms": found.committed_at_unix_ms, "config": config }),
            )
        }
        None if revision.is_none() => json_reply(StatusCode::OK, &json!({ "revision": 0, "config": {} })),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_revision",
            "that revision is not in the history (the last 100 are kept)",
            &[],
        ),
    }
}

fn history(state: &AdminState) -> Reply {
    let replicated = state.cluster.state();
    let list: Vec<Value> = replicated
        .history
        .iter()
        .map(|r| json!({ "revision": r.revision, "committed_at_unix_ms": r.committed_at_unix_ms, "rolled_back_from": r.rolled_back_from, "bytes": r.config_json.len() }))
        .collect();
    json_reply(StatusCode::OK, &json!({ "revision": replicated.revision(), "history": list }))
}

/// `If-Match: N` (or `?if_revision=N`) makes the write conditional.
fn if_revision(request: &Request<Incoming>, query: &BTreeMap<String, String>) -> Result<Option<u64>, Early> {
    let header =
        request.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(|v| v.trim_matches('"').to_string());
    match header.or_else(|| query.get("if_revision").cloned()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "If-Match / if_revision must be a revision number",
                &[],
            ))
        }),
    }
}

async fn put_config(request: Request<Incoming>, state: &AdminState, query: &BTreeMap<String, String>) -> Reply {
    let expected = match if_revision(&request, query) {
        Ok(expected) => expected,
        Err(reply) => return *reply,
    };
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(reply) => return *reply,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "the config must be UTF-8 text (YAML or JSON)", &[]);
    };
    match state.writer.apply_text(text, expected).await {
        Ok(revision) => json_reply(StatusCode::OK, &json!({ "revision": revision })),
        Err(e) => apply_error(e),
    }
}

async fn rollback(request: Request<Incoming>, state: &AdminState) -> Reply {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(reply) => return *reply,
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(to) = parsed.get("revision").and_then(Value::as_u64) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "send {\"revision\": N}", &[]);
    };
    let expected = parsed.get("if_revision").and_then(Value::as_u64);
    match state.writer.rollback(to, expected).await {
        Ok(revision) => json_reply(StatusCode::OK, &json!({ "revision": revision, "rolled_back_to": to })),
        Err(e) => apply_error(e),
    }
}

async fn create_token(request: Request<Incoming>, state: &AdminState) -> Reply {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(reply) => return *reply,
    };
    let parsed: Value = if body.is_empty() { json!({}) } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let ttl = match parsed.get("ttl").and_then(Value::as_str) {
        None => DEFAULT_TOKEN_TTL,
        Some(text) => match parse_duration(text) {
            Ok(ttl) if ttl >= Duration::from_secs(1) => ttl,
            Ok(_) => return error(StatusCode::BAD_REQUEST, "bad_request", "ttl must be at least 1s", &[]),
            Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", &format!("ttl: {message}"), &[]),
        },
    };
    match state.cluster.create_join_token(ttl).await {
        Ok(token) => json_reply(StatusCode::OK, &json!({ "token": token, "ttl_seconds": ttl.as_secs() })),
        Err(e) => cluster_error(e),
    }
}

async fn revoke_token(state: &AdminState, id: &str) -> Reply {
    // The id is the second part of a token (gtj1.ID.SECRET.PIN); a whole token is accepted too.
    let id = id.strip_prefix("gtj1.").map_or(id, |rest| rest.split('.').next().unwrap_or(rest));
    match state.cluster.commit(Command::RevokeJoinToken { id: id.to_string() }).await {
        Ok(_) => json_reply(StatusCode::OK, &json!({ "revoked": id })),
        Err(ClusterError::Refused(_)) => {
            error(StatusCode::NOT_FOUND, "unknown_token", &format!("no join token with id {id}"), &[])
        }
        Err(e) => cluster_error(e),
    }
}

async fn leave(state: &AdminState) -> Reply {
    let id = state.cluster.node_id;
    match state.cluster.remove_member(id).await {
        Ok(()) => {
            state.left.notify_one();
            json_reply(StatusCode::OK, &json!({ "left": id }))
        }
        Err(e) => cluster_error(e),
    }
}

async fn remove(state: &AdminState, id: &str) -> Reply {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the node id must be a number (see `gantry ctl members`)",
            &[],
        );
    };
    if id == state.cluster.node_id {
        return error(StatusCode::BAD_REQUEST, "bad_request", "use `gantry ctl leave` to remove this node itself", &[]);
    }
    let known = state.cluster.state().nodes.contains_key(&id)
        || state.cluster.metrics().membership_config.membership().get_node(&id).is_some();
    if !known {
        return error(StatusCode::NOT_FOUND, "unknown_node", &format!("node {id} is not a member"), &[]);
    }
    match state.cluster.remove_member(id).await {
        Ok(()) => json_reply(StatusCode::OK, &json!({ "removed": id })),
        Err(e) => cluster_error(e),
    }
}

fn apply_error(e: ApplyError) -> Reply {
    match e {
        ApplyError::Invalid(problems) => error(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            &format!("invalid config ({} problem{})", problems.len(), if problems.len() == 1 { "" } else { "s" }),
            &problems,
        ),
        ApplyError::Conflict { expected, current } => error(
            StatusCode::CONFLICT,
            "revision_conflict",
            &format!("expected revision {expected}, the current revision is {current}"),
            &[],
        ),
        ApplyError::UnknownRevision(r) => {
            error(StatusCode::NOT_FOUND, "unknown_revision", &format!("revision {r} is not in the history"), &[])
        }
        ApplyError::Cluster(e) => cluster_error(e),
    }
}

fn cluster_error(e: ClusterError) -> Reply {
    match e {
        ClusterError::NoLeader => error(StatusCode::SERVICE_UNAVAILABLE, "no_leader", &e.to_string(), &[]),
        ClusterError::Invalid(message) => error(StatusCode::BAD_REQUEST, "bad_request", &message, &[]),
        other => error(StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", &other.to_string(), &[]),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, code: &str, message: &str, details: &[Problem]) -> Reply {
    json_reply(status, &json!({ "error": { "code": code, "message": message, "details": details } }))
}
