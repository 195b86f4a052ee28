//! `lifeline`: the appliance binary. Everything here is thin: the command line is parsed in [`cli`], and each
//! subcommand lives in its own module.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod cli;
mod control;
mod daemon;
mod demo;
mod demo_netns;
mod gre;
mod gre_esp;
mod ikev1;
mod keylog;
mod log;
mod monitor;
mod node;
mod os;
mod pki;
mod qos;
mod resolve;
mod show;
mod sim;
mod sipnet;
mod vpnsip;

fn main() -> std::process::ExitCode {
    cli::main()
}
