//! The link emulator of the latency experiment (`examples/relay.rs`),
//! checked on loopback: a one-byte ping-pong takes the configured round
//! trip, a bulk transfer runs at the configured rate. The test asserts
//! what holds on a loaded machine too: never earlier than the round trip,
//! never faster than the rate, and not grossly slower; `relay --check`
//! (run by `examples/bench-latency.sh` before measuring) holds the relay to
//! 10 % and 5 %.

#[path = "../examples/relay.rs"]
#[allow(dead_code)]
mod relay;

use std::time::Duration;

use relay::{check, LinkSpec};

fn assert_link(rtt_ms: u64, mbit: u64) {
    let spec = LinkSpec::new(Duration::from_millis(rtt_ms), mbit * 1_000_000 / 8);
    let r = check(spec, Duration::from_secs(3)).expect("relay check ran");
    let (set_rtt, set_rate) = (rtt_ms as f64, mbit as f64);
    assert!(
        r.rtt_ms >= set_rtt * 0.98 && r.rtt_ms <= set_rtt + 500.0,
        "round trip through the relay set to {rtt_ms} ms: measured {:.2} ms",
        r.rtt_ms
    );
    assert!(
        r.rate_mbit <= set_rate * 1.05 && r.rate_mbit >= set_rate * 0.5,
        "rate through the relay set to {mbit} Mbit/s: measured {:.2} Mbit/s",
        r.rate_mbit
    );
}

#[test]
fn relay_gives_the_rtt_and_rate_it_is_set_to() {
    assert_link(100, 100);
    assert_link(20, 40);
}
