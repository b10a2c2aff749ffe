//! `classroom-loadtest`: the command line. See `classroom-loadtest --help`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::TypedValueParser;
use classroom_loadtest::link::Transport;
use classroom_loadtest::{RunConfig, Scenario, Target, floor, run};

/// What to run: a scenario, or the machine's floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// One teacher publishing simulcast video and audio to N students.
    Lecture,
    /// A teacher and k students on stage, everyone receiving everyone.
    Seminar,
    /// A few speakers (audio only), many listeners.
    AudioClass,
    /// A lecture where students keep leaving and joining at a given rate.
    Churn,
    /// A lecture that adds students step by step until loss or latency crosses a bound.
    Ramp,
    /// An encoder publishing H.264 + AAC over RTMP into a lesson, N students receiving it:
    /// the ingest's CPU per stream and the latency it adds (classroomd with its RTMP ingest).
    Ingest,
    /// The teacher draws on the blank board and turns its pages while N students follow over
    /// signaling: how long strokes and page turns take to reach them (classroomd).
    Board,
    /// Students split at random into breakout rooms (`--rooms`), one moved between rooms,
    /// all brought back: the media gap per move, and that each hears only its room.
    Breakout,
    /// No server: the CPU of one bare UDP send (`--floor-size` bytes) on this machine.
    Floor,
}

/// The server a scenario loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TargetArg {
    Classroom,
    /// Janus's VideoRoom plugin (needs --janus-url; lecture, churn and ramp).
    Janus,
}

/// Load a running classroomd with simulated teachers and students (real WebSocket signaling,
/// real WebRTC over UDP or ICE-TCP) and report join times, loss, jitter, latency, bitrate and CPU.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The scenario to run, or `floor`.
    #[arg(value_enum)]
    mode: Mode,
    /// The server to load: classroomd (at --server) or Janus (at --janus-url).
    #[arg(long, value_enum, default_value = "classroom")]
    target: TargetArg,
    /// Janus's HTTP API, e.g. http://127.0.0.2:8088/janus.
    #[arg(long)]
    janus_url: Option<String>,
    /// The server's base URL; the tool sends traffic only there (and to the media address
    /// its SDP names).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An admin account to create the run's users, course and lesson with (classroomd).
    #[arg(long, env = "LOADTEST_ADMIN_EMAIL")]
    admin_email: Option<String>,
    #[arg(long, env = "LOADTEST_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
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
    /// Breakout: how many breakout rooms.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=50))]
    rooms: u32,
    /// Floor: the datagram size in bytes.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u16).range(1..=65000))]
    floor_size: u16,
    /// Floor: how many datagrams to send.
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    floor_packets: u64,
    /// Threads the simulated participants run on (default: every core this process may use).
    /// Each participant is a task with its own socket, so a run spreads over all of them: one
    /// load tester on a many-core machine drives thousands of students. `bench/run` pins it to
    /// one core and leaves this at its default.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("loadtest");
    if let Some(threads) = args.threads {
        runtime.worker_threads(usize::from(threads));
    }
    runtime
        .build()
        .context("starting the load tester's threads")?
        .block_on(run_args(args))
}

async fn run_args(args: Args) -> anyhow::Result<()> {
    let scenario = match args.mode {
        Mode::Lecture => Scenario::Lecture,
        Mode::Seminar => Scenario::Seminar,
        Mode::AudioClass => Scenario::AudioClass,
        Mode::Churn => Scenario::Churn,
        Mode::Ramp => Scenario::Ramp,
        // Run scenarios of their own (below); the field is not read.
        Mode::Ingest | Mode::Board | Mode::Breakout => Scenario::Lecture,
        Mode::Floor => {
            let report =
                floor::measure(args.bind, usize::from(args.floor_size), args.floor_packets)
                    .context("sending on this machine")?;
            let json = serde_json::to_string_pretty(&report).context("serializing")?;
            println!(
                "floor: {:.2} µs of CPU per {}-byte UDP send ({} sends)",
                report.cpu_us_per_send, report.size, report.packets
            );
            println!("{json}");
            if let Some(path) = args.json {
                std::fs::write(&path, &json)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            return Ok(());
        }
    };
    let target = match (args.target, args.janus_url) {
        (TargetArg::Classroom, _) => Target::Classroom,
        (TargetArg::Janus, Some(url)) => Target::Janus { url },
        (TargetArg::Janus, None) => anyhow::bail!("--target janus needs --janus-url"),
    };
    let (admin_email, admin_password) = match (args.admin_email, args.admin_password) {
        (Some(email), Some(password)) => (email, password),
        _ if target != Target::Classroom => (String::new(), String::new()),
        _ => anyhow::bail!(
            "classroomd needs an admin account: --admin-email and --admin-password (or LOADTEST_ADMIN_EMAIL and LOADTEST_ADMIN_PASSWORD)"
        ),
    };
    if !(args.join_rate > 0.0 && args.join_rate.is_finite()) {
        anyhow::bail!("--join-rate must be a positive number");
    }
    if !(args.churn_rate >= 0.0 && args.churn_rate.is_finite()) {
        anyhow::bail!("--churn-rate must be zero or a positive number");
    }
    let config = RunConfig {
        server: args.server,
        target,
        admin_email,
        admin_password,
        scenario,
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
    let json = if args.mode == Mode::Board {
        if config.target != Target::Classroom {
            anyhow::bail!("the board scenario runs against classroomd only");
        }
        let report = classroom_loadtest::board::run(config, stopped).await?;
        print!("{}", report.table());
        serde_json::to_string_pretty(&report).context("serializing the report")?
    } else if args.mode == Mode::Breakout {
        if config.target != Target::Classroom {
            anyhow::bail!("the breakout scenario runs against classroomd only");
        }
        let report = classroom_loadtest::breakout::run(config, args.rooms, stopped).await?;
        print!("{}", report.table());
        serde_json::to_string_pretty(&report).context("serializing the report")?
    } else if args.mode == Mode::Ingest {
        if config.target != Target::Classroom {
            anyhow::bail!("the ingest scenario runs against classroomd only");
        }
        let report = classroom_loadtest::ingest::run(config, stopped).await?;
        print!("{}", report.table());
        serde_json::to_string_pretty(&report).context("serializing the report")?
    } else {
        let report = run(config, stopped).await?;
        print!("{}", report.table());
        serde_json::to_string_pretty(&report).context("serializing the report")?
    };
    println!("{json}");
    if let Some(path) = args.json {
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
