//! The process-wide panic hook: where a panic happened, never what it said.
//!
//! std's own panic messages quote the data they failed on — a bad slice prints the string
//! (`byte index 2 is not a char boundary; it is inside '中' ... of `中文?=``), `unwrap` prints
//! the error's `Debug` — and in petitiond that data is a petitioner's letter or record. The
//! default hook writes those messages to stderr, that is into the journal. This hook writes
//! the thread, the source location and, only when the message is a string literal written in
//! the code (`panic!("...")`, `unreachable!("...")`: no run-time data in it), that literal;
//! any formatted message is withheld. With `RUST_BACKTRACE` set it adds the backtrace
//! (function names and addresses only). Installed by `cli::main` before anything else runs.
//!
//! It does not catch anything: intake's item boundary turns a panic on one item into a
//! quarantine (`intake`), `app` reports a task that panicked.

use std::panic::PanicHookInfo;

/// Shown in place of a message formatted at run time.
pub use petitiond_core::diag::WITHHELD;

/// Replaces the default panic hook (see the module doc).
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let line = report(info);
        let bt = std::backtrace::Backtrace::capture();
        let bt = match bt.status() {
            std::backtrace::BacktraceStatus::Captured => format!("\n{bt}"),
            _ => String::new(),
        };
        if tracing::dispatcher::has_been_set() {
            tracing::error!("{line}{bt}");
        } else {
            eprintln!("{line}{bt}");
        }
    }));
}

pub use petitiond_store::join_error;

/// The one line the hook writes for a panic: thread, location, and the message only if it is
/// a literal from the code.
pub fn report(info: &PanicHookInfo<'_>) -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    let at = info.location().map_or_else(
        || "an unknown location".to_string(),
        |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
    );
    // `panic!("literal")` carries a `&'static str`; anything formatted carries a `String`.
    let message = info
        .payload()
        .downcast_ref::<&'static str>()
        .copied()
        .unwrap_or(WITHHELD);
    format!("thread '{name}' panicked at {at}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Runs `f` on a thread named `name` with `report` as the hook for that thread (others keep
    /// the hook they had: tests run in parallel); returns what the hook wrote.
    fn hook_output(name: &str, f: impl FnOnce() + Send + 'static) -> Vec<String> {
        // The hook is process-wide: one of these tests at a time swaps it.
        static SWAPPING: Mutex<()> = Mutex::new(());
        let _one = SWAPPING.lock().unwrap_or_else(|p| p.into_inner());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let previous: Arc<dyn Fn(&PanicHookInfo<'_>) + Send + Sync> =
            Arc::from(std::panic::take_hook());
        let (s, p, n) = (Arc::clone(&seen), Arc::clone(&previous), name.to_string());
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(n.as_str()) {
                s.lock().unwrap().push(report(info));
            } else {
                p(info);
            }
        }));
        let joined = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(f)
            .unwrap()
            .join();
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| previous(info)));
        assert!(joined.is_err(), "the closure was meant to panic");
        seen.lock().unwrap().clone()
    }

    #[test]
    fn a_slicing_panic_is_reported_without_the_input() {
        let out = hook_output("slicer", || {
            let subject = std::hint::black_box(String::from("=?gbk?中文?= 张三 13812345678"));
            let rest = &subject[6..];
            // The parse.rs bug: two bytes of a string that starts with a 3-byte character.
            let _ = std::hint::black_box(&rest[..2]);
        });
        assert_eq!(out.len(), 1, "{out:?}");
        let line = &out[0];
        assert!(line.contains("src/panics.rs:"), "{line}");
        assert!(line.contains("'slicer'"), "{line}");
        assert!(line.contains(WITHHELD), "{line}");
        for leak in ["中", "文", "张三", "13812345678", "gbk", "char boundary"] {
            assert!(!line.contains(leak), "{leak} in {line}");
        }
    }

    #[test]
    fn an_unwrap_on_an_error_that_quotes_data_is_withheld() {
        let out = hook_output("unwrapper", || {
            let r: Result<(), String> =
                std::hint::black_box(Err("身份证 11010519491231002X".into()));
            r.unwrap();
        });
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(!out[0].contains("11010519491231002X"), "{}", out[0]);
        assert!(out[0].contains(WITHHELD), "{}", out[0]);
    }

    #[tokio::test]
    async fn a_join_error_never_quotes_the_panic() {
        let e = tokio::task::spawn_blocking(|| {
            let r: Result<(), String> = std::hint::black_box(Err("张三 13812345678".into()));
            r.unwrap();
        })
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("13812345678"),
            "tokio's own text quotes it"
        );
        let shown = join_error(&e);
        assert!(
            !shown.contains("13812345678") && !shown.contains("张三"),
            "{shown}"
        );
        assert!(shown.contains("panicked"), "{shown}");
    }

    #[test]
    fn a_literal_message_from_the_code_is_kept() {
        let out = hook_output("literal", || panic!("validated: the store is open"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].contains("validated: the store is open"),
            "{}",
            out[0]
        );
    }
}
