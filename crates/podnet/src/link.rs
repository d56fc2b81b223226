//! Applying a [`Plan`] through rtnetlink: routes tagged with [`ROUTE_PROTOCOL`] (so ours are told
//! apart from everyone else's, and removed by [`Netlink::cleanup`]), the VXLAN device, its
//! neighbour and forwarding-database entries. Each sync reads what the kernel holds and changes
//! only the difference, so a route or entry removed by hand comes back at the next resync.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt as _;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, LinkVxlan, RouteMessageBuilder};

use crate::plan::{
    self, Neighbour, Plan, Route, Vtep, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI,
};

/// The `proto` of the routes ferry adds (`ip route show proto 77`): not one of the numbers
/// iproute2 names.
pub const ROUTE_PROTOCOL: u8 = 77;

const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const ENODEV: i32 = 19;
const EEXIST: i32 = 17;

/// A netlink request that failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Request {
        /// What was asked.
        what: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
}

fn request(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Request { what, source }
}

/// The errno a failed request carries (positive), if any.
fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|c| -c.get()),
        _ => None,
    }
}

/// A route-netlink connection (its reader runs as a task of the current runtime).
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the socket and spawns its reader.
    pub fn connect() -> Result<Netlink, LinkError> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The IPv4 addresses of this network namespace.
    pub async fn own_addresses(&self) -> Result<Vec<Ipv4Addr>, LinkError> {
        let mut found = Vec::new();
        let mut stream = self.handle.address().get().execute();
        while let Some(message) = stream
            .try_next()
            .await
            .map_err(request("listing addresses"))?
        {
            for attribute in &message.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = attribute {
                    found.push(*ip);
                }
            }
        }
        Ok(found)
    }

    /// The index of the device named `name`, if there is one.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, LinkError> {
        let result = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await;
        match result {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(request(format!("looking up {name}"))(e)),
        }
    }

    /// The MTU of the device holding `ip` (the overlay's underlay), 1500 if none does.
    pub async fn mtu_of_device_with(&self, ip: Ipv4Addr) -> Result<u32, LinkError> {
        let mut addresses = self.handle.address().get().execute();
        let mut index = None;
        while let Some(message) = addresses
            .try_next()
            .await
            .map_err(request("listing addresses"))?
        {
            let holds = message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(a)) if *a == ip));
            if holds {
                index = Some(message.header.index);
            }
        }
        let Some(index) = index else {
            return Ok(1500);
        };
        let attributes = self.link_attributes(index, "the underlay device").await?;
        Ok(attributes
            .into_iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(mtu),
                _ => None,
            })
            .unwrap_or(1500))
    }

    /// The attributes of the device `index` (none if it is gone); `what` names it in errors.
    async fn link_attributes(
        &self,
        index: u32,
        what: &str,
    ) -> Result<Vec<LinkAttribute>, LinkError> {
        let link = self
            .handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .map_err(request(format!("reading {what}")))?;
        Ok(link.map(|l| l.attributes).unwrap_or_default())
    }

    /// The VXLAN device's local address, if the device exists.
    async fn vxlan_local(&self, index: u32) -> Result<Option<Ipv4Addr>, LinkError> {
        let attributes = self.link_attributes(index, VXLAN_DEVICE).await?;
        let infos = attributes.into_iter().filter_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => Some(infos),
            _ => None,
        });
        for info in infos.flatten() {
            if let LinkInfo::Data(InfoData::Vxlan(data)) = info {
                return Ok(data.iter().find_map(|d| match d {
                    InfoVxlan::Local(ip) => Some(*ip),
                    _ => None,
                }));
            }
        }
        Ok(None)
    }

    /// Makes sure [`VXLAN_DEVICE`] exists for `vtep` (re-created if its local end changed), is
    /// up, has the underlay's MTU less [`VXLAN_OVERHEAD`] and holds the VTEP address; returns
    /// its index.
    pub async fn ensure_vxlan(&self, vtep: &Vtep) -> Result<u32, LinkError> {
        if let Some(index) = self.link_index(VXLAN_DEVICE).await? {
            if self.vxlan_local(index).await? == Some(vtep.local) {
                self.ensure_vtep_address(index, vtep.address).await?;
                return Ok(index);
            }
            self.handle
                .link()
                .del(index)
                .execute()
                .await
                .map_err(request(format!("deleting the stale {VXLAN_DEVICE}")))?;
        }
        let mtu = self.mtu_of_device_with(vtep.local).await? - VXLAN_OVERHEAD;
        let message = LinkVxlan::new(VXLAN_DEVICE, VXLAN_VNI)
            .local(vtep.local)
            .port(VXLAN_PORT)
            .learning(false)
            .mtu(mtu)
            .address(vtep.mac.to_vec())
            .up()
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(request(format!("creating {VXLAN_DEVICE}")))?;
        let index = self
            .link_index(VXLAN_DEVICE)
            .await?
            .ok_or_else(|| LinkError::Request {
                what: format!("{VXLAN_DEVICE} vanished after it was created"),
                source: rtnetlink::Error::RequestFailed,
            })?;
        self.ensure_vtep_address(index, vtep.address).await?;
        tracing::info!(device = VXLAN_DEVICE, local = %vtep.local, mtu, "VXLAN device created");
        Ok(index)
    }

    async fn ensure_vtep_address(&self, index: u32, address: Ipv4Addr) -> Result<(), LinkError> {
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(address), 32)
            .execute()
            .await
        {
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            other => other.map_err(request(format!("adding {address}/32 to {VXLAN_DEVICE}"))),
        }
    }

    /// Our routes in the main table.
    pub async fn routes(&self, vxlan: Option<u32>) -> Result<Vec<Route>, LinkError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut stream = self.handle.route().get(query).execute();
        let mut routes = Vec::new();
        while let Some(message) = stream.try_next().await.map_err(request("listing routes"))? {
            if message.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL) {
                continue;
            }
            if let Some(route) = parse_route(&message, vxlan) {
                routes.push(route);
            }
        }
        Ok(routes)
    }

    /// Adds (or replaces) one route.
    pub async fn add_route(&self, route: &Route, vxlan: Option<u32>) -> Result<(), LinkError> {
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.destination.network, route.destination.prefix)
            .gateway(route.gateway)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL));
        if route.via_vxlan {
            let Some(index) = vxlan else {
                return Ok(());
            };
            builder = builder.output_interface(index).onlink();
        }
        self.handle
            .route()
            .add(builder.build())
            .replace()
            .execute()
            .await
            .map_err(request(format!(
                "adding the route to {} via {}",
                route.destination, route.gateway
            )))
    }

    async fn delete_route(&self, message: RouteMessage, shown: String) -> Result<(), LinkError> {
        match self.handle.route().del(message).execute().await {
            Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT)) => Ok(()),
            other => other.map_err(request(format!("deleting the route to {shown}"))),
        }
    }

    /// Deletes one of our routes.
    pub async fn remove_route(&self, route: &Route) -> Result<(), LinkError> {
        let message = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.destination.network, route.destination.prefix)
            .gateway(route.gateway)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build();
        self.delete_route(message, route.destination.to_string())
            .await
    }

    /// The VXLAN device's permanent neighbours joined with its forwarding entries (a neighbour
    /// without a forwarding entry, or the reverse, is listed with what it has, so the diff
    /// replaces it).
    pub async fn neighbours(&self, vxlan: u32) -> Result<Vec<Neighbour>, LinkError> {
        let mut arp = Vec::new();
        let mut fdb = std::collections::HashMap::new();
        // One dump per family: IPv4 neighbours, then the bridge family's forwarding entries.
        let mut messages: Vec<NeighbourMessage> = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Bridge] {
            let dump = self.handle.neighbours().get().set_address_family(family);
            messages.extend(
                dump.execute()
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(request("listing neighbours"))?,
            );
        }
        for message in messages {
            if message.header.ifindex != vxlan {
                continue;
            }
            let mac = message.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(mac) => <[u8; 6]>::try_from(&mac[..]).ok(),
                _ => None,
            });
            let ip = message.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                // The bridge family's destinations come as raw bytes.
                NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => {
                    <[u8; 4]>::try_from(&raw[..]).ok().map(Ipv4Addr::from)
                }
                _ => None,
            });
            match (message.header.family, mac, ip) {
                (AddressFamily::Inet, Some(mac), Some(ip)) => arp.push((ip, mac)),
                (AddressFamily::Bridge, Some(mac), Some(ip)) => {
                    fdb.insert(mac, ip);
                }
                _ => {}
            }
        }
        Ok(arp
            .into_iter()
            .map(|(address, mac)| Neighbour {
                address,
                mac,
                node_ip: fdb.get(&mac).copied().unwrap_or(Ipv4Addr::UNSPECIFIED),
            })
            .collect())
    }

    /// Adds (or replaces) a peer's neighbour and forwarding entries.
    pub async fn add_neighbour(&self, vxlan: u32, peer: &Neighbour) -> Result<(), LinkError> {
        self.handle
            .neighbours()
            .add(vxlan, IpAddr::V4(peer.address))
            .link_layer_address(&peer.mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(request(format!("adding the neighbour {}", peer.address)))?;
        self.handle
            .neighbours()
            .add_bridge(vxlan, &peer.mac)
            .destination(IpAddr::V4(peer.node_ip))
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(request(format!(
                "adding the forwarding entry to {}",
                peer.node_ip
            )))
    }

    /// Deletes a peer's neighbour and forwarding entries.
    pub async fn remove_neighbour(&self, vxlan: u32, peer: &Neighbour) -> Result<(), LinkError> {
        let mut arp = NeighbourMessage::default();
        arp.header.family = AddressFamily::Inet;
        arp.header.ifindex = vxlan;
        arp.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                peer.address,
            )));
        let mut fdb = NeighbourMessage::default();
        fdb.header.family = AddressFamily::Bridge;
        fdb.header.ifindex = vxlan;
        fdb.header.flags = NeighbourFlags::Own;
        fdb.attributes
            .push(NeighbourAttribute::LinkLayerAddress(peer.mac.to_vec()));
        for (message, what) in [(arp, "neighbour"), (fdb, "forwarding entry")] {
            match self.handle.neighbours().del(message).execute().await {
                Err(e) if matches!(errno(&e), Some(ENOENT | ESRCH)) => {}
                other => {
                    other.map_err(request(format!("deleting the {what} of {}", peer.address)))?
                }
            }
        }
        Ok(())
    }

    /// Deletes [`VXLAN_DEVICE`] (with its entries and routes), if it exists.
    pub async fn remove_vxlan(&self) -> Result<bool, LinkError> {
        let Some(index) = self.link_index(VXLAN_DEVICE).await? else {
            return Ok(false);
        };
        match self.handle.link().del(index).execute().await {
            Err(e) if errno(&e) == Some(ENODEV) => Ok(false),
            other => other
                .map(|()| true)
                .map_err(request(format!("deleting {VXLAN_DEVICE}"))),
        }
    }

    /// Brings the kernel in line with `plan`: the VXLAN device first (routes through it need
    /// it), then neighbours, then routes; a device no longer planned goes last. Every change is
    /// tried; the first failure is returned (the caller retries the whole sync).
    pub async fn apply(&self, plan: &Plan) -> Result<Changes, LinkError> {
        let mut changes = Changes::default();
        let mut first_error = None;
        let mut note = |result: Result<(), LinkError>, count: &mut usize| match result {
            Ok(()) => *count += 1,
            Err(e) => {
                tracing::warn!(error = %e, "pod network");
                first_error.get_or_insert(e);
            }
        };
        let vxlan = match &plan.vtep {
            Some(vtep) => Some(self.ensure_vxlan(vtep).await?),
            None => self.link_index(VXLAN_DEVICE).await?,
        };
        if let Some(index) = vxlan {
            let current = self.neighbours(index).await?;
            let diff = plan::diff(&current, &plan.neighbours);
            for peer in &diff.remove {
                note(
                    self.remove_neighbour(index, peer).await,
                    &mut changes.removed,
                );
            }
            for peer in &diff.add {
                note(self.add_neighbour(index, peer).await, &mut changes.added);
            }
        }
        let current = self.routes(vxlan).await?;
        let diff = plan::diff(&current, &plan.routes);
        for route in &diff.remove {
            note(self.remove_route(route).await, &mut changes.removed);
        }
        for route in &diff.add {
            note(self.add_route(route, vxlan).await, &mut changes.added);
        }
        if plan.vtep.is_none() && vxlan.is_some() && self.remove_vxlan().await? {
            changes.removed += 1;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(changes),
        }
    }

    /// Removes every route tagged [`ROUTE_PROTOCOL`] and [`VXLAN_DEVICE`]; returns what it
    /// removed, for the cleanup report.
    pub async fn cleanup(&self) -> Result<Vec<String>, LinkError> {
        let mut removed = Vec::new();
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let ours: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_filter(|m| {
                futures::future::ready(m.header.protocol == RouteProtocol::Other(ROUTE_PROTOCOL))
            })
            .try_collect()
            .await
            .map_err(request("listing routes"))?;
        for message in ours {
            let shown = route_destination(&message)
                .map(|c| c.to_string())
                .unwrap_or_else(|| "?".into());
            self.delete_route(message, shown.clone()).await?;
            removed.push(format!("removed the pod route to {shown}"));
        }
        if self.remove_vxlan().await? {
            removed.push(format!("removed the VXLAN device {VXLAN_DEVICE}"));
        }
        Ok(removed)
    }
}

/// How many entries a sync added and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Routes, neighbours and devices added or replaced.
    pub added: usize,
    /// Routes, neighbours and devices removed.
    pub removed: usize,
}

fn route_destination(message: &RouteMessage) -> Option<plan::Cidr> {
    message.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
            plan::Cidr::new(*ip, message.header.destination_prefix_length)
        }
        _ => None,
    })
}

/// One of our routes as the kernel lists it.
fn parse_route(message: &RouteMessage, vxlan: Option<u32>) -> Option<Route> {
    let destination = route_destination(message)?;
    let gateway = message.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })?;
    let device = message.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(index) => Some(*index),
        _ => None,
    });
    Some(Route {
        destination,
        gateway,
        via_vxlan: device.is_some() && device == vxlan,
    })
}

#[cfg(test)]
mod tests;
