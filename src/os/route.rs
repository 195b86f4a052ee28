//! Route programming through rtnetlink, in a table Lifeline owns.
//!
//! The RIB (in `monitors`) decides; this driver mirrors its choice into kernel table [`TABLE`], which an
//! `ip rule` (priority [`RULE_PRIORITY`]) consults before `main`. At start the table is flushed (a previous
//! run may have died), at shutdown it is flushed again, so Lifeline never leaves routes behind.

use std::net::Ipv4Addr;

use anyhow::{Context, anyhow};
use futures::TryStreamExt;
use netlink_packet_route::route::RouteMessage;
use rtnetlink::{Handle, RouteMessageBuilder};

/// The kernel routing table Lifeline owns.
pub const TABLE: u32 = 4711;
/// Priority of the `ip rule` that sends lookups to [`TABLE`] (before `main`, at 32766).
pub const RULE_PRIORITY: u32 = 4711;

/// Where a kernel route points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub device: Option<String>,
    /// Kernel metric; Lifeline uses the IOS administrative distance so `ip route show table` reads naturally.
    pub metric: u32,
}

pub struct Routes {
    handle: Handle,
}

impl Routes {
    /// Connect to rtnetlink (must run inside a tokio runtime), install the rule, flush the table.
    pub async fn open() -> anyhow::Result<Routes> {
        let (conn, handle, _) = rtnetlink::new_connection().context("rtnetlink socket")?;
        tokio::spawn(conn);
        let routes = Routes { handle };
        routes.ensure_rule().await?;
        routes.flush().await?;
        Ok(routes)
    }

    async fn ensure_rule(&self) -> anyhow::Result<()> {
        // `ip rule` through netlink: look up TABLE for every destination.
        let mut existing = self.handle.rule().get(rtnetlink::IpVersion::V4).execute();
        while let Some(rule) = existing.try_next().await? {
            if rule.header.table as u32 == TABLE
                || rule.attributes.iter().any(|a| {
                    matches!(a, netlink_packet_route::rule::RuleAttribute::Table(t) if *t == TABLE)
                })
            {
                return Ok(());
            }
        }
        self.handle
            .rule()
            .add()
            .v4()
            .table_id(TABLE)
            .priority(RULE_PRIORITY)
            .execute()
            .await
            .context("adding the ip rule for the Lifeline table")?;
        Ok(())
    }

    /// Remove every route from [`TABLE`].
    pub async fn flush(&self) -> anyhow::Result<()> {
        let filter = RouteMessageBuilder::<Ipv4Addr>::new()
            .table_id(TABLE)
            .build();
        let mut dump = self.handle.route().get(filter).execute();
        let mut ours: Vec<RouteMessage> = Vec::new();
        while let Some(r) = dump.try_next().await? {
            if route_table(&r) == TABLE {
                ours.push(r);
            }
        }
        for r in ours {
            let _ = self.handle.route().del(r).execute().await;
        }
        Ok(())
    }

    async fn link_index(&self, name: &str) -> anyhow::Result<u32> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let link = links
            .try_next()
            .await
            .with_context(|| format!("no such device {name}"))?
            .ok_or_else(|| anyhow!("no such device {name}"))?;
        Ok(link.header.index)
    }

    async fn message(&self, r: &KernelRoute) -> anyhow::Result<RouteMessage> {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(r.prefix, r.len)
            .table_id(TABLE)
            .priority(r.metric);
        if let Some(gw) = r.gateway {
            b = b.gateway(gw);
        }
        if let Some(dev) = &r.device {
            b = b.output_interface(self.link_index(dev).await?);
        }
        Ok(b.build())
    }

    pub async fn add(&self, r: &KernelRoute) -> anyhow::Result<()> {
        let msg = self.message(r).await?;
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .with_context(|| format!("adding route {}/{}", r.prefix, r.len))
    }

    pub async fn del(&self, r: &KernelRoute) -> anyhow::Result<()> {
        let msg = self.message(r).await?;
        self.handle
            .route()
            .del(msg)
            .execute()
            .await
            .with_context(|| format!("deleting route {}/{}", r.prefix, r.len))
    }
}

fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            netlink_packet_route::route::RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(r.header.table as u32)
}
