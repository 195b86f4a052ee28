//! Command line: `lifeline check | run | show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{control, daemon};

#[derive(Parser, Debug)]
#[command(
    name = "lifeline",
    version,
    about = "Branch-office VPN appliance (VPN-SIP, IKEv2/IPsec, DMVPN)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and validate a configuration; exit non-zero on errors.
    Check {
        /// IOS-syntax configuration file.
        #[arg(short, long)]
        config: PathBuf,
        /// Print the diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the appliance daemon with a configuration.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Control socket path (default: $LIFELINE_SOCKET, else /run/lifeline/lifeline.sock as root, else
        /// $XDG_RUNTIME_DIR/lifeline.sock or /tmp/lifeline-$UID.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Log JSON lines instead of human lines.
        #[arg(long)]
        log_json: bool,
        /// Test hook: IPsec idle timer in seconds for every tunnel, below IOS's 60 s minimum.
        #[arg(long, hide = true)]
        idle_override: Option<u64>,
        /// Test hook: IPsec SA lifetime in seconds for every IPsec profile, below IOS's 120 s minimum.
        #[arg(long, hide = true)]
        lifetime_override: Option<u32>,
        /// Test hook: ISAKMP SA lifetime in seconds for every `crypto isakmp policy`, below IOS's 60 s
        /// minimum (IKEv1 phase-1 rekey tests).
        #[arg(long, hide = true)]
        isakmp_lifetime_override: Option<u32>,
        /// Where generated RSA key pairs and self-signed certificates are kept (`crypto pki trustpoint`).
        #[arg(long, default_value = crate::pki::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Test hook: advertise this SHA-1 fingerprint (AB:CD:...) in VPN-SIP SDP instead of our own.
        #[arg(long, hide = true)]
        sdp_fingerprint_override: Option<String>,
        /// Test hook: append every CHILD_SA's ESP keys to this file in Wireshark's `esp_sa` format, so
        /// tests can have tshark decrypt a capture. Never use it on a production appliance.
        #[arg(long, hide = true)]
        debug_esp_keys: Option<PathBuf>,
        /// Data-plane worker threads that seal and open ESP (default: one per tunnel that can use them
        /// plus one ESP reader, at most the available cores; none without such tunnels). 0 does all of
        /// it on the control loop's thread. See `show crypto engine`.
        #[arg(long)]
        dataplane_threads: Option<usize>,
    },
    /// `lifeline pki enroll -c FILE`: create (or load) the key pairs and self-signed certificates of the
    /// configuration's trustpoints, as `lifeline run` does at start, and print their fingerprints.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Benchmarks, e.g. `lifeline bench vpnsip --sessions 1000,10000` (build with --release).
    Bench(crate::bench::BenchArgs),
    /// Ask the running daemon a `clear` command: `lifeline clear crypto session`, `lifeline clear vpn-sip session`.
    Clear {
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// The main job on an embedded default: a complete VPN-SIP failover story on loopback, no root needed.
    Demo {
        /// As root: the same story in network namespaces, with `lifeline run` daemons (TUN devices, kernel
        /// routes, IP SLA on raw sockets) and the built-in registrar.
        #[arg(long)]
        netns: bool,
    },
    /// The built-in SIP registrar on one UDP address (used by `lifeline demo --netns`).
    #[command(hide = true)]
    Registrar {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Ask the running daemon a `show` command, e.g. `lifeline show running-config` or `lifeline sh run`.
    Show {
        /// The words after `show`, abbreviable as in IOS.
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PkiCommand {
    /// IOS `crypto pki enroll` for every `enrollment selfsigned` trustpoint (non-interactive).
    Enroll {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long, default_value = crate::pki::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// IOS `crypto pki authenticate TRUSTPOINT`: accept FILE (PEM or DER) as the trustpoint's CA
    /// certificate; it must match the trustpoint's `fingerprint` when one is configured. Place the CA's CRL
    /// as STATE_DIR/pki/TRUSTPOINT.crl.
    Authenticate {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long, default_value = crate::pki::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        trustpoint: String,
        file: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config, json } => check(&config, json),
        Command::Run {
            config,
            socket,
            log_json,
            idle_override,
            lifetime_override,
            isakmp_lifetime_override,
            state_dir,
            sdp_fingerprint_override,
            debug_esp_keys,
            dataplane_threads,
        } => {
            crate::log::init(log_json);
            let sdp_fingerprint = sdp_fingerprint_override
                .map(|s| {
                    ike::Fingerprint::parse(&s).ok_or_else(|| {
                        anyhow::anyhow!("--sdp-fingerprint-override: not AB:CD:... (SHA-1)")
                    })
                })
                .transpose();
            sdp_fingerprint.and_then(|sdp_fingerprint| {
                let hooks = daemon::TestHooks {
                    idle: idle_override.map(std::time::Duration::from_secs),
                    lifetime_s: lifetime_override,
                    isakmp_lifetime_s: isakmp_lifetime_override,
                    sdp_fingerprint,
                    esp_keys: debug_esp_keys,
                };
                daemon::run(
                    &config,
                    &control::socket_path(socket),
                    &state_dir,
                    hooks,
                    dataplane_threads,
                )
            })
        }
        Command::Pki {
            command: PkiCommand::Enroll { config, state_dir },
        } => pki_enroll(&config, &state_dir),
        Command::Pki {
            command:
                PkiCommand::Authenticate {
                    config,
                    state_dir,
                    trustpoint,
                    file,
                },
        } => pki_authenticate(&config, &state_dir, &trustpoint, &file),
        Command::Bench(args) => crate::bench::run(args),
        Command::Registrar { listen } => crate::demo_netns::registrar(listen),
        Command::Demo { netns: true } => crate::demo_netns::run_netns(),
        Command::Demo { netns: false } => {
            // Quiet by default: the demo prints its own timeline. `RUST_LOG=info` shows the IOS-style logs.
            if std::env::var_os("RUST_LOG").is_some() {
                crate::log::init(false);
            }
            crate::demo::run()
        }
        Command::Clear { words, socket } => {
            control::client_words(&control::socket_path(socket), "clear", &words)
        }
        Command::Show {
            words,
            socket,
            json,
        } => control::client_show(&control::socket_path(socket), &words, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lifeline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `lifeline check`: diagnostics on stdout, exit 1 when any is an error.
fn check(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let text = read_config(path)?;
    let parsed = config::parse(&text);
    if json {
        println!("{}", serde_json::to_string_pretty(&parsed.diagnostics)?);
    } else {
        for d in &parsed.diagnostics {
            println!("{}:{d}", path.display());
        }
        let errors = parsed
            .diagnostics
            .iter()
            .filter(|d| d.severity == config::Severity::Error)
            .count();
        println!(
            "{}: {} error(s), {} warning(s)",
            path.display(),
            errors,
            parsed.diagnostics.len() - errors
        );
    }
    Ok(if parsed.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `lifeline pki authenticate`: what `crypto pki authenticate` prints once the certificate is accepted.
fn pki_authenticate(
    path: &std::path::Path,
    state_dir: &std::path::Path,
    trustpoint: &str,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let parsed = config::parse(&read_config(path)?);
    if parsed.has_errors() {
        anyhow::bail!(
            "configuration {} has errors (see `lifeline check`)",
            path.display()
        );
    }
    let (kept, fp) = crate::pki::authenticate(&parsed.config, state_dir, trustpoint, file)?;
    println!(
        "Certificate has the following attributes:\n       Fingerprint SHA1: {}\nTrustpoint CA certificate accepted ({}).",
        crate::pki::ios_fingerprint(&fp),
        kept.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `lifeline pki enroll`: what `crypto pki enroll` prints, for every trustpoint that has a credential.
fn pki_enroll(path: &std::path::Path, state_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let parsed = config::parse(&read_config(path)?);
    if parsed.has_errors() {
        anyhow::bail!(
            "configuration {} has errors (see `lifeline check`)",
            path.display()
        );
    }
    let store = crate::pki::enroll(&parsed.config, state_dir)?;
    if store.trustpoints.is_empty() {
        println!(
            "no trustpoint needs a key pair (enrollment selfsigned or pki trustpoint with rsa-sig)"
        );
    }
    for e in store.trustpoints.values() {
        println!(
            "Trustpoint {}: {} certificate {}\n  Key pair {} ({} bits)\n  Fingerprint SHA1: {}",
            e.trustpoint,
            if e.generated {
                "Router Self Signed Certificate successfully created,"
            } else {
                "existing"
            },
            e.cert_path.display(),
            e.key_label,
            e.key_bits,
            crate::pki::ios_fingerprint(&e.credential.fingerprint())
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn read_config(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration {}", path.display()))
}
