//! `bt-sim`'s scenario: the command line's strategy mix, capacity
//! distribution and arrival process turned into a [`NetConfig`], and the
//! results turned into JSON lines, a summary and a table. Everything that
//! draws a number draws it from one RNG seeded by `--seed`.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::net::{NetConfig, PeerResult, PeerSpec};

/// How leechers' upload capacities are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum CapacityDist {
    /// Uniform between two rates (bytes/s).
    Uniform(u64, u64),
    /// An empirical CDF: (bytes/s, cumulative fraction) points, rising;
    /// drawn by inverting it, log-linearly between points.
    Cdf(Vec<(f64, f64)>),
}

impl CapacityDist {
    /// `uniform:LO-HI` (sizes, K/M allowed) or the text of a CDF file:
    /// lines `BYTES_PER_S FRACTION`, `#` comments.
    pub fn parse_uniform(spec: &str) -> Result<Self, String> {
        let r = spec
            .strip_prefix("uniform:")
            .ok_or_else(|| format!("{spec:?}: expected uniform:LO-HI or a file"))?;
        let (lo, hi) = r
            .split_once('-')
            .ok_or_else(|| format!("{spec:?}: expected uniform:LO-HI"))?;
        let lo = crate::cli::parse_size(lo)?;
        let hi = crate::cli::parse_size(hi)?;
        if lo > hi || hi == 0 {
            return Err(format!("{spec:?}: need 0 <= LO <= HI, HI > 0"));
        }
        Ok(CapacityDist::Uniform(lo, hi))
    }

    pub fn parse_cdf(text: &str) -> Result<Self, String> {
        let mut pts = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut it = line.split_whitespace();
            let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
                return Err(format!("line {}: expected BYTES_PER_S FRACTION", n + 1));
            };
            let rate: f64 = a.parse().map_err(|_| format!("line {}: {a:?}", n + 1))?;
            let frac: f64 = b.parse().map_err(|_| format!("line {}: {b:?}", n + 1))?;
            if let Some(&(r0, f0)) = pts.last() {
                if rate <= r0 || frac < f0 {
                    return Err(format!("line {}: points must rise", n + 1));
                }
            }
            if rate <= 0.0 || !(0.0..=1.0).contains(&frac) {
                return Err(format!("line {}: rate > 0, fraction in [0, 1]", n + 1));
            }
            pts.push((rate, frac));
        }
        if pts.len() < 2 || pts.last().map(|p| p.1) != Some(1.0) {
            return Err("a CDF needs at least two points and must end at 1".into());
        }
        Ok(CapacityDist::Cdf(pts))
    }

    pub fn sample(&self, rng: &mut StdRng) -> u64 {
        match self {
            CapacityDist::Uniform(lo, hi) => rng.gen_range(*lo..=*hi),
            CapacityDist::Cdf(pts) => {
                let u: f64 = rng.gen_range(pts[0].1..=1.0);
                let k = pts.iter().position(|p| p.1 >= u).unwrap_or(pts.len() - 1);
                if k == 0 {
                    return pts[0].0 as u64;
                }
                let ((r0, f0), (r1, f1)) = (pts[k - 1], pts[k]);
                let t = if f1 > f0 { (u - f0) / (f1 - f0) } else { 1.0 };
                (r0.ln() + t * (r1.ln() - r0.ln())).exp().round() as u64
            }
        }
    }
}

/// When leechers join.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// All at the start.
    Flash,
    /// A Poisson process of this many arrivals per second.
    Poisson(f64),
}

impl std::str::FromStr for Arrival {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "flash" {
            return Ok(Arrival::Flash);
        }
        let rate: f64 = s
            .strip_prefix("poisson:")
            .and_then(|r| r.parse().ok())
            .filter(|r: &f64| *r > 0.0 && r.is_finite())
            .ok_or_else(|| format!("{s:?}: expected flash or poisson:RATE (arrivals/s > 0)"))?;
        Ok(Arrival::Poisson(rate))
    }
}

/// `classic=0.9,bittyrant=0.1`: strategies and their shares.
pub fn parse_mix(s: &str) -> Result<Vec<(String, f64)>, String> {
    let mut mix = Vec::new();
    for part in s.split(',') {
        let (name, share) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected NAME=SHARE"))?;
        if crate::choker::by_name(name, 1).is_none() {
            return Err(format!(
                "{name:?}: unknown strategy (classic, bittyrant, propshare, freerider)"
            ));
        }
        let share: f64 = share
            .parse()
            .ok()
            .filter(|x: &f64| *x >= 0.0 && x.is_finite())
            .ok_or_else(|| format!("{part:?}: the share must be a number >= 0"))?;
        mix.push((name.to_string(), share));
    }
    if mix.iter().map(|m| m.1).sum::<f64>() <= 0.0 {
        return Err("the shares sum to 0".into());
    }
    Ok(mix)
}

/// Splits `n` peers by the mix (largest remainders), in mix order.
pub fn apportion(mix: &[(String, f64)], n: usize) -> Vec<String> {
    let total: f64 = mix.iter().map(|m| m.1).sum();
    let exact: Vec<f64> = mix.iter().map(|m| m.1 / total * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..mix.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut left = n - counts.iter().sum::<usize>();
    for k in order {
        if left == 0 {
            break;
        }
        counts[k] += 1;
        left -= 1;
    }
    mix.iter()
        .zip(counts)
        .flat_map(|(m, c)| std::iter::repeat_n(m.0.clone(), c))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub leechers: usize,
    pub seeders: usize,
    pub size: u64,
    pub piece_length: u64,
    pub mix: Vec<(String, f64)>,
    pub capacity: CapacityDist,
    pub arrival: Arrival,
    /// Upload capacity of each seeder (bytes/s).
    pub seeder_capacity: u64,
    /// Give peers bt's own peer id prefix (turning on bt's seed split),
    /// as real bt-fetch processes have: for the check against them.
    pub bt_peer_ids: bool,
    /// Carry payload as real bytes (slower; the same results) instead of
    /// counted zeros: [`NetConfig::virtual_payload`] off.
    pub real_payload: bool,
    /// Overrides the seed split's pause threshold (tuning only).
    pub split_threshold: Option<f64>,
    pub seed: u64,
}

/// A leecher downloads this many times faster than it uploads (at least
/// [`MIN_DOWNLOAD`]): asymmetric access lines.
pub const DOWNLOAD_FACTOR: u64 = 4;
pub const MIN_DOWNLOAD: u64 = 256 * 1024;

impl Scenario {
    /// The network: leechers are peers 0..N (strategies shuffled over
    /// them, capacities drawn independently), seeders N..N+S.
    pub fn build(&self) -> NetConfig {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5eed_5eed);
        let mut strategies = apportion(&self.mix, self.leechers);
        strategies.shuffle(&mut rng);
        let mut t = 0.0f64;
        let mut peers: Vec<PeerSpec> = strategies
            .into_iter()
            .map(|strategy| {
                let upload = self.capacity.sample(&mut rng).max(1);
                if let Arrival::Poisson(rate) = self.arrival {
                    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                    t += -u.ln() / rate;
                }
                PeerSpec {
                    strategy,
                    upload,
                    download: (upload * DOWNLOAD_FACTOR).max(MIN_DOWNLOAD),
                    join_at: Duration::from_millis((t * 1000.0) as u64),
                    seeder: false,
                }
            })
            .collect();
        for _ in 0..self.seeders {
            peers.push(PeerSpec {
                strategy: "classic".into(),
                upload: self.seeder_capacity,
                download: self.seeder_capacity.max(MIN_DOWNLOAD),
                join_at: Duration::ZERO,
                seeder: true,
            });
        }
        let mut cfg = NetConfig {
            peers,
            size: self.size,
            piece_length: self.piece_length,
            seed: self.seed,
            ..NetConfig::default()
        };
        if self.bt_peer_ids {
            cfg.peer_id_prefix = *b"-BT0100-";
        }
        cfg.virtual_payload = !self.real_payload;
        cfg.split_threshold = self.split_threshold;
        cfg
    }
}

/// A peer's JSON line.
pub fn peer_json(r: &PeerResult) -> String {
    json!({
        "peer": r.peer,
        "strategy": r.strategy,
        "upload_capacity": r.upload_capacity,
        "download_seconds": r.download_seconds.map(round3),
        "uploaded": r.uploaded,
        "downloaded": r.downloaded,
    })
    .to_string()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The median of some numbers (mean of the middle two), None if empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Per-strategy figures over the leechers.
pub fn summary(results: &[PeerResult], simulated: Duration) -> serde_json::Value {
    let mut by: BTreeMap<&str, Vec<&PeerResult>> = BTreeMap::new();
    for r in results.iter().filter(|r| !r.seeder) {
        by.entry(&r.strategy).or_default().push(r);
    }
    let mut out = serde_json::Map::new();
    for (name, rs) in by {
        let times: Vec<f64> = rs.iter().filter_map(|r| r.download_seconds).collect();
        let up: Vec<f64> = rs.iter().map(|r| r.uploaded as f64).collect();
        let down: Vec<f64> = rs.iter().map(|r| r.downloaded as f64).collect();
        let mean = (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64);
        out.insert(
            name.to_string(),
            json!({
                "peers": rs.len(),
                "completed": times.len(),
                "median_download_seconds": median(&times).map(round3),
                "mean_download_seconds": mean.map(round3),
                "median_uploaded": median(&up),
                "median_downloaded": median(&down),
            }),
        );
    }
    let seeded: u64 = results
        .iter()
        .filter(|r| r.seeder)
        .map(|r| r.uploaded)
        .sum();
    json!({
        "summary": out,
        "simulated_seconds": round3(simulated.as_secs_f64()),
        "seeders_uploaded": seeded,
    })
}

/// The readable table.
pub fn table(results: &[PeerResult], summary: &serde_json::Value) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:>6}  {:<10} {:>12} {:>12} {:>14} {:>14}\n",
        "peer", "strategy", "upload B/s", "download s", "uploaded", "downloaded"
    ));
    for r in results.iter().filter(|r| !r.seeder) {
        let t = r
            .download_seconds
            .map_or("-".to_string(), |t| format!("{t:.1}"));
        s.push_str(&format!(
            "{:>6}  {:<10} {:>12} {:>12} {:>14} {:>14}\n",
            r.peer, r.strategy, r.upload_capacity, t, r.uploaded, r.downloaded
        ));
    }
    s.push('\n');
    s.push_str(&format!(
        "{:<10} {:>6} {:>9} {:>12} {:>12}\n",
        "strategy", "peers", "complete", "median s", "mean s"
    ));
    if let Some(m) = summary["summary"].as_object() {
        for (name, v) in m {
            let f = |k: &str| v[k].as_f64().map_or("-".into(), |x| format!("{x:.1}"));
            s.push_str(&format!(
                "{:<10} {:>6} {:>9} {:>12} {:>12}\n",
                name,
                v["peers"],
                v["completed"],
                f("median_download_seconds"),
                f("mean_download_seconds")
            ));
        }
    }
    s.push_str(&format!(
        "simulated {:.1} s\n",
        summary["simulated_seconds"].as_f64().unwrap_or(0.0)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_apportions_exactly() {
        let mix = parse_mix("classic=0.9,bittyrant=0.1").unwrap();
        let s = apportion(&mix, 30);
        assert_eq!(s.iter().filter(|x| *x == "classic").count(), 27);
        assert_eq!(s.iter().filter(|x| *x == "bittyrant").count(), 3);
        // Remainders go to the largest fractions, ties to the first.
        let thirds = parse_mix("classic=1,bittyrant=1,propshare=1").unwrap();
        let s = apportion(&thirds, 10);
        let count = |n: &str| s.iter().filter(|x| *x == n).count();
        assert_eq!(
            (count("classic"), count("bittyrant"), count("propshare")),
            (4, 3, 3)
        );
        assert!(parse_mix("tyrant=1").is_err());
        assert!(parse_mix("classic").is_err());
    }

    #[test]
    fn capacity_distributions() {
        let u = CapacityDist::parse_uniform("uniform:10K-20K").unwrap();
        assert_eq!(u, CapacityDist::Uniform(10_240, 20_480));
        let cdf = CapacityDist::parse_cdf("# x\n1000 0\n100000 0.5\n1000000 1\n").unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let xs: Vec<f64> = (0..2000).map(|_| cdf.sample(&mut rng) as f64).collect();
        let m = median(&xs).unwrap();
        assert!((70_000.0..140_000.0).contains(&m), "{m}");
        assert!(xs.iter().all(|x| (1000.0..=1_000_000.0).contains(x)));
        assert!(CapacityDist::parse_cdf("1000 0.5\n10 1\n").is_err());
        assert_eq!("poisson:2".parse::<Arrival>(), Ok(Arrival::Poisson(2.0)));
        assert!("poisson:0".parse::<Arrival>().is_err());
    }
}
