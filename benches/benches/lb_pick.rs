//! One endpoint pick per iteration, with each LB policy, through the same call the proxy makes:
//! `gantry::upstream::ServiceRuntime::pick` (pool choice, health and exclusion checks, the
//! balancer, the `Arc<Endpoint>` clone).
//!
//! Services have 3 and 100 endpoints (weight 1, loads of 0–4 requests in flight so least-loaded
//! policies have something to compare). `lb_pick_unhealthy` repeats the picks with every third
//! endpoint failing its active check.
//!
//! Anchor: a plain `AtomicUsize` round-robin modulo pick over the same endpoints (for the
//! unhealthy group, the same loop skipping unavailable endpoints), measured in the same run. The
//! run ends with a table of policy/anchor ratios.
//!
//! Run: `cargo bench -p gantry-benches --bench lb_pick`.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion};
use gantry::lb::hash64;
use gantry::upstream::{Endpoint, HealthRegistry, InFlightGuard, PickRequest, ServiceRuntime, UpstreamClient};
use gantry_benches::report::{print_ratio_table, Pair};
use gantry_benches::workload::{policy_name, service_document, POLICIES};
use gantry_proto::config::LbPolicy;

const SIZES: [usize; 2] = [3, 100];
/// Ring-hash keys cycled through, so lookups land all over the ring.
const KEYS: usize = 1024;
const ANCHOR: &str = "anchor_atomic_rr";

struct Setup {
    runtime: ServiceRuntime,
    /// Holds the simulated in-flight requests for the length of the benchmark.
    _in_flight: Vec<InFlightGuard>,
}

/// Endpoint `i` is down in the unhealthy variants: every third one (1 of 3, 33 of 100).
fn is_down(i: usize) -> bool {
    i % 3 == 1
}

fn setup(policy: LbPolicy, endpoints: usize, with_unhealthy: bool) -> Setup {
    let doc = service_document(policy, endpoints);
    let service = &doc.services[0];
    let health = HealthRegistry::default().adopt(&doc);
    let mut in_flight = Vec::new();
    for (i, endpoint) in service.endpoints.iter().enumerate() {
        let state = &health[&(service.name.clone(), endpoint.address.clone())];
        for _ in 0..(i * 7) % 5 {
            in_flight.push(state.start_request());
        }
        if with_unhealthy && is_down(i) {
            state.set_active_healthy(false);
        }
    }
    // Building the client needs no tokio runtime: hyper-util's pool spawns its idle reaper
    // only when a first connection is pooled.
    let client = UpstreamClient::for_service(service);
    let runtime = ServiceRuntime::compile(service, &health, None, client);
    assert_eq!(runtime.endpoints.len(), endpoints);
    Setup { runtime, _in_flight: in_flight }
}

fn hash_keys() -> Vec<u64> {
    (0..KEYS as u64).map(|i| hash64(&i.to_le_bytes())).collect()
}

/// The anchor: `cursor % n`, nothing else (no health check) when all endpoints are up.
fn anchor_pick(endpoints: &[Arc<Endpoint>], cursor: &AtomicUsize) -> Option<Arc<Endpoint>> {
    let i = cursor.fetch_add(1, Ordering::Relaxed) % endpoints.len();
    Some(endpoints[i].clone())
}

/// The anchor when some endpoints are down: the same cursor, skipping unavailable endpoints.
fn anchor_pick_available(endpoints: &[Arc<Endpoint>], cursor: &AtomicUsize) -> Option<Arc<Endpoint>> {
    for _ in 0..endpoints.len() {
        let i = cursor.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        if endpoints[i].health.is_available() {
            return Some(endpoints[i].clone());
        }
    }
    None
}

fn bench_group(c: &mut Criterion, group_name: &str, with_unhealthy: bool) {
    let keys = hash_keys();
    let mut group = c.benchmark_group(group_name);
    for n in SIZES {
        for policy in POLICIES {
            let setup = setup(policy, n, with_unhealthy);
            let ring = policy == LbPolicy::RingHash;
            // Sanity: picks succeed and never return a down endpoint.
            for k in &keys[..64] {
                let picked = setup
                    .runtime
                    .pick(&PickRequest { hash_key: ring.then_some(*k), ..PickRequest::default() })
                    .expect("an endpoint is available");
                assert!(picked.health.is_available(), "{group_name}: picked a down endpoint");
            }
            group.bench_function(BenchmarkId::new(policy_name(policy), n), |b| {
                let mut k = 0usize;
                b.iter(|| {
                    k = k.wrapping_add(1);
                    let request = PickRequest { hash_key: ring.then(|| keys[k % KEYS]), ..PickRequest::default() };
                    setup.runtime.pick(black_box(&request))
                })
            });
        }
        let setup = setup(LbPolicy::RoundRobin, n, with_unhealthy);
        let cursor = AtomicUsize::new(0);
        let endpoints = &setup.runtime.endpoints;
        group.bench_function(BenchmarkId::new(ANCHOR, n), |b| {
            if with_unhealthy {
                b.iter(|| anchor_pick_available(black_box(endpoints), &cursor))
            } else {
                b.iter(|| anchor_pick(black_box(endpoints), &cursor))
            }
        });
    }
    group.finish();
}

fn main() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_group(&mut criterion, "lb_pick", false);
    bench_group(&mut criterion, "lb_pick_unhealthy", true);
    criterion.final_summary();

    for (group, title) in [
        ("lb_pick", "lb_pick: ServiceRuntime::pick vs atomic round robin, all endpoints up"),
        ("lb_pick_unhealthy", "lb_pick_unhealthy: every third endpoint down (anchor skips down endpoints)"),
    ] {
        let pairs: Vec<Pair> = SIZES
            .iter()
            .flat_map(|n| {
                POLICIES.iter().map(move |p| {
                    Pair::new(
                        format!("{} / {n} endpoints", policy_name(*p)),
                        format!("{group}/{}/{n}", policy_name(*p)),
                        format!("{group}/{ANCHOR}/{n}"),
                    )
                })
            })
            .collect();
        print_ratio_table(title, "pick", "anchor", &pairs, started);
    }
}
