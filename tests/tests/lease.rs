//! The lease against Parameter Store (the emulator, over HTTP): holders die mid-hold (as a
//! Lambda killed at its deadline), waiters race for the takeover with delays injected between
//! every step of the protocol, many rounds. Every hold interval is recorded: none may overlap.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use joinkeeper::aws::parameters::ParameterStore;
use joinkeeper::lease::{Acquire, LeaseValue, Leases};
use joinkeeper_tests::*;

/// One hold: from the moment `try_acquire` returned it to the last moment the holder acted.
#[derive(Clone, Debug)]
struct Hold {
    holder: String,
    from: Instant,
    to: Instant,
}

fn jitter(seed: &mut u64, max_ms: u64) -> Duration {
    // xorshift: deterministic per task, different across tasks.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(*seed % (max_ms + 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holders_killed_mid_hold_and_racing_waiters_never_hold_one_lease_at_once() {
    let emulator = Emulator::start();
    let clients = emulator.function_clients("token-refresher").await;
    let store = ParameterStore::new(clients.ssm.clone());
    let holds: Arc<Mutex<Vec<Hold>>> = Arc::default();
    let takeovers = Arc::new(Mutex::new(0usize));
    let name = "/joinkeeper/race/leases/regenerate";
    let ttl = Duration::from_millis(700);
    let guard = Duration::from_millis(250);
    let waiters = 4u64;
    let rounds = 12;

    let tasks = (0..waiters).map(|w| {
        let holds = holds.clone();
        let takeovers = takeovers.clone();
        let leases = Leases::new(store.clone())
            .with_guard(guard)
            .with_injected_delay(move |_step| {
                // Widen every window between the protocol's calls.
                let mut seed = 0x9E37_79B9_7F4A_7C15u64
                    ^ (w + 1)
                    ^ std::process::id() as u64
                    ^ (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos() as u64)
                        .unwrap_or(1));
                jitter(&mut seed, 40)
            });
        tokio::spawn(async move {
            let mut seed = 0x2545_F491_4F6C_DD1Du64.wrapping_mul(w + 7);
            let mut held_rounds = 0;
            while held_rounds < rounds {
                let value = LeaseValue {
                    request_id: format!("waiter-{w}"),
                    ..Default::default()
                };
                match leases.try_acquire(name, ttl, value).await.expect("acquire") {
                    Acquire::Busy(_) => {
                        tokio::time::sleep(jitter(&mut seed, 60)).await;
                    }
                    Acquire::Held(mut held) => {
                        let from = Instant::now();
                        if held.previous.is_some() {
                            *takeovers.lock().expect("lock") += 1;
                        }
                        held_rounds += 1;
                        // Work in steps while the lease may be trusted, renewing sometimes.
                        let mut to = Instant::now();
                        for _ in 0..(jitter(&mut seed, 4).as_millis() as usize + 1) {
                            if !leases.may_act(&held) {
                                break;
                            }
                            to = Instant::now();
                            tokio::time::sleep(jitter(&mut seed, 120)).await;
                            if jitter(&mut seed, 3).as_millis() == 0
                                && !leases.renew(&mut held, ttl).await.expect("renew")
                            {
                                break;
                            }
                        }
                        if leases.may_act(&held) {
                            to = Instant::now();
                        }
                        let dies = jitter(&mut seed, 2).as_millis() == 0;
                        holds.lock().expect("lock").push(Hold {
                            holder: held.value.holder.clone(),
                            from,
                            to,
                        });
                        if !dies {
                            leases.release(held).await.expect("release");
                        } // else: killed mid-hold; the lease expires and is taken over
                    }
                }
            }
        })
    });
    for t in futures_util::future::join_all(tasks).await {
        t.expect("task");
    }

    let mut holds = holds.lock().expect("lock").clone();
    holds.sort_by_key(|h| h.from);
    assert_eq!(holds.len(), (waiters as usize) * rounds);
    for pair in holds.windows(2) {
        assert!(
            pair[0].to <= pair[1].from,
            "two holders at once: {} until {:?}, {} from {:?}",
            pair[0].holder,
            pair[0].to,
            pair[1].holder,
            pair[1].from
        );
    }
    let takeovers = *takeovers.lock().expect("lock");
    println!(
        "{} holds by {waiters} waiters, {takeovers} takeovers of expired leases, no overlap",
        holds.len()
    );
    assert!(
        takeovers >= 3,
        "holders did die and were taken over ({takeovers})"
    );
}
