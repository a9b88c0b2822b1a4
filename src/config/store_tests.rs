//! `[store]`: the backend and PostgreSQL's URL.

use super::*;

const BASE: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"

[[departments]]
id = "intake-desk"
name = "接待科"
topic = "t.intake"

[routing]
default_lead = "intake-desk"
"#;

fn with_store(store: &str, dir: &Path) -> Result<Config, ConfigErrors> {
    Config::parse(&format!("[store]\n{store}\n{BASE}"), "t.toml", dir)
}

#[test]
fn sqlite_is_the_default_backend() {
    let c = Config::parse(BASE, "t.toml", Path::new("/cfg")).unwrap();
    assert!(matches!(c.store.backend, StoreBackend::Sqlite));
}

#[test]
fn postgres_reads_its_url_as_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("url"),
        "postgres://petitiond:s3cret@db.example:5432/petitiond\n",
    )
    .unwrap();
    let c = with_store(
        "backend = \"postgres\"\nurl = { file = \"url\" }\npool_size = 4",
        dir.path(),
    )
    .unwrap();
    let StoreBackend::Postgres {
        url,
        pool_size,
        connect_timeout,
    } = &c.store.backend
    else {
        panic!("{:?}", c.store.backend)
    };
    assert_eq!(
        url.expose(),
        "postgres://petitiond:s3cret@db.example:5432/petitiond"
    );
    assert_eq!((*pool_size, *connect_timeout), (4, Duration::from_secs(10)));
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "Debug never prints the URL"
    );
}

#[test]
fn store_errors_name_the_line_and_never_echo_the_url() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad"), "postgres://u:s3cret@h:notaport/db").unwrap();
    for (store, path, line, want) in [
        (
            "backend = \"mysql\"",
            "store.backend",
            2,
            "not one of sqlite, postgres",
        ),
        ("backend = \"postgres\"", "store.backend", 2, "needs `url`"),
        (
            "backend = \"postgres\"\nurl = { env = \"PETITIOND_TEST_UNSET_VAR\" }",
            "store.url",
            3,
            "PETITIOND_TEST_UNSET_VAR",
        ),
        (
            "backend = \"postgres\"\nurl = { file = \"bad\" }",
            "store.url",
            3,
            "not a PostgreSQL connection URL",
        ),
        (
            "backend = \"postgres\"\nurl = { file = \"bad\" }\npool_size = 0",
            "store.pool_size",
            4,
            "",
        ),
        ("url = { file = \"bad\" }", "store.url", 2, "only read with"),
    ] {
        let errs = with_store(store, dir.path()).unwrap_err().0;
        let e = errs
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{store}: {errs:?}"));
        assert_eq!(e.line, Some(line), "{store}: {e:?}");
        assert!(e.message.contains(want), "{store}: {}", e.message);
        for e in &errs {
            assert!(!e.message.contains("s3cret"), "{store}: {}", e.message);
        }
    }
}
