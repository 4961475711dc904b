//! The ng proxy: Kamailio (or any ng client) talks to it as if it were one rtpengine; it
//! spreads calls over a pool of rtpengine nodes.

pub mod allow;
pub mod config;
mod dropped;
pub mod handler;
mod in_flight;
mod log_limit;
pub mod metrics;
pub mod pool;
pub mod qos;
mod reply_cache;
mod server;
mod shared_redis;
pub mod sticky;

use crate::error::{Error, Result};
use allow::AllowList;
use config::ProxyConfig;
use dropped::Dropped;
use handler::Handler;
use in_flight::InFlight;
use pool::Pool;
use shared_redis::SharedRedis;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use sticky::Sticky;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

/// A started proxy; dropping it stops every task.
pub struct Proxy {
    pub handler: Arc<Handler>,
    /// Bound ng addresses, in the order of `ProxyConfig::listen`.
    pub ng_addrs: Vec<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    in_flight: InFlight,
    tasks: JoinSet<()>,
}

impl Proxy {
    pub async fn start(config: ProxyConfig) -> Result<Proxy> {
        config.validate().map_err(Error::Config)?;
        // Redis is optional on the call path: without it pins stay local and QoS is not
        // written.
        let redis = match &config.redis_url {
            Some(url) => {
                let client = warp_redis::client(url, config.redis_ca.as_deref())
                    .map_err(|e| Error::Config(e.to_string()))?;
                let shared =
                    SharedRedis::new(client).map_err(|e| Error::Config(format!("redis: {e}")))?;
                Some(Arc::new(shared))
            }
            None => None,
        };
        let pool = Pool::connect(&config.nodes, config.upstream, config.upstream.timeout).await?;
        let qos = redis.clone().map(qos::spawn_writer);
        let active_calls = pool
            .nodes
            .iter()
            .map(|n| (n.spec.name.clone(), n.metrics.active_calls_gauge()))
            .collect();
        let sticky = Sticky::new(redis, config.sticky_ttl, config.qos_interval, active_calls);
        let handler = Arc::new(Handler::new(pool, sticky, qos));
        let mut tasks = JoinSet::new();
        let in_flight = InFlight::default();
        let cookieless = Dropped::new("without cookie");
        let allow = AllowList::new(&config.allow);

        let mut ng_addrs = Vec::new();
        for listen in &config.listen {
            let socket = UdpSocket::bind(listen.addr).await?;
            ng_addrs.push(socket.local_addr()?);
            let serve = server::serve_udp(
                handler.clone(),
                socket,
                listen.set,
                in_flight.clone(),
                allow.clone(),
                cookieless.clone(),
            );
            tasks.spawn(serve);
        }

        let metrics_addr = match config.metrics {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                let (h, cookieless, allow) = (handler.clone(), cookieless.clone(), allow.clone());
                let render = Arc::new(move || {
                    let qos = h.qos.as_ref();
                    let totals = metrics::Totals {
                        qos_dropped: qos.map_or(0, |q| q.dropped()),
                        qos_refused: qos.map_or(0, |q| q.refused()),
                        datagrams_without_cookie: cookieless.total(),
                        datagrams_refused: allow.refused(),
                    };
                    metrics::render(h.pool.nodes.iter().map(|n| &n.metrics), totals)
                });
                tasks.spawn(metrics::serve(listener, render));
                Some(bound)
            }
            None => None,
        };

        let h = handler.clone();
        let interval = config.health_interval;
        tasks.spawn(async move {
            loop {
                h.pool.check_health().await;
                tokio::time::sleep(interval).await;
            }
        });

        let h = handler.clone();
        let qos_every = config.qos_interval;
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(qos_every).await;
                h.expire_pins().await;
                h.interim_qos(qos_every).await;
            }
        });

        Ok(Proxy {
            handler,
            ng_addrs,
            metrics_addr,
            in_flight,
            tasks,
        })
    }

    /// Runs until a task ends (they only end by panicking) or the process is stopped.
    pub async fn wait(&mut self) {
        if let Some(Err(e)) = self.tasks.join_next().await {
            tracing::error!("proxy task ended: {e}");
        }
    }

    /// Stops reading requests, then gives the ones being handled up to `within` to be
    /// answered: their nodes have acted on them, and a client that gets no reply
    /// retransmits to a proxy that no longer knows them. The number left unanswered.
    pub async fn stop(mut self, within: Duration) -> usize {
        self.tasks.shutdown().await;
        self.in_flight.settle(within).await
    }
}
