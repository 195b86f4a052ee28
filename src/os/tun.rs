//! TUN devices for tunnel interfaces: the inside of each static VTI.

use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::Context;
use rtnetlink::{Handle, LinkUnspec};
use tun_rs::{AsyncDevice, DeviceBuilder, SyncDevice};

/// Create (or open) TUN device `name`, give it `address`, set the MTU and bring it up.
pub async fn open(
    handle: &Handle,
    name: &str,
    address: Option<(Ipv4Addr, u8)>,
    mtu: u16,
) -> anyhow::Result<Arc<AsyncDevice>> {
    let dev = open_sync(handle, name, address, mtu).await?;
    Ok(Arc::new(AsyncDevice::new(dev).with_context(|| {
        format!("cannot register TUN device {name}")
    })?))
}

/// As [`open`], but not yet registered with a runtime: a data-plane worker registers it with its own
/// (`AsyncDevice::new` on the worker thread), so its reads wake that worker directly.
pub async fn open_sync(
    handle: &Handle,
    name: &str,
    address: Option<(Ipv4Addr, u8)>,
    mtu: u16,
) -> anyhow::Result<SyncDevice> {
    let dev = DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .build_sync()
        .with_context(|| format!("cannot create TUN device {name}"))?;
    let index = super::link::link_index(handle, name).await?;
    if let Some((a, len)) = address {
        // Re-adding an address that is already there (a restart) is not an error worth stopping for.
        let _ = handle.address().add(index, a.into(), len).execute().await;
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .with_context(|| format!("cannot bring {name} up"))?;
    // Kernel IPv6 chatter (router solicitations, MLD) would only be dropped by the data plane.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
    Ok(dev)
}
