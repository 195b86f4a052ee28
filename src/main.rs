//! `lifeline`: the appliance binary. Everything here is thin: the command line is parsed in [`cli`], and each
//! subcommand lives in its own module.

mod cli;
mod control;
mod daemon;
mod log;
mod os;
mod show;

fn main() -> std::process::ExitCode {
    cli::main()
}
