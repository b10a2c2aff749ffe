//! `classroom-loadtest`: the command line. See `classroom-loadtest --help`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::TypedValueParser;
use classroom_loadtest::link::Transport;
use classroom_loadtest::{RunConfig, Scenario, run};

/// Load a running classroomd with simulated teachers and students (real WebSocket signaling,
/// real WebRTC over UDP or ICE-TCP) and report join times, loss, jitter, latency, bitrate and CPU.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The server's base URL; the tool sends traffic only there (and to the media address
    /// its SDP names).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An admin account to create the run's users, course and lesson with.
    #[arg(long, env = "LOADTEST_ADMIN_EMAIL")]
    admin_email: String,
    #[arg(long, env = "LOADTEST_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,
    /// Students (ramp: the most it will add).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    students: u32,
    /// Seconds of media once everyone joined (ramp: seconds measured per step).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Students who start joining per second.
    #[arg(long, default_value_t = 50.0)]
    join_rate: f64,
    /// Simulcast layers the teacher sends: 1 (360p) or 3 (180p, 360p, 720p).
    #[arg(long, default_value_t = 3, value_parser = clap::builder::PossibleValuesParser::new(["1", "3"]).map(|s| s.parse::<usize>().unwrap_or(3)))]
    layers: usize,
    /// Seminar: students on stage. Audio class: speakers besides the teacher.
    #[arg(long, default_value_t = 3)]
    stage: usize,
    /// Churn: students leaving (and joining) per second.
    #[arg(long, default_value_t = 2.0)]
    churn_rate: f64,
    /// Ramp: students added per step.
    #[arg(long, default_value_t = 10)]
    ramp_step: usize,
    /// Ramp: the loss bound, in percent.
    #[arg(long, default_value_t = 1.0)]
    max_loss: f64,
    /// Ramp: the p99 one-way latency bound, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    max_p99_ms: f64,
    /// The server's pid, to read its CPU and memory from /proc (default: the one classroomd
    /// on this machine if the server is local, else its /metrics).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Local address for the participants' UDP sockets (or TCP connections).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// How media reaches the SFU: udp, or tcp (ICE-TCP to the TCP candidate the server's
    /// answer names, as browsers whose network blocks UDP do; needs media.tcp_addr).
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    transport: Transport,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.join_rate > 0.0 && args.join_rate.is_finite()) {
        anyhow::bail!("--join-rate must be a positive number");
    }
    if !(args.churn_rate >= 0.0 && args.churn_rate.is_finite()) {
        anyhow::bail!("--churn-rate must be zero or a positive number");
    }
    let config = RunConfig {
        server: args.server,
        admin_email: args.admin_email,
        admin_password: args.admin_password,
        scenario: args.scenario,
        students: args.students as usize,
        duration: Duration::from_secs(args.duration),
        join_rate: args.join_rate,
        layers: args.layers,
        stage: args.stage,
        churn_per_second: args.churn_rate,
        ramp_step: args.ramp_step,
        max_loss_percent: args.max_loss,
        max_latency_p99_ms: args.max_p99_ms,
        server_pid: args.server_pid,
        bind_ip: args.bind,
        transport: args.transport,
        progress: !args.quiet,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Ctrl-C ends the run early; the report covers what ran.
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    let report = run(config, stopped).await?;
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
    println!("{json}");
    if let Some(path) = args.json {
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
