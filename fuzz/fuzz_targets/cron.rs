#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::check_cron(data));
