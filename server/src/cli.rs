//! The command line: `classroomd [serve]` runs the server; `classroomd user add` creates an
//! account (the first admin) without a browser, reading the password from standard input.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use classroom_courses::auth::{hash_password, load_or_create_secret};
use classroom_courses::model::{Email, Password, PersonName};
use classroom_courses::private_files::private_dir;
use classroom_courses::store::NewUser;
use classroom_courses::{Db, Store};
use classroom_protocol::UserRole;

use crate::config::{Config, DatabaseOverrides, HttpOverrides, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "classroomd",
    version,
    about = "The classroom server: live lessons, courses and replays."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: ./classroomd.toml if it exists.
    #[arg(long, global = true, env = "CLASSROOM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, the token secret and recordings.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Address and port of the HTTP server, e.g. 0.0.0.0:8080.
    #[arg(long, global = true, value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Teacher,
    Student,
}

impl From<RoleArg> for UserRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => UserRole::Admin,
            RoleArg::Teacher => UserRole::Teacher,
            RoleArg::Student => UserRole::Student,
        }
    }
}

impl GlobalArgs {
    /// The configuration these flags select, over file and environment.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            http: self.http_addr.map(|addr| HttpOverrides { addr }),
            database: self
                .database_url
                .clone()
                .map(|url| DatabaseOverrides { url }),
        };
        Ok(Config::load(
            self.config.as_deref(),
            std::env::vars(),
            &overrides,
        )?)
    }
}

/// `classroomd user add`: creates the account and prints its id.
pub async fn add_user(
    config: &Config,
    role: UserRole,
    email: &str,
    name: &str,
) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {}", e.message))?;
    let name = PersonName::parse(name).map_err(|e| anyhow::anyhow!("--name {}", e.message))?;
    let password = read_password()?;
    let password =
        Password::parse(&password).map_err(|e| anyhow::anyhow!("the password {}", e.message))?;
    private_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {} (mode 0700)",
            config.data_dir.display()
        )
    })?;
    let db = Db::connect(&config.database_url(), 1).await?;
    let secret = load_or_create_secret(
        Some(config.auth.jwt_secret.as_str()).filter(|s| !s.is_empty()),
        &config.data_dir,
    )?;
    let store = Store::new(db.clone(), &secret);
    let password_hash = hash_password(password).await?;
    let created = store
        .create_user(
            NewUser {
                email,
                name,
                role,
                password_hash,
            },
            time::OffsetDateTime::now_utc(),
        )
        .await;
    db.close().await;
    let user = created?;
    println!(
        "created {} {} (id {})",
        user.role.as_str(),
        user.email,
        user.id
    );
    Ok(())
}

/// The password: prompted for twice on a terminal, else the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password again: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(
            "no password on standard input: pipe it in, e.g. `echo \"$PASSWORD\" | classroomd user add ...`"
        );
    }
    Ok(password)
}
