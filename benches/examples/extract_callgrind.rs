//! Runs the `extraction` bench's workload (50 brands, the 4 KB answer) a fixed number of times,
//! for instruction counts, which stay repeatable on a loaded machine where wall-clock figures
//! do not:
//!
//! ```sh
//! cargo build --release -p echo-benches --example extract_callgrind
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/extract_callgrind 1000 ascii
//! callgrind_annotate cg.out
//! ```
//!
//! Arguments: the number of iterations (default 1,000) and what to run: `ascii` (the default,
//! `BrandMatcher::extract` as in the bench's `brand_matcher`), `unicode` (with one non-ASCII
//! brand) or `naive` (the regex baseline). Building the matcher is paid once per run: the
//! per-call cost is the difference of two runs divided by the difference of their iterations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use echo_benches::extraction::{self as workload, ANSWER};

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u32 = args.next().map_or(1_000, |a| a.parse().unwrap());
    let what = args.next().unwrap_or_else(|| "ascii".to_owned());
    let mut mentions = 0u64;
    match what.as_str() {
        "ascii" | "unicode" => {
            let brands = if what == "ascii" {
                workload::brands()
            } else {
                workload::unicode_brands()
            };
            let matcher = workload::matcher(&brands);
            for _ in 0..iterations {
                let found = matcher.extract(black_box(ANSWER));
                mentions += found.brands.iter().map(|b| u64::from(b.count)).sum::<u64>();
            }
        }
        "naive" => {
            let regexes = workload::naive_regexes(&workload::brands());
            for _ in 0..iterations {
                let found = workload::naive_extract(&regexes, black_box(ANSWER));
                mentions += found.iter().map(|f| u64::from(f.2)).sum::<u64>();
            }
        }
        other => panic!("unknown workload {other:?}: ascii, unicode or naive"),
    }
    println!("{iterations} runs of {what}, {mentions} mentions");
}
