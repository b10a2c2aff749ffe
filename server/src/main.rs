//! The `classroomd` binary: parses the command line and runs the server or a subcommand.

use clap::Parser;
use classroomd::cli::{Cli, Command, UserCommand};
use classroomd::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.global.load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("classroomd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config);
    raise_descriptor_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("classroomd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => classroomd::serve(&config, classroomd::shutdown_signal()).await,
            Command::User(UserCommand::Add { role, email, name }) => {
                classroomd::cli::add_user(&config, role.into(), &email, &name).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("classroomd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Raises the soft limit on open descriptors to the hard one, so that the server's own
/// connection caps (sized from it) decide how many clients it serves, not a default of 1024.
fn raise_descriptor_limit() {
    match classroomd::descriptors::raise_to_hard_limit() {
        Ok((before, after)) => tracing::info!(
            soft_before = ?before.soft,
            soft = ?after.soft,
            hard = ?after.hard,
            "open descriptor limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            limit = ?classroomd::descriptors::DescriptorLimit::current(),
            "cannot raise the open descriptor limit (RLIMIT_NOFILE); keeping it"
        ),
    }
}
