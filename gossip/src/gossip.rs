//! The [`Gossip`] handle: starts chitchat on the sealed transport, publishes the local node's
//! state, serves the member view and events, and carries key and member-set changes to the
//! transport.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::{
    spawn_chitchat, Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ListenerHandle,
    ProtocolVersion,
};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, watch, Mutex, Notify};
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::GossipConfig;
use crate::counters::GossipCounters;
use crate::key::{GossipKey, KeyRing};
use crate::state::{
    self, EndpointHealth, Load, NodeState, RaftRole, Update, Verdict, ZoneInFlight, MAX_ENDPOINTS_PER_NODE,
};
use crate::transport::{unix_ms, SealedTransport, TransportShared};
use crate::view::{self, ClusterView, EndpointReport, GossipEvent, MemberView, Observer, EVENT_CAPACITY};
use crate::{GossipError, NodeId};

/// A running gossip member. Dropping it stops gossip at once (as a crash would: peers notice
/// by failure detection); [`Gossip::shutdown`] stops it and waits until its sockets are closed.
pub struct Gossip {
    node_id: NodeId,
    generation: u64,
    local_addr: SocketAddr,
    advertise_addr: SocketAddr,
    handle: Option<ChitchatHandle>,
    chitchat: Arc<Mutex<Chitchat>>,
    shared: Arc<TransportShared>,
    wake: Arc<Notify>,
    events: broadcast::Sender<GossipEvent>,
    view: watch::Receiver<Arc<ClusterView>>,
    observer: Option<JoinHandle<()>>,
    _key_listener: ListenerHandle,
}

impl Gossip {
    /// Binds the gossip port and starts gossiping with the seeds.
    pub async fn start(config: GossipConfig) -> Result<Self, GossipError> {
        config.validate()?;
        let socket = UdpSocket::bind(config.listen_addr)
            .await
            .map_err(|source| GossipError::Bind { addr: config.listen_addr, source })?;
        let local_addr =
            socket.local_addr().map_err(|source| GossipError::Bind { addr: config.listen_addr, source })?;
        let advertise_addr = config.advertise_addr.unwrap_or(local_addr);
        let generation = config.generation.unwrap_or_else(unix_ms);
        let tuning = &config.tuning;
        let keys = KeyRing::new(&config.key, config.previous_key.as_ref())?;
        let members: HashSet<NodeId> = config.members.iter().copied().collect();
        let shared = Arc::new(TransportShared::new(config.node_id, tuning.max_clock_skew_ms, keys, members, socket));
        let transport = SealedTransport { shared: shared.clone() };

        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(view::chitchat_node_id(config.node_id), generation, advertise_addr),
            cluster_id: config.cluster_id.clone(),
            gossip_interval: tuning.gossip_interval(),
            listen_addr: local_addr,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: tuning.phi_threshold,
                sampling_window_size: tuning.sampling_window,
                max_interval: Duration::from_millis(tuning.max_interval_ms),
                initial_interval: Duration::from_millis(tuning.prior_interval_ms),
                dead_node_grace_period: Duration::from_millis(tuning.dead_node_grace_ms),
            },
            marked_for_deletion_grace_period: Duration::from_millis(tuning.tombstone_grace_ms),
            catchup_callback: None,
            extra_liveness_predicate: None,
            // Every gantry node runs chitchat 0.13, which decodes the compressed digest.
            protocol_version: ProtocolVersion::V1,
        };
        let initial = state::publish(&config.initial_state, &chitchat::NodeState::for_test()).set;
        let handle = spawn_chitchat(chitchat_config, initial, &transport).await.map_err(GossipError::chitchat)?;
        let chitchat = handle.chitchat();

        let wake = Arc::new(Notify::new());
        let key_listener = {
            let wake = wake.clone();
            // Called under chitchat's lock for every key a delta changes: only wake the observer.
            chitchat.lock().await.subscribe_event("", move |_| wake.notify_one())
        };
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let suspect_after = Duration::from_millis(tuning.suspect_after_ms);
        let (view_tx, view) = watch::channel(Arc::new(ClusterView::empty(config.node_id, suspect_after)));
        let observer = Observer {
            chitchat: chitchat.clone(),
            self_id: config.node_id,
            members: shared.members.subscribe(),
            wake: wake.clone(),
            events: events.clone(),
            view: view_tx,
            refresh: Duration::from_millis(tuning.view_refresh_ms),
            suspect_after,
        };
        let observer = tokio::spawn(observer.run());
        info!(node_id = config.node_id, generation, %local_addr, %advertise_addr, "gossip started");
        Ok(Self {
            node_id: config.node_id,
            generation,
            local_addr,
            advertise_addr,
            handle: Some(handle),
            chitchat,
            shared,
            wake,
            events,
            view,
            observer: Some(observer),
            _key_listener: key_listener,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The bound gossip address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise_addr
    }

    async fn update(&self, update: Update) {
        update.apply(self.chitchat.lock().await.self_node_state());
        self.wake.notify_one();
    }

    /// Publishes a whole state: every field, and health entries missing from `state` removed.
    pub async fn publish(&self, state: &NodeState) -> Result<(), GossipError> {
        state.validate()?;
        let mut chitchat = self.chitchat.lock().await;
        let node = chitchat.self_node_state();
        state::publish(state, node).apply(node);
        drop(chitchat);
        self.wake.notify_one();
        Ok(())
    }

    pub async fn set_load(&self, load: Load) {
        self.update(state::set_load(&load)).await;
    }

    pub async fn set_raft_role(&self, role: RaftRole) {
        self.update(state::set_raft_role(role)).await;
    }

    /// The config revision this node's data plane now runs.
    pub async fn set_config_revision(&self, revision: u64) {
        self.update(state::set_config_revision(revision)).await;
    }

    pub async fn set_draining(&self, draining: bool) {
        self.update(state::set_draining(draining)).await;
    }

    /// Publishes this node's verdict on one endpoint it checks.
    pub async fn set_endpoint_health(
        &self,
        service: &str,
        endpoint: &str,
        verdict: Verdict,
        checked_at_unix_ms: u64,
    ) -> Result<(), GossipError> {
        state::check_endpoint(service, endpoint).map_err(GossipError::InvalidEndpoint)?;
        let mut chitchat = self.chitchat.lock().await;
        let node = chitchat.self_node_state();
        let is_new = node.get(&state::health_key(service, endpoint)).is_none();
        if is_new && state::endpoint_entries(node) >= MAX_ENDPOINTS_PER_NODE {
            return Err(GossipError::TooManyEndpoints { limit: MAX_ENDPOINTS_PER_NODE });
        }
        state::set_endpoint_health(service, endpoint, EndpointHealth { verdict, checked_at_unix_ms }).apply(node);
        drop(chitchat);
        self.wake.notify_one();
        Ok(())
    }

    /// Publishes this node's in-flight requests by service and endpoint zone, replacing the
    /// previous map (entries missing from `map` are deleted).
    pub async fn set_zone_in_flight(&self, map: &ZoneInFlight) -> Result<(), GossipError> {
        state::check_zone_in_flight(map).map_err(GossipError::InvalidZoneLoad)?;
        let mut chitchat = self.chitchat.lock().await;
        let node = chitchat.self_node_state();
        state::set_zone_in_flight(map, node).apply(node);
        drop(chitchat);
        self.wake.notify_one();
        Ok(())
    }

    /// Stops publishing a verdict (the endpoint left the config, or this node stopped checking).
    pub async fn remove_endpoint_health(&self, service: &str, endpoint: &str) {
        self.update(state::remove_endpoint_health(service, endpoint)).await;
    }

    /// The latest snapshot of the member view (refreshed on every change and every
    /// `view_refresh_ms`). Never awaits.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn watch_view(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }

    /// Every member and this node, ordered by node id.
    pub fn members(&self) -> Vec<MemberView> {
        self.view().members()
    }

    pub fn member(&self, node_id: NodeId) -> Option<MemberView> {
        self.view().member(node_id)
    }

    /// Every member's latest verdict on one endpoint.
    pub fn endpoint_health(&self, service: &str, endpoint: &str) -> Vec<EndpointReport> {
        self.view().endpoint_health(service, endpoint)
    }

    /// Membership and state events; bounded (see [`EVENT_CAPACITY`]).
    pub fn subscribe(&self) -> broadcast::Receiver<GossipEvent> {
        self.events.subscribe()
    }

    /// Replaces the member set (the node calls it on every Raft membership change). Datagrams
    /// from other senders are dropped from now on and their state disappears from the view.
    pub fn set_members(&self, members: impl IntoIterator<Item = NodeId>) {
        let members: HashSet<NodeId> = members.into_iter().collect();
        self.shared.members.send_replace(Arc::new(members));
    }

    /// Replaces the keys: seal with `current`, also accept `previous` (during a rotation).
    pub fn set_keys(&self, current: &GossipKey, previous: Option<&GossipKey>) -> Result<(), GossipError> {
        self.shared.set_keys(KeyRing::new(current, previous)?);
        Ok(())
    }

    pub fn counters(&self) -> GossipCounters {
        self.shared.counters.snapshot()
    }

    /// The failure detector's current timeout for a member (time without a heartbeat after
    /// which it is declared dead), if it has enough samples.
    pub async fn failure_detection_timeout(&self, node_id: NodeId) -> Option<Duration> {
        let chitchat = self.chitchat.lock().await;
        let wanted = view::chitchat_node_id(node_id);
        let cid =
            chitchat.node_states().keys().filter(|cid| *cid.node_id == *wanted).max_by_key(|cid| cid.generation_id)?;
        chitchat.failure_detection_timeout(cid)
    }

    /// Stops gossip and waits until every task has ended and the gossip port is free.
    pub async fn shutdown(mut self) -> Result<(), GossipError> {
        let result = match self.handle.take() {
            Some(handle) => handle.shutdown().await.map_err(GossipError::chitchat),
            None => Ok(()),
        };
        if let Some(observer) = self.observer.take() {
            observer.abort();
            let _ = observer.await;
        }
        if let Some(recv) = self.shared.take_recv_task() {
            recv.abort();
            let _ = recv.await;
        }
        info!(node_id = self.node_id, "gossip stopped");
        result
    }

    /// Test hook: stalls this node's gossip loop (sending, and so receiving too) for `pause`,
    /// as a stopped or overloaded process would.
    #[cfg(feature = "testing")]
    pub fn pause_for(&self, pause: Duration) {
        self.shared.pause_until(tokio::time::Instant::now() + pause);
    }

    /// Test hook: the transport's loopback sockets, `[encoder, capture, decoder]`.
    #[cfg(feature = "testing")]
    pub fn loopback_addrs(&self) -> Vec<SocketAddr> {
        crate::transport::lock(&self.shared.loopback_addrs).clone()
    }
}

impl Drop for Gossip {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
        if let Some(observer) = &self.observer {
            observer.abort();
        }
        if let Some(recv) = self.shared.take_recv_task() {
            recv.abort();
        }
    }
}
