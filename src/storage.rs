//! Opens the store the config names (`[store]`): SQLite with blobs in a directory (the
//! embedded default), or PostgreSQL with blobs in the same database (several instances).
//! The one place the daemon and every command open it.

use crate::config::{StoreBackend, StoreConfig};
use crate::store::blobs::{BlobStore, FsBlobStore};
use crate::store::{PgBlobStore, PgStore, SqliteStore, Store};
use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;

enum Opened {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

fn open(config: &StoreConfig) -> anyhow::Result<Opened> {
    match &config.backend {
        StoreBackend::Sqlite => Ok(Opened::Sqlite(Arc::new(
            SqliteStore::open(&config.path, config.busy_timeout)
                .with_context(|| format!("opening store {}", config.path.display()))?,
        ))),
        StoreBackend::Postgres {
            url,
            pool_size,
            connect_timeout,
        } => Ok(Opened::Postgres(Arc::new(
            // The error names the server's answer, never the URL (it may hold the password).
            PgStore::connect(url.expose(), *pool_size, *connect_timeout)
                .context("opening the PostgreSQL store (store.url)")?,
        ))),
    }
}

/// The store and the blob store of `config`; `blobs_dir` holds SQLite's blobs (files).
pub fn open_store(
    config: &StoreConfig,
    blobs_dir: &Path,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn BlobStore>)> {
    Ok(match open(config)? {
        Opened::Sqlite(store) => {
            let blobs = FsBlobStore::open(blobs_dir)
                .with_context(|| format!("opening blob store {}", blobs_dir.display()))?;
            (store, Arc::new(blobs))
        }
        Opened::Postgres(store) => {
            let blobs = PgBlobStore::new(store.clone());
            (store, Arc::new(blobs))
        }
    })
}

/// The store alone, for a command. With `must_exist`, a SQLite file that is not there yet
/// is an error (a reading command must not create an empty store).
pub fn open_store_only(config: &StoreConfig, must_exist: bool) -> anyhow::Result<Arc<dyn Store>> {
    if must_exist && matches!(config.backend, StoreBackend::Sqlite) && !config.path.exists() {
        anyhow::bail!(
            "no store at {} (store.path): has the daemon run with this config?",
            config.path.display()
        );
    }
    Ok(match open(config)? {
        Opened::Sqlite(store) => store,
        Opened::Postgres(store) => store,
    })
}
