//! Route programming through rtnetlink, in a table Lifeline owns.
//!
//! The RIB (in `monitors`) decides; this driver mirrors its choice into kernel table [`TABLE`], which an
//! `ip rule` (priority [`RULE_PRIORITY`]) consults after `main`'s non-default routes and before its
//! default route. At start the table is flushed (a previous
//! run may have died), at shutdown it is flushed again, so Lifeline never leaves routes behind.

use std::net::Ipv4Addr;

use anyhow::Context;
use futures::TryStreamExt;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::rule::{RuleAction, RuleAttribute};
use rtnetlink::{Handle, RouteMessageBuilder};

/// The kernel routing table Lifeline owns.
pub const TABLE: u32 = 4711;
/// Priority of the `ip rule` that sends lookups to [`TABLE`] (before `main`, at 32766). The rule one below
/// it consults `main` without default routes first.
pub const RULE_PRIORITY: u32 = 4711;
const MAIN_TABLE: u32 = 254;

/// Where a kernel route points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub device: Option<String>,
}

pub struct Routes {
    pub handle: Handle,
}

impl Routes {
    /// Install the rules and flush the table (a previous run may have died).
    pub async fn open(handle: Handle) -> anyhow::Result<Routes> {
        let routes = Routes { handle };
        routes.ensure_rule().await?;
        routes.flush().await?;
        Ok(routes)
    }

    /// Two rules, as wg-quick does it: first `main` without its default routes (so connected and other
    /// more specific kernel routes win, as connected routes beat statics in IOS), then Lifeline's table.
    async fn ensure_rule(&self) -> anyhow::Result<()> {
        let mut have = (false, false);
        let mut existing = self.handle.rule().get(rtnetlink::IpVersion::V4).execute();
        while let Some(rule) = existing.try_next().await? {
            let prio = rule.attributes.iter().find_map(|a| match a {
                RuleAttribute::Priority(p) => Some(*p),
                _ => None,
            });
            match prio {
                Some(p) if p == RULE_PRIORITY - 1 => have.0 = true,
                Some(p) if p == RULE_PRIORITY => have.1 = true,
                _ => {}
            }
        }
        if !have.0 {
            let mut req = self
                .handle
                .rule()
                .add()
                .v4()
                .table_id(MAIN_TABLE)
                .action(RuleAction::ToTable)
                .priority(RULE_PRIORITY - 1);
            req.message_mut()
                .attributes
                .push(RuleAttribute::SuppressPrefixLen(0));
            req.execute()
                .await
                .context("adding the ip rule `lookup main suppress_prefixlength 0`")?;
        }
        if !have.1 {
            self.handle
                .rule()
                .add()
                .v4()
                .table_id(TABLE)
                .action(RuleAction::ToTable)
                .priority(RULE_PRIORITY)
                .execute()
                .await
                .context("adding the ip rule for the Lifeline table")?;
        }
        Ok(())
    }

    /// Shutdown: remove Lifeline's routes and its two `ip rule`s, leaving the kernel as it found it.
    pub async fn remove_all(&self) -> anyhow::Result<()> {
        self.flush().await?;
        let mut rules = self.handle.rule().get(rtnetlink::IpVersion::V4).execute();
        let mut ours = Vec::new();
        while let Some(rule) = rules.try_next().await? {
            let prio = rule.attributes.iter().find_map(|a| match a {
                RuleAttribute::Priority(p) => Some(*p),
                _ => None,
            });
            if matches!(prio, Some(p) if p == RULE_PRIORITY || p == RULE_PRIORITY - 1) {
                ours.push(rule);
            }
        }
        for rule in ours {
            let _ = self.handle.rule().del(rule).execute().await;
        }
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

    async fn message(&self, r: &KernelRoute) -> anyhow::Result<RouteMessage> {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(r.prefix, r.len)
            .table_id(TABLE);
        // No metric: the table holds only the RIB's choice per prefix, and one metric for all makes every
        // change an atomic NLM_F_REPLACE (different metrics would let old and new routes coexist).
        // With a gateway the kernel resolves the device itself (and checks the gateway is on-link); the
        // device is given only for routes without one (point-to-point tunnels).
        match (r.gateway, &r.device) {
            (Some(gw), _) => b = b.gateway(gw),
            (None, Some(dev)) => {
                b = b.output_interface(super::link::link_index(&self.handle, dev).await?)
            }
            (None, None) => {}
        }
        let mut msg = b.build();
        // The table number lives in RTA_TABLE; say RT_TABLE_UNSPEC in the header, as `ip route` does.
        msg.header.table = 0;
        Ok(msg)
    }

    pub async fn add(&self, r: &KernelRoute) -> anyhow::Result<()> {
        let msg = self.message(r).await?;
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .with_context(|| format!("adding route {}/{} ({r:?})", r.prefix, r.len))
    }

    /// Delete whatever route [`TABLE`] holds for this prefix (the RIB withdrew it).
    pub async fn del_prefix(&self, r: &KernelRoute) -> anyhow::Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(r.prefix, r.len)
            .table_id(TABLE)
            .build();
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            // Already gone (e.g. the kernel removed it with its device): nothing to do.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting route {}/{}", r.prefix, r.len)),
        }
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
