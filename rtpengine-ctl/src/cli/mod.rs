//! The `warp-rtpengine` command line: talk to an rtpengine node or the proxy, or run the proxy.

mod bench;
mod output;

use crate::bencode::Dict;
use crate::commands::{
    check_result, Answer, Command, Delete, Dtls, GetStatistics, Ice, List, MediaRequest, Offer,
    Ping, Query, Target, TransportProtocol,
};
use crate::proxy::allow::Network;
use crate::proxy::config::{ListenSpec, NodeSpec, ProxyConfig};
use crate::proxy::handler::{CMD_DRAIN, CMD_NODES, CMD_UNDRAIN};
use crate::{json, Client, Endpoint, Options};
use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warp_config::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "warp-rtpengine",
    version,
    about = "rtpengine ng client, node-pool proxy and load generator"
)]
pub struct Cli {
    /// ng endpoint: HOST:PORT or udp:HOST:PORT, tcp:HOST:PORT, http://HOST:PORT[/ng].
    // Text, resolved by the commands that use it: `proxy`, which ignores it in its
    // environment, must not fail to start on a name that does not resolve.
    #[arg(
        long,
        global = true,
        env = "WARP_RTPENGINE_NG",
        default_value = "127.0.0.1:2223"
    )]
    ng: String,
    /// Print the reply as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    /// Per-attempt timeout.
    #[arg(long, global = true, default_value_t = 1000)]
    timeout_ms: u64,
    /// UDP retransmissions after the first attempt.
    #[arg(long, global = true, default_value_t = 2)]
    retries: u32,
    #[command(subcommand)]
    command: Cmd,
}

/// The global options for talking to one ng endpoint, by id: `proxy` talks to its nodes
/// with options of its own.
const CLIENT_OPTIONS: [&str; 4] = ["ng", "json", "timeout_ms", "retries"];

impl Cli {
    /// The command line over the environment over the TOML file (warp-config's
    /// `[rtpengine]` and top level), or the error (a usage error: clap's exit) and exit.
    pub fn from_command_line() -> (Cli, Settings) {
        let settings = warp_config::load_or_exit(&warp_config::RTPENGINE, Cli::command());
        let cli = Cli::try_from_args(std::env::args_os(), &settings).unwrap_or_else(|e| e.exit());
        (cli, settings)
    }

    /// As `Parser::try_parse_from`, except that an env-backed option the environment
    /// does not set takes the value `settings` has for its variable, and that `proxy`
    /// neither shows the options for talking to one endpoint in its help nor takes them
    /// (before or after its name) only to ignore them. From the environment or the file
    /// they stay unnoticed: a shell set up for the client may start the proxy.
    pub fn try_from_args<I, T>(args: I, settings: &Settings) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = warp_config::fill_from_file(Cli::command(), settings);
        // clap gives a subcommand only the global options it lacks: hidden copies of its
        // own keep them out of proxy's help, yet parsed, to be refused below.
        let hidden: Vec<_> = command
            .get_arguments()
            .filter(|a| CLIENT_OPTIONS.contains(&a.get_id().as_str()))
            .map(|a| a.clone().global(false).hide(true))
            .collect();
        let mut command = command.mut_subcommand("proxy", |proxy| proxy.args(hidden));
        let matches = command.try_get_matches_from_mut(args)?;
        if let Some(("proxy", proxy)) = matches.subcommand() {
            let given = CLIENT_OPTIONS
                .iter()
                .find(|id| proxy.value_source(id) == Some(ValueSource::CommandLine));
            if let Some(id) = given {
                return Err(command.error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--{} is for talking to one ng endpoint and does not apply to \
                         proxy, whose nodes are set by --node, --node-timeout-ms and \
                         --node-retries",
                        id.replace('_', "-")
                    ),
                ));
            }
        }
        Cli::from_arg_matches(&matches)
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the ng proxy in front of a pool of rtpengine nodes.
    Proxy(ProxyArgs),
    /// Load generator: send COUNT pings (or queries) with CONCURRENCY in flight.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Client(Box<ClientCmd>),
}

#[derive(Subcommand, Debug)]
enum ClientCmd {
    /// Is the node (or the proxy and a node behind it) answering?
    Ping,
    /// Call-ids the node knows (through the proxy: all nodes).
    List {
        #[arg(long)]
        limit: Option<i64>,
    },
    /// A call's parties, streams and counters.
    Query {
        call_id: String,
        #[arg(long)]
        from_tag: Option<String>,
        #[arg(long)]
        to_tag: Option<String>,
    },
    /// The node's statistics.
    Stats,
    /// The proxy's node pool.
    Nodes,
    /// Stop sending new calls to a node (proxy only); its calls stay.
    Drain { node: String },
    /// Undo `drain`.
    Undrain { node: String },
    /// Send an offer; prints the rewritten SDP.
    Offer(MediaArgs),
    /// Send an answer (needs --to-tag); prints the rewritten SDP.
    Answer(MediaArgs),
    /// Delete a call; prints its final counters.
    Delete {
        #[arg(long)]
        call_id: String,
        #[arg(long)]
        from_tag: Option<String>,
        #[arg(long)]
        to_tag: Option<String>,
        /// Fail if the call does not exist.
        #[arg(long)]
        fatal: bool,
        #[arg(long)]
        delete_delay: Option<i64>,
    },
    /// Send any dictionary, given as JSON, e.g. '{"command":"block DTMF","call-id":"x"}'.
    Raw { dictionary: String },
}

#[derive(Args, Debug)]
struct MediaArgs {
    #[arg(long)]
    call_id: String,
    #[arg(long)]
    from_tag: String,
    #[arg(long)]
    to_tag: Option<String>,
    #[arg(long)]
    via_branch: Option<String>,
    /// SDP text.
    #[arg(long, conflicts_with = "sdp_file")]
    sdp: Option<String>,
    /// File holding the SDP (`-` for standard input).
    #[arg(long)]
    sdp_file: Option<String>,
    /// A flag, e.g. "trust address" (repeatable).
    #[arg(long = "flag")]
    flags: Vec<String>,
    /// origin, session connection, ... (repeatable).
    #[arg(long)]
    replace: Vec<String>,
    /// Logical interface names, from-side then to-side.
    #[arg(long)]
    direction: Vec<String>,
    #[arg(long)]
    ice: Option<Ice>,
    #[arg(long)]
    transport_protocol: Option<TransportProtocol>,
    #[arg(long)]
    rtcp_mux: Vec<String>,
    #[arg(long)]
    dtls: Option<Dtls>,
    #[arg(long)]
    sdes: Vec<String>,
    #[arg(long)]
    record_call: Option<bool>,
    #[arg(long)]
    codec_strip: Vec<String>,
    #[arg(long)]
    codec_offer: Vec<String>,
    #[arg(long)]
    codec_transcode: Vec<String>,
    #[arg(long)]
    codec_mask: Vec<String>,
    #[arg(long)]
    codec_except: Vec<String>,
    #[arg(long)]
    ptime: Option<i64>,
    /// Any other key, KEY=VALUE (value sent as a string; repeatable).
    #[arg(long = "set", value_parser = parse_key_value)]
    extra: Vec<(String, String)>,
}

#[derive(Args, Debug)]
struct ProxyArgs {
    /// ng listen address, HOST:PORT[=SET] (repeatable).
    #[arg(long, default_value = "127.0.0.1:2223")]
    listen: Vec<ListenSpec>,
    /// Network whose ng requests are answered, ADDRESS[/PREFIX] (repeatable); others are
    /// dropped unanswered. None: every source is answered.
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Network>,
    /// rtpengine node, [NAME=]HOST:PORT[,weight=N][,set=N] (repeatable).
    #[arg(long = "node", required = true)]
    nodes: Vec<NodeSpec>,
    /// Redis for shared pins and the QoS stream (redis://…, or rediss://… over TLS);
    /// used from when it first answers, so a Redis still down when the proxy starts is
    /// no reason to stop.
    #[arg(long, env = "WARP_REDIS_URL")]
    redis: Option<String>,
    /// With a rediss:// --redis: the PEM file of the CAs its certificate must chain to
    /// [default: the system's, /etc/ssl/certs/ca-certificates.crt]
    #[arg(long, env = "WARP_REDIS_CA", value_name = "FILE")]
    redis_ca: Option<PathBuf>,
    /// Prometheus /metrics listen address.
    #[arg(long, env = "WARP_RTPENGINE_METRICS")]
    metrics: Option<SocketAddr>,
    /// Per-attempt timeout towards a node.
    #[arg(long, default_value_t = 300)]
    node_timeout_ms: u64,
    #[arg(long, default_value_t = 1)]
    node_retries: u32,
    #[arg(long, default_value_t = 1000)]
    health_interval_ms: u64,
    #[arg(long, default_value_t = 300)]
    qos_interval_s: u64,
    #[arg(long, default_value_t = 7200)]
    sticky_ttl_s: u64,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s}: expected KEY=VALUE"))
}

/// Runs `cli`; `settings` is only named in the proxy's effective configuration.
pub async fn run(cli: Cli, settings: &Settings) -> anyhow::Result<()> {
    match run_command(cli, settings).await {
        Err(e) if e.is::<StdoutClosed>() => Ok(()),
        other => other,
    }
}

async fn run_command(cli: Cli, settings: &Settings) -> anyhow::Result<()> {
    let options = Options {
        timeout: Duration::from_millis(cli.timeout_ms),
        retries: cli.retries,
    };
    // A usage error, as clap's own: `main` exits with its status 2.
    let ng = || {
        cli.ng.parse::<Endpoint>().map_err(|e| {
            Cli::command().error(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{}' for '--ng <NG>': {e}", cli.ng),
            )
        })
    };
    match cli.command {
        Cmd::Proxy(args) => run_proxy(args, settings.file()).await,
        Cmd::Bench(args) => bench::run(&ng()?, options, args, cli.json).await,
        Cmd::Client(cmd) => {
            let ng = ng()?;
            let client = Client::connect(&ng, options)
                .await
                .with_context(|| format!("connecting to {ng}"))?;
            run_client(&client, Out { json: cli.json }, *cmd).await
        }
    }
}

async fn run_client(client: &Client, out: Out, cmd: ClientCmd) -> anyhow::Result<()> {
    match cmd {
        ClientCmd::Ping => {
            let started = Instant::now();
            let reply = out.send(client, &Ping).await?;
            out.print(&reply, || Ok(output::pong(started.elapsed())))
        }
        ClientCmd::List { limit } => {
            let reply = out.send(client, &List { limit }).await?;
            out.print(&reply, || {
                Ok(List::parse_reply(reply.clone())?.calls.join("\n"))
            })
        }
        ClientCmd::Query {
            call_id,
            from_tag,
            to_tag,
        } => {
            let target = Target {
                from_tag,
                to_tag,
                ..Target::call(call_id)
            };
            let reply = out.send(client, &Query(target)).await?;
            out.print(&reply, || {
                Ok(output::call_stats(&Query::parse_reply(reply.clone())?))
            })
        }
        ClientCmd::Stats => {
            let reply = out.send(client, &GetStatistics).await?;
            out.print(&reply, || {
                Ok(output::statistics(&GetStatistics::parse_reply(
                    reply.clone(),
                )?))
            })
        }
        ClientCmd::Nodes => {
            let reply = out.raw(client, &admin(CMD_NODES, None)).await?;
            out.print(&reply, || Ok(output::nodes(&reply)))
        }
        ClientCmd::Drain { node } => {
            let reply = out.raw(client, &admin(CMD_DRAIN, Some(&node))).await?;
            out.print(&reply, || Ok(format!("{node}: draining")))
        }
        ClientCmd::Undrain { node } => {
            let reply = out.raw(client, &admin(CMD_UNDRAIN, Some(&node))).await?;
            out.print(&reply, || Ok(format!("{node}: taking new calls")))
        }
        ClientCmd::Offer(args) => {
            let reply = out.send(client, &Offer(args.into_request()?)).await?;
            out.print(&reply, || Ok(Offer::parse_reply(reply.clone())?.sdp))
        }
        ClientCmd::Answer(args) => {
            if args.to_tag.is_none() {
                bail!("answer needs --to-tag");
            }
            let reply = out.send(client, &Answer(args.into_request()?)).await?;
            out.print(&reply, || Ok(Answer::parse_reply(reply.clone())?.sdp))
        }
        ClientCmd::Delete {
            call_id,
            from_tag,
            to_tag,
            fatal,
            delete_delay,
        } => {
            let call = Target {
                from_tag,
                to_tag,
                ..Target::call(call_id)
            };
            let cmd = Delete {
                call,
                fatal,
                delete_delay,
                ..Delete::default()
            };
            let reply = out.send(client, &cmd).await?;
            out.print(&reply, || {
                Ok(output::call_stats(&Delete::parse_reply(reply.clone())?))
            })
        }
        ClientCmd::Raw { dictionary } => {
            let dict =
                json::decode_dict(dictionary.as_bytes()).context("the dictionary argument")?;
            let reply = client.request(&dict).await?;
            // Raw replies are shown whatever their result: that is what raw is for.
            emit_json(&reply)
        }
    }
}

/// How replies are shown: the raw reply as JSON, or a human rendering of the typed reply.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    async fn send<C: Command>(&self, client: &Client, cmd: &C) -> anyhow::Result<Dict<'static>> {
        self.raw(client, &cmd.to_dict()).await
    }

    async fn raw(&self, client: &Client, request: &Dict<'_>) -> anyhow::Result<Dict<'static>> {
        Ok(check_result(client.request(request).await?)?)
    }

    fn print(
        &self,
        reply: &Dict<'_>,
        human: impl FnOnce() -> crate::Result<String>,
    ) -> anyhow::Result<()> {
        if self.json {
            emit_json(reply)
        } else {
            emit(human()?)
        }
    }
}

/// stdout was closed by its reader (`warp-rtpengine list | head -1`): not a failure.
#[derive(Debug, thiserror::Error)]
#[error("stdout closed")]
struct StdoutClosed;

/// Writes a result line to stdout. Unlike `println!`, which panics when the reader has
/// gone away, a closed pipe ends the command quietly.
fn emit(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

/// A reply as pretty JSON, for `--json` and `raw`.
fn emit_json(reply: &Dict<'_>) -> anyhow::Result<()> {
    emit(serde_json::to_string_pretty(&json::dict_to_json_lossy(
        reply,
    ))?)
}

fn admin<'a>(command: &'a str, node: Option<&'a str>) -> Dict<'a> {
    let mut d = Dict::new();
    d.insert("command", command);
    if let Some(n) = node {
        d.insert("node", n);
    }
    d
}

impl MediaArgs {
    fn into_request(self) -> anyhow::Result<MediaRequest> {
        let sdp = match (self.sdp, self.sdp_file.as_deref()) {
            (Some(s), _) => s,
            (None, Some("-")) => std::io::read_to_string(std::io::stdin())?,
            (None, Some(path)) => {
                std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
            }
            (None, None) => bail!("give the SDP with --sdp or --sdp-file"),
        };
        let call = Target {
            from_tag: Some(self.from_tag),
            to_tag: self.to_tag,
            via_branch: self.via_branch,
            ..Target::call(self.call_id)
        };
        let mut req = MediaRequest::new(call, sdp);
        req.flags = self.flags;
        req.replace = self.replace;
        req.direction = self.direction;
        req.ice = self.ice;
        req.transport_protocol = self.transport_protocol;
        req.rtcp_mux = self.rtcp_mux;
        req.dtls = self.dtls;
        req.sdes = self.sdes;
        req.record_call = self.record_call;
        req.codec.strip = self.codec_strip;
        req.codec.offer = self.codec_offer;
        req.codec.transcode = self.codec_transcode;
        req.codec.mask = self.codec_mask;
        req.codec.except = self.codec_except;
        req.ptime = self.ptime;
        for (k, v) in self.extra {
            req.extra.insert(k, v);
        }
        Ok(req)
    }
}

async fn run_proxy(args: ProxyArgs, config_file: Option<&Path>) -> anyhow::Result<()> {
    let config = ProxyConfig {
        listen: args.listen,
        allow: args.allow,
        nodes: args.nodes,
        redis_url: args.redis,
        redis_ca: args.redis_ca,
        metrics: args.metrics,
        upstream: Options {
            timeout: Duration::from_millis(args.node_timeout_ms),
            retries: args.node_retries,
        },
        health_interval: Duration::from_millis(args.health_interval_ms),
        qos_interval: Duration::from_secs(args.qos_interval_s),
        sticky_ttl: Duration::from_secs(args.sticky_ttl_s),
    };
    tracing::info!(
        listen = ?config.listen,
        allow = ?config.allow,
        nodes = ?config.nodes,
        redis = config.redis_url.as_deref().map(warp_redact::mask_password).as_deref(),
        redis_ca = ?config.redis_ca,
        metrics = ?config.metrics,
        upstream = ?config.upstream,
        health_interval = ?config.health_interval,
        qos_interval = ?config.qos_interval,
        sticky_ttl = ?config.sticky_ttl,
        config_file = ?config_file,
        "effective configuration"
    );
    let mut proxy = crate::proxy::Proxy::start(config).await?;
    tracing::info!(ng = ?proxy.ng_addrs, metrics = ?proxy.metrics_addr, "proxy listening");
    let qos = proxy.handler.qos.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = proxy.wait() => bail!("proxy stopped"),
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    // Stopping: the requests being handled are answered first (and their deletes'
    // QoS records queued), then queued QoS records get a moment to reach Redis; what
    // is left of either is counted, not dropped unseen.
    let unanswered = proxy.stop(REQUESTS_DRAIN).await;
    if unanswered > 0 {
        tracing::error!("{unanswered} ng requests being handled are left unanswered at shutdown");
    }
    if let Some(qos) = qos {
        let lost = qos.flush(QOS_FLUSH).await;
        if lost > 0 {
            tracing::error!("{lost} QoS records not written to Redis are lost at shutdown");
        }
    }
    Ok(())
}

/// How long a stopping proxy waits for the requests it is handling to be answered:
/// Kamailio's rtpengine module waits 5 × 1 s for a reply by default, so one later than
/// that is read by no one.
const REQUESTS_DRAIN: Duration = Duration::from_secs(5);

/// How long a stopping proxy waits for its queued QoS records to reach Redis.
const QOS_FLUSH: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_the_documented_forms() {
        let none = Settings::default();
        Cli::try_from_args(["warp-rtpengine", "--ng", "127.0.0.1:2223", "ping"], &none).unwrap();
        Cli::try_from_args(["warp-rtpengine", "query", "abc", "--json"], &none).unwrap();
        Cli::try_from_args(
            [
                "warp-rtpengine",
                "offer",
                "--call-id",
                "c",
                "--from-tag",
                "f",
                "--sdp",
                "v=0",
                "--ice",
                "remove",
                "--flag",
                "trust address",
                "--set",
                "label=x",
            ],
            &none,
        )
        .unwrap();
        Cli::try_from_args(
            [
                "warp-rtpengine",
                "proxy",
                "--node",
                "a=127.0.0.1:1,weight=2",
            ],
            &none,
        )
        .unwrap();
        let proxy = |allow: &str| {
            let args = ["warp-rtpengine", "proxy", "--node", "127.0.0.1:1"];
            Cli::try_from_args(
                args.into_iter().chain(["--allow", "::1", "--allow", allow]),
                &none,
            )
        };
        proxy("10.0.0.0/8").unwrap();
        let refused = proxy("10.0.0.5/8").unwrap_err();
        assert_eq!(refused.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(
            refused.to_string().contains(
                "invalid value '10.0.0.5/8' for '--allow <CIDR>': 10.0.0.5/8: host bits are set"
            ),
            "{refused}"
        );
        assert!(Cli::try_from_args(
            [
                "warp-rtpengine",
                "offer",
                "--call-id",
                "c",
                "--from-tag",
                "f",
                "--ice",
                "bogus"
            ],
            &none
        )
        .is_err());
    }
}
