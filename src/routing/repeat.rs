//! Repeat petitions (重复信访): the same petitioner on the same matter within a period.
//!
//! Owns who counts as "the same petitioner" ([`Repeat::person_keys`]: keyed hashes of the
//! normalised ID number and mobile numbers), what counts as "the same matter" ([`matter`]),
//! when an item is a repeat ([`Repeat::is_repeat`]) and the key itself ([`Repeat::load`]).
//! Intake does the store look-up between routing and recording (`intake::link`); the store
//! keeps the index (`person_items`). Configured in `[routing.repeat]`.
//!
//! **The same petitioner**: any shared key. Keys come from the petitioner fields (ID number,
//! phone; see `envelope::person` for the normalisation and why an invalid number is never a
//! key); when those give none and the item's channel is in `from_text` (default letter and
//! portal), from ID numbers and mobile numbers written in its title and content — a scanned
//! letter's cover text is the only place a letter names them before a clerk registers it. A
//! keyed hash (HMAC-SHA256, domain-separated by kind) is stored, never the number, so the index
//! can be exported or read without handing out a phone book; without the key a phone number
//! (10^10 candidates) cannot be tested against it.
//!
//! **The same matter**: the item's category and the lead department the rules chose for it
//! (`rights/hrss`), before the incomplete-item check sends it to the intake desk and without
//! the repeat flag. Items without a category have no matter and are never linked: "unclassified"
//! says nothing about what an item is about, and flagging a citizen as a repeat petitioner on a
//! guess would be worse than missing one (see ARCHITECTURE.md, decisions).
//!
//! **The key**: `routing.repeat.key` (an `env` or `file` secret, ≥ 32 bytes), or else a random
//! key generated once into `data_dir/repeat-petition.key` (mode 0600) and reused. Its bytes as
//! written are the HMAC key, so the generated file can later be moved into a secret store and
//! referenced with `{ file = ... }` without breaking the links. Changing the key starts the
//! counting afresh: earlier items keep their old hashes and are no longer found.

use super::config::RepeatConfig;
use hmac::{Hmac, Mac};
use petitiond_core::envelope::{Category, Envelope, person};
use rand::TryRngCore;
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file the generated key lives in, inside the data dir.
pub const KEY_FILE: &str = "repeat-petition.key";

/// Most keys one item counts under (ID numbers first): each is an index row and a term of the
/// look-up, and a text naming dozens of numbers says nothing more about who wrote it.
pub const MAX_PERSON_KEYS: usize = 8;

/// The matter of an item routed to `lead` in `category`; `None` when it is unclassified.
pub fn matter(category: Option<Category>, lead: &str) -> Option<String> {
    category.map(|c| format!("{}/{lead}", c.as_str()))
}

/// The repeat-petition settings with their key. `Debug` never prints the key.
pub struct Repeat {
    key: Vec<u8>,
    config: RepeatConfig,
}

impl fmt::Debug for Repeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repeat")
            .field("key", &"<redacted>")
            .field("window_days", &self.config.window_days)
            .field("flag_at", &self.config.flag_at)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a repeat-petition key (expected 64 hex characters); restore it from a backup, or delete it to start counting afresh"
    )]
    Invalid { path: PathBuf },
}

impl Repeat {
    /// With an explicit key (tests, and config keys).
    pub fn with_key(config: RepeatConfig, key: impl Into<Vec<u8>>) -> Repeat {
        Repeat {
            key: key.into(),
            config,
        }
    }

    /// The key from config, or the one in `data_dir` (generated there on first use). Call with
    /// the data dir's lock held.
    pub fn load(config: &RepeatConfig, data_dir: &Path) -> Result<Repeat, KeyError> {
        let key = match &config.key {
            Some(k) => k.expose().as_bytes().to_vec(),
            None => load_or_create_key(&data_dir.join(KEY_FILE))?,
        };
        Ok(Repeat::with_key(config.clone(), key))
    }

    pub fn config(&self) -> &RepeatConfig {
        &self.config
    }

    fn hash(&self, kind: &str, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The keyed hashes that identify the petitioner of `env` (see the module docs), distinct,
    /// ID numbers first, at most [`MAX_PERSON_KEYS`]. Empty: the item names no usable
    /// identifier and is not counted.
    pub fn person_keys(&self, env: &Envelope) -> Vec<String> {
        let p = &env.petitioner;
        let field = |v: &Option<petitiond_core::envelope::Personal>, f: fn(&str) -> Vec<String>| {
            v.as_ref().map(|v| f(v.expose())).unwrap_or_default()
        };
        let mut ids = field(&p.id_number, person::id_numbers_in);
        let mut mobiles = field(&p.phone, person::mobiles_in);
        if ids.is_empty() && mobiles.is_empty() && self.config.from_text.contains(&env.channel) {
            for text in [
                env.request.title.as_ref().map_or("", |t| t.expose()),
                env.request.content.expose(),
            ] {
                ids.extend(person::id_numbers_in(text));
                mobiles.extend(person::mobiles_in(text));
            }
        }
        let mut seen = std::collections::HashSet::new();
        ids.iter()
            .map(|v| ("id", v))
            .chain(mobiles.iter().map(|v| ("mobile", v)))
            .filter(|kv| seen.insert(*kv))
            .take(MAX_PERSON_KEYS)
            .map(|(kind, v)| self.hash(kind, v))
            .collect()
    }

    /// The earliest `received_at` of a prior item that still counts for an item received at `at`.
    pub fn since(&self, at: jiff::Timestamp) -> jiff::Timestamp {
        let window = jiff::SignedDuration::from_hours(24 * i64::from(self.config.window_days));
        at.checked_sub(window).unwrap_or(jiff::Timestamp::MIN)
    }

    /// With `prior` related items already recorded, is this one a repeat petition?
    pub fn is_repeat(&self, prior: usize) -> bool {
        prior + 1 >= self.config.flag_at as usize
    }
}

/// Reads the generated key, or creates it: 32 random bytes from the OS, hex, mode 0600,
/// written to a temporary file, fsynced and renamed into place (a crash leaves no half key).
fn load_or_create_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim_end_matches(['\n', '\r']);
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(KeyError::Invalid {
                    path: path.to_path_buf(),
                });
            }
            warn_if_readable(path);
            return Ok(key.as_bytes().to_vec());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let key = hex::encode(bytes);
    let tmp = path.with_extension("key.tmp");
    // A stale temporary file (a crash mid-write) is removed, never reused: reopening it would
    // keep whatever mode it had.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut f = crate::store::files::create_new_private(&tmp).map_err(io)?;
    f.write_all(format!("{key}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    tracing::info!(file = %path.display(), "generated the repeat-petition key; back it up with the store");
    Ok(key.into_bytes())
}

fn warn_if_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "the repeat-petition key is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petitiond_core::envelope::{Channel, Personal, Request, Upstream};

    fn cfg() -> RepeatConfig {
        RepeatConfig {
            key: None,
            window_days: 180,
            flag_at: 3,
            from_text: vec![Channel::Letter, Channel::Portal],
        }
    }

    fn env(channel: Channel, id: &str, phone: &str, content: &str) -> Envelope {
        let mut e = Envelope::new(
            channel,
            Upstream {
                id: "1".into(),
                source: "t".into(),
                raw_ref: "sha256:00".into(),
                ..Default::default()
            },
            jiff::Timestamp::UNIX_EPOCH,
            Request {
                title: None,
                content: Personal::new(content),
            },
        );
        let f = |v: &str| (!v.is_empty()).then(|| Personal::new(v));
        e.petitioner.id_number = f(id);
        e.petitioner.phone = f(phone);
        e
    }

    #[test]
    fn the_same_person_written_differently_has_the_same_keys() {
        let r = Repeat::with_key(cfg(), "k".repeat(32));
        let a = r.person_keys(&env(Channel::Hotline, "", "138 0013 8000", "x"));
        let b = r.person_keys(&env(Channel::Portal, "", "+86-13800138000", "x"));
        let c = r.person_keys(&env(
            Channel::Letter,
            "",
            "",
            "我的电话：１３８００１３８０００",
        ));
        assert_eq!(a.len(), 1);
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a[0].len(), 64, "hex HMAC-SHA256");
        // No personal value in the key, and another key gives other hashes.
        assert!(!a[0].contains("13800138000"));
        let other = Repeat::with_key(cfg(), "j".repeat(32));
        assert_ne!(
            other.person_keys(&env(Channel::Hotline, "", "13800138000", "x")),
            a
        );
    }

    #[test]
    fn which_identifiers_count() {
        let r = Repeat::with_key(cfg(), "k".repeat(32));
        let id = "11010519491231002X";
        let keys = |e: Envelope| r.person_keys(&e).len();
        assert_eq!(keys(env(Channel::Hotline, id, "13800138000", "")), 2);
        // ID numbers and mobiles are different kinds: the same digits would not collide.
        assert_eq!(
            keys(env(Channel::Hotline, "110105194912310021", "", "")),
            0,
            "bad check digit"
        );
        assert_eq!(
            keys(env(Channel::Hotline, "", "0571-88886666", "")),
            0,
            "landline"
        );
        // Text is a fallback for letters and portal only, and only without field keys.
        assert_eq!(keys(env(Channel::Hotline, "", "", "电话13800138000")), 0);
        assert_eq!(keys(env(Channel::Portal, "", "", "电话13800138000")), 1);
        assert_eq!(
            keys(env(Channel::Portal, id, "", "老板电话13900001111")),
            1,
            "a field key wins over numbers in the text (which may be someone else's)"
        );
        assert_eq!(
            keys(env(
                Channel::Letter,
                "",
                "",
                &format!("身份证{id}，电话13800138000")
            )),
            2
        );
    }

    /// A portal item whose text held thousands of mobiles became thousands of keys: as many
    /// index rows and look-up terms per item. Now at most `MAX_PERSON_KEYS`, ID numbers first.
    #[test]
    fn crafted_text_yields_a_bounded_number_of_keys() {
        let r = Repeat::with_key(cfg(), "k".repeat(32));
        let mut text = petitiond_core::envelope::person::testing::crafted_ids(20);
        for n in 0..3000u32 {
            text.push_str(&format!("电话139{n:08}，"));
        }
        let keys = r.person_keys(&env(Channel::Portal, "", "", &text));
        assert_eq!(keys.len(), MAX_PERSON_KEYS);
        let first_id = r.hash(
            "id",
            &petitiond_core::envelope::person::id_numbers_in(&text)[0],
        );
        assert_eq!(keys[0], first_id, "ID numbers first");
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }

    #[test]
    fn matter_window_and_threshold() {
        assert_eq!(
            matter(Some(Category::Rights), "hrss").as_deref(),
            Some("rights/hrss")
        );
        assert_eq!(matter(None, "intake-desk"), None);
        let r = Repeat::with_key(cfg(), "k".repeat(32));
        let at: jiff::Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        assert_eq!(r.since(at), "2026-01-02T00:00:00Z".parse().unwrap());
        assert!(!r.is_repeat(0));
        assert!(!r.is_repeat(1));
        assert!(r.is_repeat(2), "the third time");
        assert!(r.is_repeat(5));
    }

    #[test]
    fn the_generated_key_is_private_stable_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Repeat::load(&cfg(), dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Repeat::load(&cfg(), dir.path()).unwrap();
        let e = env(Channel::Hotline, "", "13800138000", "");
        // A stale temporary file with a wide mode is not reused for a new key.
        let other = tempfile::tempdir().unwrap();
        let tmp = other.path().join(KEY_FILE).with_extension("key.tmp");
        std::fs::write(&tmp, "half").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        Repeat::load(&cfg(), other.path()).unwrap();
        let mode = std::fs::metadata(other.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            a.person_keys(&e),
            b.person_keys(&e),
            "reused, not regenerated"
        );
        // The file moved into a secret store gives the same hashes.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut from_config = cfg();
        from_config.key = Some(petitiond_core::diag::Secret::from(text.trim()));
        let c = Repeat::load(&from_config, tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(a.person_keys(&e), c.person_keys(&e));
        // A damaged key file is an error, never silently replaced.
        std::fs::write(&path, "not a key\n").unwrap();
        let err = Repeat::load(&cfg(), dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a repeat-petition key"), "{err}");
        assert!(
            !format!("{a:?}").contains(text.trim()),
            "Debug hides the key"
        );
    }
}
