//! Chaos, bounded: the daemon SIGKILLed at random moments over many cycles while letters keep
//! arriving; after a last clean run every letter is on its topic exactly once and the Maildir
//! is empty. The loop that found issue 16's duplicate (tansu's understated high watermark,
//! `broker.rs`), kept as a standing case.
//!
//! Small in CI (`PETITIOND_CHAOS_CYCLES`, default 8). The large run (BENCHMARKS.md):
//!
//! ```text
//! PETITIOND_CHAOS_CYCLES=300 scripts/test.sh --test it chaos -- --nocapture
//! ```
//!
//! `PETITIOND_CHAOS_SEED` repeats a run's kill moments (each run prints its seed).

use crate::helpers::*;
use std::time::Duration;

/// xorshift64*: the kill moments and batch sizes, repeatable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % below
    }
}

fn env_num(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sigkill_at_random_moments_over_many_cycles_loses_nothing_and_duplicates_nothing() {
    let Some(brokers) = broker() else { return };
    let cycles = env_num("PETITIOND_CHAOS_CYCLES").unwrap_or(8);
    let seed = env_num("PETITIOND_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }) | 1;
    eprintln!("chaos: {cycles} cycles, PETITIOND_CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let mut app = TestApp::new(&brokers, "");
    let (mut ids, mut n) = (Vec::new(), 0);
    for cycle in 0..cycles {
        // Letters arrive while the daemon is down and while it runs.
        for _ in 0..rng.next(25) {
            ids.push(app.deliver(&letter(n)));
            n += 1;
        }
        app.start();
        let first = rng.next(800);
        std::thread::sleep(Duration::from_millis(first));
        for _ in 0..rng.next(15) {
            ids.push(app.deliver_now(&letter(n)));
            n += 1;
        }
        let then = rng.next(700);
        std::thread::sleep(Duration::from_millis(then));
        app.kill();
        eprintln!(
            "cycle {cycle}: killed after {} ms, {} letters so far",
            first + then,
            ids.len()
        );
    }
    app.start();
    let records = consume(
        &brokers,
        &app.topic,
        ids.len(),
        Duration::from_secs(180),
        Duration::from_secs(3),
    );
    eprintln!(
        "chaos: {cycles} cycles, {} letters, {} records read (seed {seed})",
        ids.len(),
        records.len()
    );
    assert_exactly_once(&records, &ids);
    assert_eq!(
        std::fs::read_dir(app.maildir.join("new")).unwrap().count(),
        0,
        "every letter moved to cur/"
    );
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
}
