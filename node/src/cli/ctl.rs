//! `gantry ctl`: the operator's client for a node's admin API. Human tables by default, `-o
//! json` for scripts; errors are one line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// Admin API of any node.
    #[arg(long, env = "GANTRY_ADMIN", default_value = "http://127.0.0.1:9900", global = true)]
    pub admin: String,
    /// Admin token (from the first node's data dir, file `admin-token`).
    #[arg(long, env = "GANTRY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Read the admin token from this file.
    #[arg(long, global = true, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// This node: id, zone, role, leader, term, log indexes, config revision.
    Status,
    /// Every member: role, reachability and the config revision it applied.
    Members,
    /// Validate a config file and commit it as a new revision.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Commit only if the current revision is this one (compare-and-set).
        #[arg(long)]
        if_revision: Option<u64>,
    },
    /// Print a config revision (default: the one this node serves).
    Config {
        #[arg(long)]
        revision: Option<u64>,
        /// Read through the leader (linearizable).
        #[arg(long)]
        consistent: bool,
    },
    /// The last committed revisions.
    History,
    /// Commit an old revision's document as a new revision.
    Rollback {
        revision: u64,
        #[arg(long)]
        if_revision: Option<u64>,
    },
    /// Join tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Take the node behind --admin out of the cluster, gracefully.
    Leave,
    /// Remove a dead node from the cluster; its certificate is refused from then on.
    Remove { node: u64 },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create a join token and print it alone on stdout.
    Create {
        #[arg(long, default_value = "24h")]
        ttl: String,
    },
    /// Revoke a join token (give the token or its id): joins with it are refused from then on.
    Revoke { token: String },
}

pub fn run(args: CtlArgs) -> i32 {
    crate::cli::run_to_exit_code(false, execute(args))
}

struct Api {
    base: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut request = http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request =
            request.body(Full::new(body.unwrap_or_default())).with_context(|| format!("bad admin URL {url}"))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .with_context(|| format!("{url} did not answer within 30 s"))?
            .with_context(|| format!("cannot reach the admin API at {} (set --admin or GANTRY_ADMIN)", self.base))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.context("reading the answer")?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            return Ok(value);
        }
        let message = value["error"]["message"].as_str().unwrap_or("request failed").to_string();
        let details: Vec<String> = value["error"]["details"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|d| format!("{}: {}", d["path"].as_str().unwrap_or(""), d["message"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        if details.is_empty() {
            bail!("{message} ({status})")
        }
        bail!("{message} ({status}):\n  {}", details.join("\n  "))
    }
}

fn read_token(args: &CtlArgs) -> anyhow::Result<Option<String>> {
    match (&args.token, &args.token_file) {
        (Some(token), _) => Ok(Some(token.trim().to_string())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            Ok(Some(text.trim().to_string()))
        }
        (None, None) => Ok(None),
    }
}

async fn execute(args: CtlArgs) -> anyhow::Result<()> {
    let base = if args.admin.contains("://") { args.admin.clone() } else { format!("http://{}", args.admin) };
    let api = Api { base, token: read_token(&args)?, client: Client::builder(TokioExecutor::new()).build_http() };
    let json = args.output == Output::Json;
    match &args.command {
        CtlCommand::Status => {
            let status = api.call(http::Method::GET, "/v1/status", None, &[]).await?;
            if json {
                return print_json(&status);
            }
            let c = &status["cluster"];
            let rows = vec![
                ("node", format!("{} ({})", status["node"]["id"], text(&status["node"]["name"]))),
                ("zone", text(&status["node"]["zone"])),
                ("cluster", text(&c["id"])),
                ("role", text(&c["role"])),
                ("leader", text(&c["leader"])),
                ("term", text(&c["term"])),
                ("last log index", text(&c["last_log_index"])),
                ("applied index", text(&c["applied_index"])),
                (
                    "config revision",
                    format!("{} (committed {})", status["config"]["revision"], status["config"]["committed_revision"]),
                ),
            ];
            for (key, value) in rows {
                println!("{key:<16} {value}");
            }
            if status["config"]["last_reload"]["ok"] == false {
                println!("last reload      refused:");
                for problem in status["config"]["last_reload"]["problems"].as_array().into_iter().flatten() {
                    println!("  {}: {}", text(&problem["path"]), text(&problem["message"]));
                }
            }
        }
        CtlCommand::Members => {
            let members = api.call(http::Method::GET, "/v1/members", None, &[]).await?;
            if json {
                return print_json(&members);
            }
            let mut rows = vec![[
                "ID",
                "NAME",
                "ZONE",
                "ROLE",
                "LIVENESS",
                "LAST HEARD",
                "RAFT REACH",
                "APPLIED REV",
                "IN FLIGHT",
                "REQ/S",
            ]
            .map(String::from)
            .to_vec()];
            for m in members["members"].as_array().into_iter().flatten() {
                let role =
                    if m["leader"] == true { format!("{} (leader)", text(&m["role"])) } else { text(&m["role"]) };
                // Gossip liveness (alive / suspect / dead) when gossip runs; the leader's pings
                // otherwise.
                let liveness = match (m["liveness"].as_str(), m["reachable"].as_bool()) {
                    (Some(gossip), _) => gossip.to_string(),
                    (None, Some(true)) => "alive".into(),
                    (None, Some(false)) => "unreachable".into(),
                    (None, None) => "unknown".into(),
                };
                let heard = m["last_heard_ms"]
                    .as_u64()
                    .or(m["last_seen_ms"].as_u64())
                    .map_or("-".to_string(), |ms| format!("{:.1}s ago", ms as f64 / 1000.0));
                let reach = match m["reachable"].as_bool() {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                };
                let mut revision = text(&m["applied_revision"]);
                if m["draining"] == true {
                    revision.push_str(" (draining)");
                }
                rows.push(vec![
                    text(&m["id"]),
                    text(&m["name"]),
                    text(&m["zone"]),
                    role,
                    liveness,
                    heard,
                    reach.into(),
                    revision,
                    // The node's own gossiped load (requests to its upstreams), once a second.
                    m["load"]["in_flight"].as_u64().map_or("-".into(), |n| n.to_string()),
                    m["load"]["request_rate_per_s"].as_f64().map_or("-".into(), |r| format!("{r:.0}")),
                ]);
            }
            print_table(&rows);
            println!("committed revision: {}", members["revision"]);
        }
        CtlCommand::Apply { file, if_revision } => {
            let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let headers: Vec<(&str, String)> = if_revision.iter().map(|r| ("if-match", r.to_string())).collect();
            let result = api.call(http::Method::PUT, "/v1/config", Some(Bytes::from(body)), &headers).await?;
            if json {
                return print_json(&result);
            }
            println!("committed revision {}", result["revision"]);
        }
        CtlCommand::Config { revision, consistent } => {
            let mut query = Vec::new();
            if let Some(r) = revision {
                query.push(format!("revision={r}"));
            }
            if *consistent {
                query.push("consistent=true".into());
            }
            let path =
                if query.is_empty() { "/v1/config".to_string() } else { format!("/v1/config?{}", query.join("&")) };
            let config = api.call(http::Method::GET, &path, None, &[]).await?;
            if json {
                return print_json(&config);
            }
            println!("# revision {}", config["revision"]);
            print!("{}", serde_saphyr::to_string(&config["config"]).context("cannot print the config as YAML")?);
        }
        CtlCommand::History => {
            let history = api.call(http::Method::GET, "/v1/config/history", None, &[]).await?;
            if json {
                return print_json(&history);
            }
            let mut rows = vec![["REVISION", "COMMITTED (UNIX MS)", "ROLLBACK OF", "BYTES"].map(String::from).to_vec()];
            for r in history["history"].as_array().into_iter().flatten().rev() {
                rows.push(vec![
                    text(&r["revision"]),
                    text(&r["committed_at_unix_ms"]),
                    text(&r["rolled_back_from"]),
                    text(&r["bytes"]),
                ]);
            }
            print_table(&rows);
        }
        CtlCommand::Rollback { revision, if_revision } => {
            let body = serde_json::json!({ "revision": revision, "if_revision": if_revision }).to_string();
            let result = api.call(http::Method::POST, "/v1/config/rollback", Some(Bytes::from(body)), &[]).await?;
            if json {
                return print_json(&result);
            }
            println!("committed revision {} (the document of revision {revision})", result["revision"]);
        }
        CtlCommand::Token { command: TokenCommand::Create { ttl } } => {
            let body = serde_json::json!({ "ttl": ttl }).to_string();
            let result = api.call(http::Method::POST, "/v1/tokens", Some(Bytes::from(body)), &[]).await?;
            if json {
                return print_json(&result);
            }
            println!("{}", text(&result["token"]));
        }
        CtlCommand::Token { command: TokenCommand::Revoke { token } } => {
            let id = token.strip_prefix("gtj1.").map_or(token.as_str(), |rest| rest.split('.').next().unwrap_or(rest));
            let result = api.call(http::Method::DELETE, &format!("/v1/tokens/{id}"), None, &[]).await?;
            if json {
                return print_json(&result);
            }
            println!("join token {id} revoked");
        }
        CtlCommand::Leave => {
            let result = api.call(http::Method::POST, "/v1/leave", None, &[]).await?;
            if json {
                return print_json(&result);
            }
            println!("node {} left the cluster and is stopping", result["left"]);
        }
        CtlCommand::Remove { node } => {
            let result = api.call(http::Method::DELETE, &format!("/v1/members/{node}"), None, &[]).await?;
            if json {
                return print_json(&result);
            }
            println!("node {node} removed; its certificate is refused from now on");
        }
    }
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> =
            row.iter().enumerate().map(|(i, cell)| format!("{cell:<width$}", width = widths[i])).collect();
        println!("{}", line.join("  ").trim_end());
    }
}
