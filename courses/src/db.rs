//! The database handle: one code path for SQLite (the embedded default) and PostgreSQL,
//! chosen by the URL scheme. Queries go through sqlx's `Any` driver with bound `$N`
//! parameters, which both backends accept; only the DDL differs, so each backend has its own
//! migration folder with the same tables.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(DbError::UnsupportedUrl(scheme.to_string())),
        }
    }
}

/// Failures opening or migrating the database. Messages name what to fix.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL scheme `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database file {path} or make it private (mode 0600): {source}")]
    FileMode {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A pool of connections to the configured database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects, creating a SQLite file if missing, and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyConnectOptions::from_str(url).map_err(DbError::Connect)?;
        if backend == Backend::Sqlite {
            create_sqlite_file_if_missing(url).await?;
        }
        let pool = AnyPoolOptions::new()
            // SQLite allows one writer at a time; more connections only queue on its lock.
            .max_connections(match backend {
                Backend::Sqlite => max_connections.min(4),
                Backend::Postgres => max_connections,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; the busy timeout makes a
                        // writer wait for the lock instead of failing at once.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(DbError::Connect)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Db { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers a trivial query (for `/readyz`).
    pub async fn is_reachable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Connections currently checked out of the pool.
    pub fn connections_in_use(&self) -> u32 {
        self.pool.size().saturating_sub(self.pool.num_idle() as u32)
    }

    /// Waits for connections to be returned and closes them (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the SQLite file 0600 before SQLite does (it would use the umask: 0644), and
/// narrows an existing one and its `-wal` and `-shm` to 0600. SQLite gives the `-wal` and
/// `-shm` it creates the mode of the database file.
async fn create_sqlite_file_if_missing(url: &str) -> Result<(), DbError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(());
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(DbError::Connect)?;
    let path = options.get_filename().to_path_buf();
    let io = |source| DbError::FileMode {
        path: path.clone(),
        source,
    };
    crate::private_files::private_file(&path).map_err(io)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.clone().into_os_string();
        side.push(suffix);
        crate::private_files::narrow(side.as_ref(), crate::private_files::FILE_MODE).map_err(io)?;
    }
    Ok(())
}
