//! The cluster across processes: bootstrap and two joins in three zones, config applied on a
//! follower and served everywhere, leader kill -9 with writes continuing, restart and catch-up,
//! a node restarted without a quorum serving its last config, snapshot install after compaction,
//! refused joins and removed nodes, CAS and auth.

use std::time::Duration;

use bytes::Bytes;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

fn web_config(backend: &Backend, marker: &str) -> String {
    format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services: [ {{ name: web, endpoints: [ {{ address: "{}" }} ] }} ]
routes: [ {{ name: {marker}, to: [ {{ service: web }} ] }} ]
"#,
        backend.addr
    )
}

/// Bootstraps n1 in zone a and joins n2 (b) and n3 (c); waits for three voters.
async fn three_zone_cluster(extra: &[&str]) -> Vec<Gantry> {
    let mut first = Gantry::spawn_member(MemberOptions { name: "n1", zone: "a", extra, ..Default::default() });
    first.wait_ready().await;
    let token = first.join_token();
    let mut nodes = vec![first];
    for (name, zone) in [("n2", "b"), ("n3", "c")] {
        let join = Some((nodes[0].fabric, token.clone()));
        let mut node = Gantry::spawn_member(MemberOptions { name, zone, join, extra, ..Default::default() });
        node.wait_ready().await;
        nodes.push(node);
    }
    let leader_admin = nodes[0].admin;
    eventually(WAIT, "three voters", || async move {
        get(&format!("http://{leader_admin}/v1/status"))
            .await
            .is_ok_and(|r| r.json()["cluster"]["voters"].as_array().is_some_and(|v| v.len() == 3))
    })
    .await;
    nodes
}

/// Applies `yaml` as revision 1 through n1 and waits until every node serves it.
async fn apply_first_revision(nodes: &[Gantry], yaml: &str) {
    let reply = nodes[0].put_config(&nodes[0].admin_token(), yaml).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    for node in nodes {
        wait_serving(node, 1).await;
    }
}

async fn leader_index(nodes: &[Gantry]) -> Option<usize> {
    for (i, node) in nodes.iter().enumerate() {
        if node.cluster_status().await["role"] == "leader" {
            return Some(i);
        }
    }
    None
}

async fn wait_serving(node: &Gantry, revision: u64) {
    let admin = node.admin;
    eventually(WAIT, &format!("node at {admin} serves revision {revision}"), || async move {
        get(&format!("http://{admin}/v1/config")).await.is_ok_and(|r| r.json()["revision"].as_u64() == Some(revision))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_zones_apply_failover_and_catch_up() {
    let backend = Backend::start("web").await;
    let mut nodes = three_zone_cluster(&[]).await;
    let token = nodes[0].admin_token();

    // Members: three voters in three zones, one leader (a follower may apply the promotion a
    // moment after the leader).
    let follower_admin = nodes[1].admin;
    eventually(WAIT, "a follower sees three voters", || async move {
        let members = get(&format!("http://{follower_admin}/v1/members")).await.map(|r| r.json()).unwrap_or_default();
        let list = members["members"].as_array().cloned().unwrap_or_default();
        list.len() == 3 && list.iter().all(|m| m["role"] == "voter")
    })
    .await;
    let members = get(&format!("http://{}/v1/members", nodes[1].admin)).await.expect("members").json();
    let list = members["members"].as_array().cloned().unwrap_or_default();
    let zones: std::collections::BTreeSet<_> =
        list.iter().map(|m| m["zone"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(zones.len(), 3, "{members}");

    // Apply on a follower; every node serves the same revision.
    let leader = leader_index(&nodes).await.expect("a leader");
    let follower = (leader + 1) % 3;
    let reply = nodes[follower].put_config(&token, &web_config(&backend, "r1")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let revision = reply.json()["revision"].as_u64().expect("revision");
    for node in &nodes {
        wait_serving(node, revision).await;
        let served = get(&node.url("/")).await.expect("proxied");
        assert_eq!(served.header("x-backend"), Some("web"));
    }
    let consistent = get(&format!("http://{}/v1/config?consistent=true", nodes[1].admin)).await.expect("read").json();
    assert_eq!(consistent["revision"].as_u64(), Some(revision));

    // A burst of concurrent writes, half to the leader and half forwarded by a follower: each
    // gets a revision of its own, and the leader group-commits them (fewer entries than writes).
    let proposals_before = nodes[leader].metric("gantry_raft_proposals").await;
    let writes_before = nodes[leader].metric("gantry_raft_proposed_writes").await;
    let burst: Vec<_> = (0..24)
        .map(|k| {
            let url = format!("http://{}/v1/config", nodes[if k % 2 == 0 { leader } else { follower }].admin);
            let bearer = format!("Bearer {token}");
            let body = Bytes::from(web_config(&backend, &format!("burst-{k}")));
            tokio::spawn(async move {
                let headers = [("authorization", bearer.as_str())];
                request(&client(), http::Method::PUT, &url, &headers, body).await.expect("put")
            })
        })
        .collect();
    let mut burst_revisions = Vec::new();
    for write in burst {
        let reply = write.await.expect("burst write");
        assert_eq!(reply.status, 200, "{}", reply.text());
        burst_revisions.extend(reply.json()["revision"].as_u64());
    }
    burst_revisions.sort_unstable();
    assert_eq!(burst_revisions, (revision + 1..=revision + 24).collect::<Vec<_>>());
    let proposals = nodes[leader].metric("gantry_raft_proposals").await - proposals_before;
    let writes = nodes[leader].metric("gantry_raft_proposed_writes").await - writes_before;
    assert!(writes >= 24, "only {writes} writes proposed by the leader");
    assert!(proposals < writes, "{writes} writes in {proposals} entries: no group commit");
    let revision = revision + 24;

    // Kill -9 the leader; the survivors elect a new one and keep taking writes.
    let old_leader = leader_index(&nodes).await.expect("a leader");
    nodes[old_leader].kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old_leader).collect();
    let mut next_revision = 0;
    for (k, i) in survivors.iter().cycle().take(4).enumerate() {
        let mut committed = None;
        for _ in 0..100 {
            let reply = nodes[*i].put_config(&token, &web_config(&backend, &format!("after-kill-{k}"))).await;
            if reply.status == 200 {
                committed = reply.json()["revision"].as_u64();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        next_revision = committed.expect("write through a survivor");
    }
    assert_eq!(next_revision, revision + 4);
    for i in &survivors {
        wait_serving(&nodes[*i], next_revision).await;
    }

    // The dead node comes back on its data dir and catches up by itself.
    nodes[old_leader].restart().await;
    wait_serving(&nodes[old_leader], next_revision).await;
    let history = get(&format!("http://{}/v1/config/history", nodes[old_leader].admin)).await.expect("history").json();
    let revisions: Vec<u64> =
        history["history"].as_array().into_iter().flatten().filter_map(|r| r["revision"].as_u64()).collect();
    assert_eq!(revisions, (1..=next_revision).collect::<Vec<_>>(), "same revision order everywhere");
}

/// A load balancer that restarts while its peers are down keeps serving the last config it
/// served: the node re-applies its own log up to the committed id it stored, without a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_without_a_quorum_serves_its_last_config() {
    let backend = Backend::start("web").await;
    let mut nodes = three_zone_cluster(&[]).await;
    apply_first_revision(&nodes, &web_config(&backend, "before-outage")).await;
    // Each node writes the committed log id in the background, a second after it changes
    // (with room to spare for a busy machine: the write itself takes milliseconds).
    tokio::time::sleep(gantry_raft_store::COMMITTED_FLUSH_DELAY + Duration::from_secs(2)).await;
    for node in nodes.iter_mut() {
        node.kill9();
    }
    let lone = &mut nodes[1];
    lone.launch();
    wait_serving(lone, 1).await;
    let served = get(&lone.url("/")).await.expect("proxied");
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.header("x-backend"), Some("web"));
}

/// The same after a clean stop, straight after a write: the node writes its last committed
/// log id as it stops, instead of up to a second later in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_cleanly_right_after_a_write_serves_it_alone_after_restart() {
    let backend = Backend::start("web").await;
    let mut nodes = three_zone_cluster(&[]).await;
    apply_first_revision(&nodes, &web_config(&backend, "first")).await;
    let reply = nodes[0].put_config(&nodes[0].admin_token(), &web_config(&backend, "second")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    for node in &nodes {
        wait_serving(node, 2).await;
    }
    for node in &nodes {
        node.signal("TERM");
    }
    for node in nodes.iter_mut() {
        assert_eq!(node.wait_exit(Duration::from_secs(20)).await, Some(0), "clean exit:\n{}", node.log());
    }
    let lone = &mut nodes[2];
    lone.launch();
    wait_serving(lone, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_install_after_compaction() {
    let backend = Backend::start("web").await;
    let mut nodes = three_zone_cluster(&["--raft-snapshot-logs", "5"]).await;
    let token = nodes[0].admin_token();
    let leader = leader_index(&nodes).await.expect("leader");
    let down = (leader + 1) % 3;
    nodes[down].kill9();
    let writer = (leader + 2) % 3;
    let mut revision = 0;
    for i in 0..25 {
        let reply = nodes[writer].put_config(&token, &web_config(&backend, &format!("r{i}"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        revision = reply.json()["revision"].as_u64().expect("revision");
    }
    // The leader compacted its log past what the stopped node has.
    let status = nodes[leader].cluster_status().await;
    assert!(status["snapshot_index"].as_u64().unwrap_or(0) > 10, "{status}");
    nodes[down].restart().await;
    wait_serving(&nodes[down], revision).await;
    let restored = nodes[down].cluster_status().await;
    assert!(restored["snapshot_index"].as_u64().unwrap_or(0) > 0, "the node installed a snapshot: {restored}");
    assert!(nodes[down].log().contains("snapshot"), "install logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_refused_and_removed_nodes_locked_out() {
    let mut first = Gantry::spawn_member(MemberOptions { name: "n1", zone: "a", ..Default::default() });
    first.wait_ready().await;
    let token = first.join_token();
    let admin = first.admin_token();

    // Wrong secret.
    let parts: Vec<&str> = token.split('.').collect();
    let wrong = format!("{}.{}.{}.{}", parts[0], parts[1], "00".repeat(16), parts[3]);
    let mut joiner = Gantry::spawn_member(MemberOptions {
        name: "bad",
        zone: "b",
        join: Some((first.fabric, wrong)),
        ..Default::default()
    });
    assert_eq!(joiner.wait_exit(WAIT).await, Some(1));
    assert!(joiner.log().contains("wrong join token secret"), "{}", joiner.log());

    // Expired token.
    let short = first.admin_call(http::Method::POST, "/v1/tokens", Some(&admin), r#"{"ttl":"1s"}"#).await.json()
        ["token"]
        .as_str()
        .expect("token")
        .to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut joiner = Gantry::spawn_member(MemberOptions {
        name: "late",
        zone: "b",
        join: Some((first.fabric, short)),
        ..Default::default()
    });
    assert_eq!(joiner.wait_exit(WAIT).await, Some(1));
    assert!(joiner.log().contains("expired"), "{}", joiner.log());

    // Revoked token.
    let revoked = first.admin_call(http::Method::POST, "/v1/tokens", Some(&admin), "").await.json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let reply = first.admin_call(http::Method::DELETE, &format!("/v1/tokens/{revoked}"), Some(&admin), "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut joiner = Gantry::spawn_member(MemberOptions {
        name: "revoked",
        zone: "b",
        join: Some((first.fabric, revoked)),
        ..Default::default()
    });
    assert_eq!(joiner.wait_exit(WAIT).await, Some(1));
    assert!(joiner.log().contains("revoked"), "{}", joiner.log());

    // A token of another cluster: the CA pin does not match, so the joiner refuses the server.
    let mut other = Gantry::spawn_member(MemberOptions { name: "other", zone: "z", ..Default::default() });
    other.wait_ready().await;
    let foreign = other.join_token();
    let mut joiner = Gantry::spawn_member(MemberOptions {
        name: "foreign",
        zone: "b",
        join: Some((first.fabric, foreign)),
        ..Default::default()
    });
    assert_eq!(joiner.wait_exit(WAIT).await, Some(1));
    assert!(joiner.log().contains("CA pin") || joiner.log().contains("certificate"), "{}", joiner.log());
    other.kill9();

    // A good join, then removal: the removed node's certificate is refused.
    let mut second = Gantry::spawn_member(MemberOptions {
        name: "n2",
        zone: "b",
        join: Some((first.fabric, token)),
        ..Default::default()
    });
    second.wait_ready().await;
    let members = get(&format!("http://{}/v1/members", first.admin)).await.expect("members").json();
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2), "{members}");
    let reply = first.admin_call(http::Method::DELETE, "/v1/members/2", Some(&admin), "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The removed node can no longer reach the cluster: its forwarded write is refused.
    let reply = second.put_config(&admin, "{}").await;
    assert_ne!(reply.status, 200, "{}", reply.text());
    let first_admin = first.admin;
    eventually(WAIT, "the removed node's connections are refused", || async move {
        get(&format!("http://{first_admin}/metrics")).await.is_ok_and(|r| {
            r.text().lines().any(|l| l.starts_with("gantry_fabric_refused_connections ") && !l.ends_with(" 0"))
        })
    })
    .await;
    let members = get(&format!("http://{}/v1/members", first.admin)).await.expect("members").json();
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1), "{members}");
    second.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_writes_validate_compare_and_authenticate() {
    let backend = Backend::start("web").await;
    let mut node = Gantry::spawn_member(MemberOptions { name: "n1", zone: "a", ..Default::default() });
    node.wait_ready().await;
    let token = node.admin_token();
    let good = web_config(&backend, "one");

    // No token, wrong token: 401 and nothing changes.
    let reply = node.admin_call(http::Method::PUT, "/v1/config", None, &good).await;
    assert_eq!(reply.status, 401);
    let reply = node.admin_call(http::Method::PUT, "/v1/config", Some("not-the-token"), &good).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["code"], "unauthorized");
    for path in ["/v1/tokens", "/v1/config/rollback", "/v1/leave"] {
        assert_eq!(node.admin_call(http::Method::POST, path, None, "{}").await.status, 401, "{path}");
    }
    assert_eq!(node.admin_call(http::Method::DELETE, "/v1/members/7", None, "").await.status, 401);
    assert_eq!(node.serving_revision().await, 0);

    let reply = node.put_config(&token, &good).await;
    assert_eq!((reply.status, reply.json()["revision"].as_u64()), (200, Some(1)));

    // Invalid: every problem listed, revision unchanged.
    let reply =
        node.put_config(&token, "routes: [ { name: a, to: [ { service: nope } ] }, { name: b, to: [] } ]").await;
    assert_eq!(reply.status, 400);
    let details = reply.json()["error"]["details"].as_array().cloned().unwrap_or_default();
    assert_eq!(details.len(), 2, "{details:?}");
    wait_serving(&node, 1).await;

    // Compare-and-set.
    let conditional = |expected: u64| {
        let token = token.clone();
        let yaml = web_config(&backend, &format!("cas{expected}"));
        let admin = node.admin;
        async move {
            let headers = [("authorization", format!("Bearer {token}")), ("if-match", expected.to_string())];
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(
                &client(),
                http::Method::PUT,
                &format!("http://{admin}/v1/config"),
                &headers,
                bytes::Bytes::from(yaml),
            )
            .await
            .expect("put")
        }
    };
    let reply = conditional(1).await;
    assert_eq!((reply.status, reply.json()["revision"].as_u64()), (200, Some(2)));
    let reply = conditional(1).await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.json()["error"]["code"], "revision_conflict");

    // History and rollback.
    let reply = node.admin_call(http::Method::POST, "/v1/config/rollback", Some(&token), r#"{"revision":1}"#).await;
    assert_eq!((reply.status, reply.json()["revision"].as_u64()), (200, Some(3)));
    wait_serving(&node, 3).await;
    let served = get(&format!("http://{}/v1/config", node.admin)).await.expect("config").json();
    assert_eq!(served["config"]["routes"][0]["name"], "one");
    let history = get(&format!("http://{}/v1/config/history", node.admin)).await.expect("history").json();
    assert_eq!(history["history"][2]["rolled_back_from"], 1);

    // The ctl client drives the same API.
    let ctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("ctl")
            .args(["--admin", &node.admin.to_string(), "--token", &token])
            .args(args)
            .output()
            .expect("ctl")
    };
    let out = ctl(&["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("leader"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = ctl(&["-o", "json", "members"]);
    let members: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(members["members"][0]["role"], "voter");
    let out = ctl(&["members"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    for column in ["LIVENESS", "APPLIED REV", "IN FLIGHT", "REQ/S"] {
        assert!(table.lines().next().is_some_and(|header| header.contains(column)), "{column} in {table}");
    }
    let file = node.dir.path().join("apply.yaml");
    std::fs::write(&file, web_config(&backend, "via-ctl")).expect("write");
    let out = ctl(&["apply", "-f", &file.display().to_string(), "--if-revision", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "committed revision 4");
    let out = ctl(&["apply", "-f", &file.display().to_string(), "--if-revision", "3"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: expected revision 3"), "{stderr}");
    let out = ctl(&["token", "create", "--ttl", "1h"]);
    assert!(String::from_utf8_lossy(&out.stdout).trim().starts_with("gtj1."));
    let out = ctl(&["config", "--revision", "1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: one"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_shared_and_every_node_stops_routing_to_a_failed_backend() {
    let backends = [Backend::start("web-a").await, Backend::start("web-b").await, Backend::start("web-c").await];
    let nodes = three_zone_cluster(&[]).await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - name: web
    lb: round_robin
    endpoints:
      - {{ address: "{}", zone: a }}
      - {{ address: "{}", zone: b }}
      - {{ address: "{}", zone: c }}
    health_check: {{ path: /health, interval: 500ms, timeout: 400ms, unhealthy: 1, healthy: 1 }}
routes: [ {{ name: web, to: [ {{ service: web }} ] }} ]
"#,
        backends[0].addr, backends[1].addr, backends[2].addr
    );
    apply_first_revision(&nodes, &yaml).await;
    // Each endpoint is checked by one node (its zone's), not by all three.
    let before: Vec<u64> =
        backends.iter().map(|b| b.state.health_hits.load(std::sync::atomic::Ordering::Relaxed)).collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (backend, before) in backends.iter().zip(before) {
        let hits = backend.state.health_hits.load(std::sync::atomic::Ordering::Relaxed) - before;
        // One checker at 2/s for 4 s is about 8; three checkers would be about 24.
        assert!(hits <= 14, "{} was checked {hits} times in 4 s: checks are not shared", backend.name);
        assert!(hits >= 4, "{} was checked only {hits} times", backend.name);
    }
    // The zone-b backend fails: every node stops routing to it.
    backends[1].set_health(503);
    for node in &nodes {
        let url = node.url("/");
        eventually(Duration::from_secs(5), "the failed backend is out of rotation", || {
            let url = url.clone();
            async move {
                let counts = spread(&url, 9, &[]).await;
                !counts.contains_key("web-b")
            }
        })
        .await;
    }
    // And it comes back everywhere once healthy.
    backends[1].set_health(200);
    for node in &nodes {
        let url = node.url("/");
        eventually(Duration::from_secs(5), "the backend is back in rotation", || {
            let url = url.clone();
            async move { spread(&url, 9, &[]).await.contains_key("web-b") }
        })
        .await;
    }
    // Gossip figures are exported.
    let metrics = get(&format!("http://{}/metrics", nodes[0].admin)).await.expect("metrics").text();
    assert!(metrics.contains("gantry_gossip_live_members 3"), "{metrics}");
    for name in ["gantry_gossip_packets_total{direction=\"in\"}", "gantry_gossip_bytes_total{direction=\"out\"}"] {
        assert!(metrics.lines().any(|l| l.starts_with(name) && !l.ends_with(" 0")), "{name} in {metrics}");
    }
    assert!(metrics.contains("gantry_gossip_heartbeat_age_seconds{peer=\"2\"}"), "{metrics}");
    assert!(metrics.contains("gantry_gossip_dropped_packets_total{reason=\"auth_failed\"} 0"), "{metrics}");
    // ctl members shows gossip liveness and the applied revision of every node.
    let members = get(&format!("http://{}/v1/members", nodes[2].admin)).await.expect("members").json();
    for member in members["members"].as_array().into_iter().flatten() {
        assert_eq!(member["liveness"], "alive", "{members}");
        assert_eq!(member["applied_revision"], 1, "{members}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_seen_dead_by_gossip_and_alive_again_after_restart() {
    let mut nodes = three_zone_cluster(&[]).await;
    nodes[2].kill9();
    let admin = nodes[0].admin;
    eventually(Duration::from_secs(5), "gossip declares the killed node dead", || async move {
        let members = get(&format!("http://{admin}/v1/members")).await.map(|r| r.json()).unwrap_or_default();
        members["members"].as_array().into_iter().flatten().any(|m| m["id"] == 3 && m["liveness"] == "dead")
    })
    .await;
    nodes[2].restart().await;
    eventually(Duration::from_secs(10), "the restarted node is alive again", || async move {
        let members = get(&format!("http://{admin}/v1/members")).await.map(|r| r.json()).unwrap_or_default();
        members["members"].as_array().into_iter().flatten().any(|m| m["id"] == 3 && m["liveness"] == "alive")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_saturated_by_another_nodes_traffic_spills_to_the_next_zone() {
    let backends = [Backend::start("web-a").await, Backend::start("web-b").await];
    let nodes = three_zone_cluster(&[]).await;
    // web-a (zone a) carries 2 in flight; x-pin sends a request to it from any node.
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - name: web
    locality: prefer_same_zone
    max_in_flight_per_endpoint: 2
    endpoints:
      - {{ address: "{}", zone: a, subset: pinned }}
      - {{ address: "{}", zone: b }}
routes:
  - {{ name: pinned, match: {{ headers: {{ x-pin: "a" }} }}, to: [ {{ service: web, subset: pinned }} ] }}
  - {{ name: web, to: [ {{ service: web }} ] }}
"#,
        backends[0].addr, backends[1].addr
    );
    apply_first_revision(&nodes, &yaml).await;
    let n1 = nodes[0].url("/");
    assert_eq!(spread(&n1, 6, &[]).await.get("web-a"), Some(&6), "zone a's node stays in zone a");

    // n3 (zone c, no endpoint of its own) holds 3 requests on web-a: n1 only learns of them
    // by gossip, and then sends its own traffic to zone b.
    let slow = nodes[2].url("/sleep/8000");
    let held: Vec<_> = (0..3)
        .map(|_| {
            let url = slow.clone();
            tokio::spawn(async move { spread(&url, 1, &[("x-pin", "a")]).await })
        })
        .collect();
    eventually(Duration::from_secs(6), "n1 spills to zone b while zone a is saturated", || {
        let url = n1.clone();
        async move { spread(&url, 1, &[]).await.contains_key("web-b") }
    })
    .await;
    let during = spread(&n1, 6, &[]).await;
    assert_eq!(during.get("web-b"), Some(&6), "{during:?}");
    for request in held {
        let counts = request.await.expect("held request");
        assert_eq!(counts.get("web-a"), Some(&1), "the pinned requests were served by web-a: {counts:?}");
    }
    // The load is gone: n1 comes home.
    eventually(Duration::from_secs(5), "n1 back in zone a", || {
        let url = n1.clone();
        async move { spread(&url, 3, &[]).await.get("web-a") == Some(&3) }
    })
    .await;
}
