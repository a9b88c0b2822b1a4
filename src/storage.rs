//! Opens the store the config names (`[store]`): SQLite with raw records in its database and
//! larger blobs in a directory (the embedded default), or PostgreSQL with blobs in the same database (several instances).
//! The one place the daemon and every command open it.

use crate::config::{StoreBackend, StoreConfig};
use crate::store::blobs::BlobStore;
use crate::store::{PgBlobStore, PgStore, SqliteBlobStore, SqliteStore, Store};
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

/// The store and the blob store of `config`; `blobs_dir` holds SQLite's file blobs (scans,
/// mails, quarantined bytes, large attachments; raw records are rows of the database).
pub fn open_store(
    config: &StoreConfig,
    blobs_dir: &Path,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn BlobStore>)> {
    Ok(match open(config)? {
        Opened::Sqlite(store) => {
            let blobs = SqliteBlobStore::open(store.clone(), blobs_dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::time::Duration;

    fn sqlite(dir: &Path) -> StoreConfig {
        StoreConfig {
            path: dir.join("data/petitiond.db"),
            busy_timeout: Duration::from_secs(1),
            backend: StoreBackend::Sqlite,
        }
    }

    /// A reading command on a config whose daemon never ran must not create an empty store.
    #[test]
    fn a_reading_command_does_not_create_a_sqlite_store() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_store_only(&sqlite(dir.path()), true)
            .err()
            .expect("no store yet");
        assert!(err.to_string().contains("no store at"), "{err:#}");
        assert!(!dir.path().join("data/petitiond.db").exists());
        let (store, _) = open_store(&sqlite(dir.path()), &dir.path().join("blobs")).unwrap();
        store.set_cursor("portal", "1").unwrap();
        drop(store);
        let again = open_store_only(&sqlite(dir.path()), true).unwrap();
        assert_eq!(again.cursor("portal").unwrap().as_deref(), Some("1"));
    }

    /// `backend = "postgres"`: the store and its blobs live in the database (no blob
    /// directory), and a second opening (another instance, a command) sees both.
    #[test]
    fn a_postgres_store_keeps_its_blobs_in_the_database() {
        let Some((url, _schema)) = crate::store::testing::postgres_url() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            backend: StoreBackend::Postgres {
                url: Secret::new(url),
                pool_size: 2,
                connect_timeout: Duration::from_secs(5),
            },
            ..sqlite(dir.path())
        };
        let (store, blobs) = open_store(&config, &dir.path().join("blobs")).unwrap();
        store.set_cursor("portal", "9").unwrap();
        let r = blobs.put(b"scan").unwrap();
        assert!(!dir.path().join("blobs").exists());
        assert!(!dir.path().join("data").exists());
        let (other, other_blobs) = open_store(&config, &dir.path().join("blobs")).unwrap();
        assert_eq!(other.cursor("portal").unwrap().as_deref(), Some("9"));
        assert_eq!(other_blobs.get(&r.sha256).unwrap(), b"scan");
        let cmd = open_store_only(&config, true).unwrap();
        assert_eq!(cmd.cursor("portal").unwrap().as_deref(), Some("9"));
    }

    /// An unreachable server is an error naming the setting, never the URL (its password).
    #[test]
    fn an_unreachable_postgres_is_an_error_without_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            backend: StoreBackend::Postgres {
                url: Secret::new("postgres://u:s3cret@127.0.0.1:1/db".into()),
                pool_size: 1,
                connect_timeout: Duration::from_secs(2),
            },
            ..sqlite(dir.path())
        };
        let err = open_store_only(&config, false).err().expect("refused");
        let text = format!("{err:#}");
        assert!(text.contains("store.url"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
