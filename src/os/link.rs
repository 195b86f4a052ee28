//! Links and addresses through rtnetlink: the shared helpers of the TUN, route and DHCP drivers.

use std::net::Ipv4Addr;

use anyhow::Context;
use futures::TryStreamExt;
use rtnetlink::Handle;

/// The kernel's index of device `name`.
pub async fn link_index(handle: &Handle, name: &str) -> anyhow::Result<u32> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    let link = links
        .try_next()
        .await
        .with_context(|| format!("no such device {name}"))?
        .with_context(|| format!("no such device {name}"))?;
    Ok(link.header.index)
}

/// Give `device` the address of a DHCP lease, removing the address of the previous lease.
pub async fn set_address(
    h: &Handle,
    device: &str,
    addr: Ipv4Addr,
    prefix: u8,
    old: Option<(Ipv4Addr, u8)>,
) -> anyhow::Result<()> {
    let index = link_index(h, device).await?;
    if let Some((a, len)) = old {
        let mut list = h.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = list.try_next().await? {
            let is_old = msg.header.prefix_len == len
                && msg.attributes.iter().any(|at| {
                    matches!(at, netlink_packet_route::address::AddressAttribute::Address(std::net::IpAddr::V4(x)) if *x == a)
                });
            if is_old {
                let _ = h.address().del(msg).execute().await;
            }
        }
    }
    match h.address().add(index, addr.into(), prefix).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `interface LoopbackN` without `device`: Lifeline puts its addresses on the host's `lo` (this kernel has
/// no dummy devices). Returns the addresses added, for [`remove_loopback_addresses`] at shutdown.
pub async fn add_loopback_addresses(
    h: &Handle,
    addrs: &[(Ipv4Addr, u8)],
) -> anyhow::Result<Vec<(Ipv4Addr, u8)>> {
    let index = link_index(h, "lo").await?;
    let mut added = Vec::new();
    for &(a, len) in addrs {
        match h.address().add(index, a.into(), len).execute().await {
            Ok(()) => added.push((a, len)),
            // Already there (configured by the host): not ours to remove later.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
            Err(e) => return Err(e).with_context(|| format!("adding {a}/{len} to lo")),
        }
    }
    Ok(added)
}

/// Remove the loopback addresses Lifeline added.
pub async fn remove_loopback_addresses(h: &Handle, addrs: &[(Ipv4Addr, u8)]) -> anyhow::Result<()> {
    let index = link_index(h, "lo").await?;
    let mut list = h.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = list.try_next().await? {
        let ours = addrs.iter().any(|(a, len)| {
            msg.header.prefix_len == *len
                && msg.attributes.iter().any(|at| {
                    matches!(at, netlink_packet_route::address::AddressAttribute::Address(std::net::IpAddr::V4(x)) if x == a)
                })
        });
        if ours {
            let _ = h.address().del(msg).execute().await;
        }
    }
    Ok(())
}
