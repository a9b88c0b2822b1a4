//! The deployment assets under `deploy/`, checked without a service manager or container
//! engine: the packaged and container configs are the example config with fixed
//! substitutions (so they document every key and cannot drift), they pass `petitiond check`
//! where their paths exist, and the compose file, Prometheus config and Grafana provisioning
//! refer to files and ports that exist. `scripts/test.sh` adds what needs tools: promtool,
//! hadolint, `systemd-analyze verify`, and the .deb installed with `dpkg -i`.

use crate::capture::Captured;
use crate::helpers::BIN;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const EXAMPLE_HEAD: &str =
    "# petitiond example configuration — every key, with its default where it has one.\n";

/// What the Debian package changes in `config/petitiond.toml`: absolute paths of the
/// installed layout and every secret as a systemd credential.
const DEB: &[(&str, &str)] = &[
    (
        EXAMPLE_HEAD,
        "# petitiond configuration as the Debian package installs it (/etc/petitiond/petitiond.toml, a\n\
         # conffile: your edits survive upgrades). Made from config/petitiond.toml by the substitutions\n\
         # in tests/it/deploy.rs; every key, with its default where it has one.\n",
    ),
    (
        "data_dir = \"../data\"",
        "data_dir = \"/var/lib/petitiond\"",
    ),
    (
        "path = \"../data/mail\"",
        "path = \"/var/lib/petitiond/mail\"",
    ),
    (
        "calendar_files = []",
        "calendar_files = [\"/usr/share/petitiond/calendars/cn-2026.toml\"]",
    ),
    (
        "# \"sasl.password\" = { env = \"PETITIOND_KAFKA_PASSWORD\" }",
        "# \"sasl.password\" = { credential = \"petitiond.kafka-sasl-password\" }",
    ),
    (
        "# \"ssl.key.password\" = { file = \"/run/secrets/kafka-key-password\" }",
        "# \"ssl.key.password\" = { credential = \"petitiond.kafka-ssl-key-password\" }",
    ),
    (
        "# key = { file = \"/run/secrets/petitiond-repeat-key\" }",
        "# key = { credential = \"petitiond.repeat-key\" }",
    ),
    (
        "# password = { env = \"PETITIOND_IMAP_PASSWORD\" }   # or { file = \"/run/secrets/imap\" }",
        "# password = { credential = \"petitiond.imap-password\" }",
    ),
    (
        "# api_key = { env = \"PETITIOND_HOTLINE_API_KEY\" }",
        "# api_key = { credential = \"petitiond.hotline-api-key\" }",
    ),
    (
        "secret = { env = \"PETITIOND_PORTAL_SECRET\" }",
        "secret = { credential = \"petitiond.portal-secret\" }",
    ),
    (
        "#   url = { env = \"PETITIOND_STORE_URL\" }",
        "#   url = { credential = \"petitiond.store-url\" }",
    ),
    (
        "password = { env = \"PETITIOND_SMTP_PASSWORD\" }",
        "password = { credential = \"petitiond.smtp-password\" }",
    ),
];

/// The container image's config: the package's layout, plus the compose file's broker and an
/// admin port reachable from the other containers (compose publishes it on the host's
/// loopback only). Secrets: compose mounts them in /run/secrets, which the image names as
/// `$CREDENTIALS_DIRECTORY`, so the same `{ credential = ... }` entries work.
const CONTAINER: &[(&str, &str)] = &[
    ("brokers = \"127.0.0.1:9092\"", "brokers = \"kafka:9092\""),
    ("listen = \"127.0.0.1:9464\"", "listen = \"0.0.0.0:9464\""),
    // Off loopback the admin API needs its token (`check` refuses it otherwise).
    (
        "# token = { credential = \"petitiond.admin-token\" }",
        "token = { credential = \"petitiond.admin-token\" }",
    ),
    (
        "# petitiond configuration as the Debian package installs it (/etc/petitiond/petitiond.toml, a\n\
         # conffile: your edits survive upgrades).",
        "# petitiond configuration of the container image (/etc/petitiond/petitiond.toml; mount your own\n\
         # over it).",
    ),
];

fn substitute(text: &str, subs: &[(&str, &str)], what: &str) -> String {
    let mut out = text.to_string();
    for (from, to) in subs {
        assert_eq!(
            out.matches(from).count(),
            1,
            "{what}: `{from}` must occur exactly once in its source"
        );
        out = out.replacen(from, to, 1);
    }
    out
}

/// The generated config must equal the committed one; `UPDATE_DEPLOY=1` rewrites it.
fn assert_generated(path: &Path, want: &str) {
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(path, want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "{} is not config/petitiond.toml with the substitutions of tests/it/deploy.rs: \
         rerun this test with UPDATE_DEPLOY=1 and review the diff",
        path.display()
    );
}

#[test]
fn packaged_and_container_configs_are_the_example_with_fixed_substitutions() {
    let example = std::fs::read_to_string(root().join("config/petitiond.toml")).unwrap();
    let deb = substitute(&example, DEB, "deb");
    assert_generated(&root().join("deploy/debian/petitiond.toml"), &deb);
    let container = substitute(&deb, CONTAINER, "container");
    assert_generated(&root().join("deploy/container/petitiond.toml"), &container);
    // No secret is read from the environment in either.
    for (name, text) in [("deb", &deb), ("container", &container)] {
        assert!(
            !text.contains("env = \"PETITIOND_"),
            "{name} config names an env secret"
        );
    }
}

/// The package's config with its absolute paths moved under a temporary root passes
/// `petitiond check` (scripts/test.sh also checks it as installed by `dpkg -i`).
#[test]
fn packaged_config_passes_check_in_the_installed_layout() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let etc = r.join("etc/petitiond");
    let share = r.join("usr/share/petitiond/calendars");
    std::fs::create_dir_all(etc.join("dictionaries")).unwrap();
    std::fs::create_dir_all(etc.join("model")).unwrap();
    std::fs::create_dir_all(&share).unwrap();
    std::fs::copy(
        root().join("config/model/classifier.bin"),
        etc.join("model/classifier.bin"),
    )
    .unwrap();
    std::fs::copy(root().join("config/rules.toml"), etc.join("rules.toml")).unwrap();
    for f in std::fs::read_dir(root().join("config/dictionaries")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), etc.join("dictionaries").join(f.file_name())).unwrap();
    }
    for f in std::fs::read_dir(root().join("calendars")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), share.join(f.file_name())).unwrap();
    }
    let text = std::fs::read_to_string(root().join("deploy/debian/petitiond.toml"))
        .unwrap()
        .replace(
            "\"/usr/share/petitiond/",
            &format!("\"{}/usr/share/petitiond/", r.display()),
        )
        .replace(
            "\"/var/lib/petitiond",
            &format!("\"{}/var/lib/petitiond", r.display()),
        );
    std::fs::write(etc.join("petitiond.toml"), text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(etc.join("petitiond.toml"))
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .captured();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The calendar came from the installed file, not the built-in copy.
    let out = std::process::Command::new(BIN)
        .args(["sla", "due", "--config"])
        .arg(etc.join("petitiond.toml"))
        .args([
            "--clock",
            "letter.register",
            "--start",
            "2026-09-30T18:00:00+08:00",
        ])
        .output()
        .captured();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2026-10-08T17:30:00+08:00",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `{ credential = "NAME" }` reads `$CREDENTIALS_DIRECTORY/NAME` (as systemd's LoadCredential=
/// provides it); without the variable or the file, `check` names the key, line and cause.
#[test]
fn a_credential_secret_is_read_from_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\nallow_plaintext_auth = true\n[kafka.secret_properties]\n\"sasl.password\" = { credential = \"petitiond.kafka-sasl-password\" }\n\n[[departments]]\nid = \"desk\"\nname = \"desk\"\ntopic = \"t.desk\"\n\n[routing]\ndefault_lead = \"desk\"\n",
    )
    .unwrap();
    let check = |creds_dir: Option<&Path>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["check", "--config"]).arg(&config);
        match creds_dir {
            Some(d) => cmd.env("CREDENTIALS_DIRECTORY", d),
            None => cmd.env_remove("CREDENTIALS_DIRECTORY"),
        };
        let out = cmd.output().captured();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("p.toml:5: kafka.secret_properties.\"sasl.password\": credential `petitiond.kafka-sasl-password`: $CREDENTIALS_DIRECTORY is not set"),
        "{err}"
    );
    let (code, err) = check(Some(&creds));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot read credential `petitiond.kafka-sasl-password`"),
        "{err}"
    );
    std::fs::write(creds.join("petitiond.kafka-sasl-password"), "s3cret-pw\n").unwrap();
    let (code, err) = check(Some(&creds));
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("s3cret-pw"));
}

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{path} is empty"))
}

fn strs(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Lints the compose file as far as an engine is not needed: the four services, pinned images,
/// every bind-mounted file present in the repository, host ports on loopback only, and the
/// wiring between them (Prometheus scrapes petitiond's admin port, Grafana's dashboard names
/// the provisioned data source).
#[test]
fn compose_file_wires_petitiond_kafka_prometheus_and_grafana() {
    let compose = yaml("deploy/compose.yaml");
    let services = compose["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for want in ["petitiond", "kafka", "prometheus", "grafana"] {
        assert!(
            names.contains(&want),
            "compose lacks service {want}: {names:?}"
        );
    }
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        let build = &svc["build"];
        if build.is_badvalue() {
            let image = svc["image"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no image"));
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{name}: image `{image}` is not pinned to a version tag"
            );
        } else {
            let context = root()
                .join("deploy")
                .join(build["context"].as_str().unwrap());
            let file = context.join(build["dockerfile"].as_str().unwrap());
            assert!(file.is_file(), "{name}: {} missing", file.display());
            assert!(
                context.join("Cargo.toml").is_file(),
                "{name}: the build context is not the repository root"
            );
        }
        for v in strs(&svc["volumes"]) {
            let source = v.split(':').next().unwrap();
            if source.starts_with('.') {
                let p = root().join("deploy").join(source);
                assert!(
                    p.exists(),
                    "{name}: bind mount {source} missing ({})",
                    p.display()
                );
            }
        }
        for p in strs(&svc["ports"]) {
            assert!(
                p.starts_with("127.0.0.1:"),
                "{name}: port {p} not bound to loopback"
            );
        }
    }
    // petitiond's config in the image listens where Prometheus scrapes, with the admin token
    // that compose gives both of them as a secret.
    let container =
        std::fs::read_to_string(root().join("deploy/container/petitiond.toml")).unwrap();
    assert!(container.contains("listen = \"0.0.0.0:9464\""));
    assert!(container.contains("\ntoken = { credential = \"petitiond.admin-token\" }"));
    for svc in ["petitiond", "prometheus"] {
        assert!(
            strs(&compose["services"][svc]["secrets"]).contains(&"petitiond.admin-token".into()),
            "{svc} lacks the admin token secret"
        );
    }
    assert!(!compose["secrets"]["petitiond.admin-token"]["file"].is_badvalue());
    assert!(container.contains("brokers = \"kafka:9092\""));
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let targets: Vec<String> = prom["scrape_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|j| j["static_configs"].as_vec().cloned().unwrap_or_default())
        .flat_map(|s| strs(&s["targets"]))
        .collect();
    assert!(
        targets.contains(&"petitiond:9464".to_string()),
        "{targets:?}"
    );
    for f in strs(&prom["rule_files"]) {
        assert!(
            root().join("deploy/prometheus").join(&f).is_file(),
            "rule file {f}"
        );
    }
    // Grafana: the provisioned data source's uid is the one the dashboard uses.
    let ds = yaml("deploy/grafana/provisioning/datasources/petitiond.yaml");
    let uid = ds["datasources"][0]["uid"].as_str().unwrap().to_string();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/petitiond.json")).unwrap(),
    )
    .unwrap();
    let mut uids = Vec::new();
    collect_datasource_uids(&dash, &mut uids);
    assert!(!uids.is_empty());
    for u in uids {
        assert!(
            u == uid || u == "${datasource}",
            "dashboard names data source {u}, not {uid}"
        );
    }
}

fn collect_datasource_uids(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(ds) = m.get("datasource")
                && let Some(uid) = ds.get("uid").and_then(|u| u.as_str())
            {
                out.push(uid.to_string());
            }
            m.values().for_each(|v| collect_datasource_uids(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_datasource_uids(v, out)),
        _ => {}
    }
}

/// The Containerfile: multi-stage, a non-root numeric user, a health check, the data volume,
/// and the files the config points at copied where it looks for them.
#[test]
fn containerfile_runs_unprivileged_with_healthcheck_and_data_volume() {
    let text = std::fs::read_to_string(root().join("deploy/Containerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert!(count("FROM ") >= 2, "multi-stage");
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("USER");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "numeric non-root user: {user}"
    );
    assert_eq!(count("HEALTHCHECK "), 1);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("VOLUME") && l.contains("/var/lib/petitiond"))
    );
    for dest in [
        "/etc/petitiond/petitiond.toml",
        "/etc/petitiond/rules.toml",
        "/etc/petitiond/dictionaries",
        "/etc/petitiond/model",
        "/usr/share/petitiond/calendars",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("COPY") && l.contains(dest)),
            "Containerfile does not install {dest}"
        );
    }
}
