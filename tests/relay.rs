//! The link emulator of the latency experiment (`examples/relay.rs`),
//! checked on loopback: a one-byte ping-pong takes the configured round
//! trip, a bulk transfer runs at the configured rate (within 5 %).

#[path = "../examples/relay.rs"]
#[allow(dead_code)]
mod relay;

use std::time::Duration;

use relay::{check, LinkSpec};

fn assert_link(rtt_ms: u64, mbit: u64) {
    let spec = LinkSpec::new(Duration::from_millis(rtt_ms), mbit * 1_000_000 / 8);
    let r = check(spec, Duration::from_secs(3)).expect("relay check ran");
    assert!(
        r.rtt_ok,
        "round trip through the relay set to {rtt_ms} ms: measured {:.2} ms",
        r.rtt_ms
    );
    assert!(
        r.rate_ok,
        "rate through the relay set to {mbit} Mbit/s: measured {:.2} Mbit/s",
        r.rate_mbit
    );
}

#[test]
fn relay_gives_the_rtt_and_rate_it_is_set_to() {
    assert_link(100, 100);
    assert_link(20, 40);
}
