//! The fuzz properties as property tests, for where libFuzzer cannot build: 100,000 cases per
//! target by default (`FUZZ_PROP_CASES` overrides). Inputs mix raw bytes with text drawn from
//! each parser's own alphabet, so the structured paths are reached without a corpus.

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("FUZZ_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn input(alphabet: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        alphabet.prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn api_key(data in input("(echo1_(live|test)_)?[0-9A-Za-z]{0,70}")) {
        echo_fuzz::check_api_key(&data);
    }

    #[test]
    fn brand_spec(data in input("[ A-Za-zé@.=,;_-]{0,30}(;match=(case_sensitive|aliases_only|case_insensitive|x))?")) {
        echo_fuzz::check_brand_spec(&data);
    }

    #[test]
    fn cron(data in input(".{8}((\\*|[0-9]{1,2}|[0-9]-[0-9]{1,2}|\\*/[0-9]|MON|JAN|L|W|#) ){4}(\\*|[0-9]|SUN|5L|1#2)|@(daily|weekly|hourly|yearly|monthly|reboot)")) {
        echo_fuzz::check_cron(&data);
    }

    #[test]
    fn extract(data in input("(Acme=ACME Corp|Zed;match=case_sensitive|Bär=bar)\n(Zed|Notion)\n---\n((1\\.|-|\\*|  -|10\\)) )?([ a-zA-Zäé\\[\\]()./:]|Acme|acme|ZED|Zed|Bär|BÄR|https://acme\\.com|\n){0,60}")) {
        echo_fuzz::check_extract(&data);
    }

    #[test]
    fn redact(data in input("([ a-z@.+()0-9:-]|ada@example\\.com|\\+44 20 7946 0958|GB82 WEST 1234 5698 7654 32|4111 1111 1111 1111|10\\.0\\.0\\.1|2001:db8::1){0,20}")) {
        echo_fuzz::check_redact(&data);
    }

    #[test]
    fn config_toml(data in input("(listen = \"[0-9.:]{0,20}\"|database = \"[a-z:/]{0,10}\"|\\[(security|http|privacy|rate_limits|log|workers)\\]|pepper = \"[a-z]{0,40}\"|audit_signing_key = \"[0-9a-f]{0,64}\"|retention_days_free = -?[0-9]{1,12}|[a-z_]{1,10} = [0-9]{1,20}|format = \"[a-z]{0,6}\")\n{0,6}")) {
        echo_fuzz::check_config_toml(&data);
    }

    #[test]
    fn provider_response(data in input("[\\x00-\\x09][\\x00-\\x0f](\\{\"model\":\"m\",\"choices\":\\[\\{\"message\":\\{\"content\":\"[a-z ]{0,5}\"\\},\"finish_reason\":\"stop\"\\}\\],\"usage\":\\{\"prompt_tokens\":1,\"completion_tokens\":2\\}\\}|\\{\"error\":\\{\"message\":\"sk-fuzz-3c5b0e8f7d2a4196SECRET\",\"code\":\"[a-z_]{0,10}\"\\}\\}|\\{\"model\":\"m\",\"content\":\\[\\{\"type\":\"text\",\"text\":\"[a-z]{0,4}\"\\}\\],\"stop_reason\":\"end_turn\",\"usage\":\\{\"input_tokens\":1,\"output_tokens\":1\\}\\}|\\{\"model\":\"m\",\"status\":\"completed\",\"usage\":\\{\"input_tokens\":1,\"output_tokens\":1\\},\"output\":\\[\\{\"type\":\"message\",\"content\":\\[\\{\"type\":\"output_text\",\"text\":\"[a-zé ]{1,6}\",\"annotations\":\\[\\{\"type\":\"url_citation\",\"url\":\"(https?|javascript|ftp):(//)?[a-z.]{0,6}\",\"start_index\":[0-9],\"end_index\":[0-9]\\}\\]\\}\\]\\}\\]\\})")) {
        echo_fuzz::check_provider_response(&data);
    }
}
