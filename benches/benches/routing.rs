//! Route matching over 1,000 routes (see `gantry_benches::workload` for the mix).
//!
//! Subject: `gantry::routing::RouteTable` (hash maps per host, prefix lengths, a `RegexSet`).
//! Anchor: `gantry_benches::linear::LinearRouter`, the naive first-match scan over the same
//! routes, measured in the same run. The run ends with a table of table/linear ratios.
//!
//! Run: `cargo bench -p gantry-benches --bench routing`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use gantry::routing::RouteTable;
use gantry_benches::linear::LinearRouter;
use gantry_benches::report::{print_ratio_table, Pair};
use gantry_benches::workload::{
    miss_request, route_document, route_document_yaml, route_near, HostKind, OwnedRequest, PathKind, RouteKind,
};

const ROUTES: usize = 1000;

/// The requests measured: (case name, expected route index, request).
fn cases() -> Vec<(&'static str, Option<usize>, OwnedRequest)> {
    let prefix_on_exact_host = |k: &RouteKind| k.path == PathKind::Prefix && matches!(k.host, HostKind::Exact(_));
    let picks = [
        ("hit_start", route_near(ROUTES, 2, prefix_on_exact_host)),
        ("hit_middle", route_near(ROUTES, ROUTES / 2, prefix_on_exact_host)),
        ("hit_end", route_near(ROUTES, ROUTES - 1, prefix_on_exact_host)),
        (
            "hit_end_regex",
            route_near(ROUTES, ROUTES - 1, |k| k.path == PathKind::Regex && matches!(k.host, HostKind::Exact(_))),
        ),
        (
            "hit_end_header",
            route_near(ROUTES, ROUTES - 1, |k| k.path == PathKind::HeaderExact && matches!(k.host, HostKind::Exact(_))),
        ),
        (
            "hit_end_wildcard",
            route_near(ROUTES, ROUTES - 1, |k| k.path == PathKind::Prefix && matches!(k.host, HostKind::Wildcard(_))),
        ),
    ];
    let mut cases: Vec<_> =
        picks.into_iter().map(|(name, kind)| (name, Some(kind.index), kind.request_for())).collect();
    cases.push(("miss", None, miss_request()));
    cases
}

fn find(c: &mut Criterion) {
    let doc = route_document(ROUTES);
    let table =
        RouteTable::compile(doc.routes.iter().enumerate().map(|(i, r)| (&r.matcher, i))).expect("route table compiles");
    let linear = LinearRouter::compile(&doc.routes).expect("linear router compiles");
    assert_eq!(table.len(), ROUTES);
    assert_eq!(linear.len(), ROUTES);

    let mut group = c.benchmark_group("routing_find");
    for (name, expected, request) in cases() {
        // Both routers must give the same answer, or the comparison means nothing.
        let view = request.view();
        assert_eq!(table.find(&view).copied(), expected, "table, case {name}");
        assert_eq!(linear.find(&view), expected, "linear, case {name}");
        if let Some(i) = expected {
            eprintln!("routing_find/{name}: route {i} ({:?})", RouteKind::of(i));
        }
        group.bench_with_input(BenchmarkId::new("table", name), &request, |b, r| {
            b.iter(|| table.find(black_box(&r.view())).copied())
        });
        group.bench_with_input(BenchmarkId::new("linear", name), &request, |b, r| {
            b.iter(|| linear.find(black_box(&r.view())))
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let doc = route_document(ROUTES);
    let mut group = c.benchmark_group("routing_compile");
    // One iteration takes milliseconds (it compiles ~100 regexes; parsing takes tens): fewer
    // samples of equal length, as criterion advises for long routines.
    group.sample_size(20).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(3));
    group.bench_function(BenchmarkId::new("table", ROUTES), |b| {
        b.iter(|| {
            RouteTable::compile(black_box(&doc.routes).iter().enumerate().map(|(i, r)| (&r.matcher, i)))
                .expect("compiles")
        })
    });
    group.bench_function(BenchmarkId::new("linear", ROUTES), |b| {
        b.iter(|| LinearRouter::compile(black_box(&doc.routes)).expect("compiles"))
    });
    // For scale: parsing and validating the document the table is compiled from.
    let yaml = route_document_yaml(ROUTES);
    group.bench_function(BenchmarkId::new("parse_document", ROUTES), |b| {
        b.iter(|| gantry_proto::parse_document(black_box(&yaml)).expect("valid"))
    });
    group.finish();
}

fn main() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    find(&mut criterion);
    compile(&mut criterion);
    criterion.final_summary();

    let mut pairs: Vec<Pair> = cases()
        .iter()
        .map(|(name, _, _)| {
            Pair::new(*name, format!("routing_find/table/{name}"), format!("routing_find/linear/{name}"))
        })
        .collect();
    pairs.push(Pair::new(
        format!("compile {ROUTES} routes"),
        format!("routing_compile/table/{ROUTES}"),
        format!("routing_compile/linear/{ROUTES}"),
    ));
    print_ratio_table(
        &format!("routing: RouteTable vs linear scan, {ROUTES} routes"),
        "table",
        "linear",
        &pairs,
        started,
    );
}
