//! `lifeline`: the appliance binary. Everything here is thin: the command line is parsed in [`cli`], and each
//! subcommand lives in its own module.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod bench_dataplane;
mod cli;
mod control;
mod daemon;
mod demo;
mod demo_netns;
mod fastpath;
mod gre;
mod gre_esp;
mod ikev1;
mod keylog;
mod log;
mod monitor;
mod node;
mod os;
mod pki;
mod pkt;
mod qos;
mod resolve;
mod show;
mod sim;
mod sipnet;
mod vpnsip;
mod workers;

/// Unit tests count allocations (`daemon::tests::steady_state_packet_path_does_not_allocate`).
#[cfg(test)]
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

fn main() -> std::process::ExitCode {
    cli::main()
}
