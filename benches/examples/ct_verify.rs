//! dudect-style timing test of API-key verification's CPU path (parse, checksum, HMAC,
//! constant-time comparison), after Reparaz, Balasch and Verbauwhede, "Dude, is my code
//! constant time?" (DATE 2017).
//!
//! Three classes are measured interleaved in a random order (fixed seed): a valid key, a
//! key whose id is unknown (the store found nothing: comparison against the dummy digest),
//! and a known id with a wrong secret (the stored digest is another secret's). Every class
//! presents the same pool of 1,000 well-formed keys; only the store's answer differs. Timing
//! that varies with the *presented* text is visible to whoever chose it and says nothing
//! about stored secrets, so it is held constant across classes. The store's answer is an
//! owned, freshly written copy, as `find_api_key` returns; only parse + `KeyHasher::verify`
//! is timed, with `Instant` (this VM's clock ticks in about 10 ns).
//!
//! For each pair of classes a Welch t-test runs on the raw timings, on 100 percentile crops
//! (keep measurements below the `1 − 0.5^(10(i+1)/100)` quantile, thresholds from a discarded
//! first batch, as `dudect.h` does) and a second-order test (centred squares). The goal is
//! max |t| < 4.5.
//!
//! A positive control in the same run, a naive `==` on secret bytes that differ at the first
//! versus the last byte, must show |t| > 100, proving the harness sees a leak of that size.
//!
//! Run: `cargo run --release -p echo-benches --example ct_verify [measurements]`
//! (default 3,000,000; pin it for less noise: `taskset -c 1 …`). Prints every t statistic and
//! exits 1 when the verify path shows max |t| ≥ 4.5 or the control |t| ≤ 100.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use echo_core::auth::{ApiKey, KeyEnvironment, KeyHasher, PUBLIC_ID_LEN, Pepper, SECRET_LEN};
use echo_core::model::SecretDigest;

const THRESHOLD: f64 = 4.5;
const CONTROL_THRESHOLD: f64 = 100.0;
const POOL: usize = 1_000;
const CROPS: usize = 100;
const REPEAT: usize = 8;

/// SplitMix64: a fixed-seed generator for class order and pool picks (not for secrets).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Welford's online mean and variance.
#[derive(Clone, Copy, Default)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn var(&self) -> f64 {
        if self.n < 2.0 {
            0.0
        } else {
            self.m2 / (self.n - 1.0)
        }
    }
}

fn welch_t(a: &Moments, b: &Moments) -> f64 {
    let se = (a.var() / a.n + b.var() / b.n).sqrt();
    if se == 0.0 || a.n < 2.0 || b.n < 2.0 {
        0.0
    } else {
        (a.mean - b.mean) / se
    }
}

/// All tests for `classes` classes: raw, CROPS percentile crops, second order.
struct Tests {
    thresholds: Vec<f64>,
    raw: Vec<Moments>,
    cropped: Vec<Vec<Moments>>,
    // Second-order: centred squares, using the first batch's class means.
    second: Vec<Moments>,
    centre: Vec<f64>,
}

impl Tests {
    fn new(first_batch: &[(usize, f64)], classes: usize) -> Self {
        let mut sorted: Vec<f64> = first_batch.iter().map(|&(_, x)| x).collect();
        sorted.sort_by(f64::total_cmp);
        let thresholds = (0..CROPS)
            .map(|i| {
                let p = 1.0 - 0.5f64.powf(10.0 * (i + 1) as f64 / CROPS as f64);
                sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
            })
            .collect();
        let mut centre = vec![Moments::default(); classes];
        for &(c, x) in first_batch {
            centre[c].push(x);
        }
        Self {
            thresholds,
            raw: vec![Moments::default(); classes],
            cropped: vec![vec![Moments::default(); classes]; CROPS],
            second: vec![Moments::default(); classes],
            centre: centre.iter().map(|m| m.mean).collect(),
        }
    }

    fn push(&mut self, class: usize, x: f64) {
        self.raw[class].push(x);
        for (crop, &th) in self.cropped.iter_mut().zip(&self.thresholds) {
            if x < th {
                crop[class].push(x);
            }
        }
        let d = x - self.centre[class];
        self.second[class].push(d * d);
    }

    /// (label, t) of every test between classes a and b.
    fn t_values(&self, a: usize, b: usize) -> Vec<(String, f64)> {
        let mut out = vec![("raw".to_owned(), welch_t(&self.raw[a], &self.raw[b]))];
        for (i, crop) in self.cropped.iter().enumerate() {
            out.push((
                format!("crop{i:02}<{:.0}ns", self.thresholds[i]),
                welch_t(&crop[a], &crop[b]),
            ));
        }
        out.push((
            "second-order".to_owned(),
            welch_t(&self.second[a], &self.second[b]),
        ));
        out
    }
}

/// Measures `n` calls of `measure(prepare(class, index))` with classes in random order; only
/// `measure` is timed. `prepare` plays the store: it returns what a lookup would (an owned
/// copy, freshly written, as `find_api_key` returns an owned record).
fn run<I, P: FnMut(usize, usize) -> I, M: FnMut(&I) -> u8>(
    n: usize,
    classes: usize,
    rng: &mut Rng,
    mut prepare: P,
    mut measure: M,
) -> Tests {
    let batch = (n / 100).clamp(10_000, 100_000);
    let mut first = Vec::with_capacity(batch);
    for _ in 0..batch {
        let (c, i) = (rng.below(classes), rng.below(POOL));
        let input = black_box(prepare(c, i));
        let start = Instant::now();
        black_box(measure(&input));
        first.push((c, start.elapsed().as_nanos() as f64));
        drop(input);
    }
    // Timings are kept raw and analysed afterwards: updating 100 crop statistics per
    // measurement would sweep the cache between measurements.
    let mut samples: Vec<(u8, u32)> = Vec::with_capacity(n);
    for _ in 0..n {
        let (c, i) = (rng.below(classes), rng.below(POOL));
        let input = black_box(prepare(c, i));
        let start = Instant::now();
        black_box(measure(&input));
        let elapsed = start.elapsed();
        drop(input);
        samples.push((c as u8, elapsed.as_nanos().min(u128::from(u32::MAX)) as u32));
    }
    let mut tests = Tests::new(&first, classes);
    for (c, x) in samples {
        tests.push(usize::from(c), f64::from(x));
    }
    tests
}

fn report(title: &str, tests: &Tests, names: &[&str], pairs: &[(usize, usize)]) -> f64 {
    println!("\n== {title}");
    for (c, name) in names.iter().enumerate() {
        let m = &tests.raw[c];
        println!(
            "  class {name:<22} n = {:>9}  mean = {:>8.1} ns  sd = {:>8.1} ns",
            m.n,
            m.mean,
            m.var().sqrt()
        );
    }
    let mut overall: f64 = 0.0;
    for &(a, b) in pairs {
        let ts = tests.t_values(a, b);
        let n = tests.raw[a].n + tests.raw[b].n;
        let (label, max) = ts
            .iter()
            .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
            .map(|(l, t)| (l.clone(), *t))
            .unwrap();
        let tau = max.abs() / n.sqrt();
        println!(
            "  {} vs {}: max |t| = {:.2} ({label}), max tau = {:.2e}, (5/tau)^2 = {:.3e} measurements",
            names[a],
            names[b],
            max.abs(),
            tau,
            (5.0 / tau).powi(2)
        );
        println!("    all t statistics:");
        for chunk in ts.chunks(6) {
            let line: Vec<String> = chunk.iter().map(|(l, t)| format!("{l}={t:+.2}")).collect();
            println!("      {}", line.join("  "));
        }
        overall = overall.max(max.abs());
    }
    overall
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.replace('_', "").parse().expect("measurements: a number"))
        .unwrap_or(3_000_000);
    let mut rng = Rng(0x0ec0_0de5_eed5_1234);

    // On the heap behind an Arc, as the verifier holds it.
    let pepper = Pepper::new(b"ct_verify pepper: fixed, 32 bytes or more".to_vec()).unwrap();
    let hasher = std::sync::Arc::new(KeyHasher::new(pepper));
    // The presented keys, one per pool slot, and for each the store's two possible answers
    // for its id: its own digest, or the digest of another secret. Every class presents the
    // same texts; only what is stored differs (see the module docs).
    let keys: Vec<String> = (0..POOL)
        .map(|_| {
            let k = ApiKey::generate(KeyEnvironment::Live).unwrap();
            k.expose().to_owned()
        })
        .collect();
    let digests: Vec<[SecretDigest; 2]> = keys
        .iter()
        .map(|k| {
            let own = hasher.digest(ApiKey::parse(k).unwrap().secret());
            let other = ApiKey::generate(KeyEnvironment::Live).unwrap();
            let other = hasher.digest(ApiKey::parse(other.expose()).unwrap().secret());
            [own, other]
        })
        .collect();
    let inputs: [Vec<(&str, Option<&SecretDigest>)>; 3] = [
        // valid key: the stored digest is the key's own
        (0..POOL)
            .map(|i| (keys[i].as_str(), Some(&digests[i][0])))
            .collect(),
        // unknown key id: the lookup found nothing
        (0..POOL).map(|i| (keys[i].as_str(), None)).collect(),
        // known id, wrong secret: the stored digest is another secret's
        (0..POOL)
            .map(|i| (keys[i].as_str(), Some(&digests[i][1])))
            .collect(),
    ];
    let table: [Vec<(&str, SecretDigest, bool)>; 3] = std::array::from_fn(|c| {
        inputs[c]
            .iter()
            .enumerate()
            .map(|(i, &(text, stored))| {
                (
                    text,
                    stored.copied().unwrap_or(digests[i][1]),
                    stored.is_some(),
                )
            })
            .collect()
    });
    // Sanity: the three classes give the expected answers.
    for (c, expect) in [(0, true), (1, false), (2, false)] {
        let (text, stored) = inputs[c][0];
        let parsed = ApiKey::parse(text).unwrap();
        assert_eq!(hasher.verify(parsed.secret(), stored).matched(), expect);
    }

    println!(
        "ct_verify: {n} measurements of parse + checksum + HMAC-SHA-256 + constant-time compare"
    );
    println!("threshold |t| < {THRESHOLD}; crops: {CROPS} percentiles; pool of {POOL} keys");
    let started = Instant::now();
    let verify = run(
        n,
        3,
        &mut rng,
        |c, i| {
            // Plays the store: an owned, freshly written copy of the row's digest, built
            // without a branch on the class (a mispredicted branch just before the timer
            // spills into the measurement and tells the classes apart). For an unknown id the
            // copy is made too and `found` is false.
            let (text, digest, found) = table[c][i];
            (text, Box::new(digest), found)
        },
        |&(text, ref digest, found): &(&str, Box<SecretDigest>, bool)| {
            let stored = found.then_some(&**digest);
            match ApiKey::parse(text) {
                Ok(parsed) => hasher
                    .verify(parsed.secret(), stored)
                    .as_choice()
                    .unwrap_u8(),
                Err(_) => 2,
            }
        },
    );
    let names = ["valid key", "unknown key id", "wrong secret"];
    let max_verify = report(
        "verify path (parse, checksum, HMAC, ct compare)",
        &verify,
        &names,
        &[(0, 1), (0, 2), (1, 2)],
    );
    println!("  ({:.1} s)", started.elapsed().as_secs_f64());

    // Positive control: `==` on the 43 secret bytes, differing at the first vs the last byte.
    // Each measurement makes REPEAT comparisons (other pool entries, same class): one 43-byte
    // `==` is a memcmp of a few vector compares, and its early exit saves only a nanosecond or
    // two, below this clock's 10 ns granularity per call.
    let control_n = n.max(1_000_000) / 3;
    let secrets: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| k.as_bytes()[PUBLIC_ID_LEN..PUBLIC_ID_LEN + SECRET_LEN].to_vec())
        .collect();
    let flip = |s: &[u8], at: usize| {
        let mut v = s.to_vec();
        v[at] ^= 1;
        v
    };
    let early: Vec<Vec<u8>> = secrets.iter().map(|s| flip(s, 0)).collect();
    let late: Vec<Vec<u8>> = secrets.iter().map(|s| flip(s, SECRET_LEN - 1)).collect();
    let started = Instant::now();
    let control = run(
        control_n,
        2,
        &mut rng,
        |c, i| (c, i),
        |&(c, i): &(usize, usize)| {
            let others = [&early, &late][c];
            let mut equal = 0u8;
            for k in 0..REPEAT {
                let j = (i + k * 97) % POOL;
                equal |=
                    u8::from(black_box(secrets[j].as_slice()) == black_box(others[j].as_slice()));
            }
            equal
        },
    );
    let max_control = report(
        &format!("positive control: naive `==` on the 43 secret bytes, {REPEAT} per measurement"),
        &control,
        &["differs at byte 0", "differs at byte 42"],
        &[(0, 1)],
    );
    println!("  ({:.1} s)", started.elapsed().as_secs_f64());

    let verify_ok = max_verify < THRESHOLD;
    let control_ok = max_control > CONTROL_THRESHOLD;
    println!(
        "\nRESULT verify path max |t| = {max_verify:.2} ({}), control max |t| = {max_control:.2} ({})",
        if verify_ok {
            "PASS: < 4.5"
        } else {
            "FAIL: >= 4.5"
        },
        if control_ok {
            "PASS: > 100"
        } else {
            "FAIL: <= 100"
        },
    );
    if !(verify_ok && control_ok) {
        std::process::exit(1);
    }
}
