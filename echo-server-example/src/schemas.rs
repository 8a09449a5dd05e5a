//! The JSON Schemas of request fields whose rules a derive cannot state: the patterns behind
//! `echo-core`'s validated types, for `#[schema(schema_with = …)]`. Each mirrors one parser, so
//! a client (or schemathesis) that generates data from the document sends what the server
//! accepts, and what the document calls invalid is refused with 422.

use utoipa::openapi::schema::{Array, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{KnownFormat, SchemaFormat};

/// Characters no name may hold: C0 and C1 controls (`char::is_control`) and the invisible or
/// text-direction characters of `echo_core::model::is_invisible_format`.
const NOT_IN_NAMES: &str =
    r"\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff";

/// Controls a prompt may not hold: all but tab, line feed and carriage return.
const NOT_IN_PROMPTS: &str = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f";

/// A pattern for text of allowed characters with at least one that is not whitespace (the
/// parsers trim, then refuse what is empty).
fn visible(forbidden: &str) -> String {
    format!(r"^[^{forbidden}]*[^\s{forbidden}][^{forbidden}]*$")
}

fn string(min: usize, max: usize, pattern: Option<String>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(pattern)
        .description(Some(description))
        .build()
}

/// `echo_core::model::BrandName`: a brand, alias or competitor.
pub fn brand_name() -> Object {
    string(
        1,
        200,
        Some(visible(NOT_IN_NAMES)),
        "1 to 200 characters, not only spaces; no control or invisible formatting characters",
    )
}

/// A list of aliases: at most 50 brand names (`echo_core::model::Brand::MAX_ALIASES`).
pub fn aliases() -> Array {
    ArrayBuilder::new()
        .items(brand_name())
        .max_items(Some(50))
        .build()
}

/// `echo_core::model::Label`: an API key's name.
pub fn label() -> Object {
    string(
        1,
        100,
        Some(visible(NOT_IN_NAMES)),
        "1 to 100 characters, not only spaces; no control or invisible formatting characters",
    )
}

/// `echo_core::model::Prompt`.
pub fn prompt() -> Object {
    string(
        1,
        10_000,
        Some(visible(NOT_IN_PROMPTS)),
        "1 to 10,000 characters, not only whitespace; tabs and line breaks allowed, other control characters not",
    )
}

/// A model name (`echo_core::model::ProviderConfig::validate`).
pub fn model() -> Object {
    string(
        1,
        200,
        Some(visible(r"\x00-\x1f\x7f-\x9f")),
        "1 to 200 printable characters",
    )
}

/// An optional model name.
pub fn optional_model() -> Object {
    let mut o = model();
    o.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
    o
}

/// A password under the default policy (`echo_core::auth::PasswordPolicy`).
pub fn password() -> Object {
    string(
        8,
        128,
        Some(r"\S".to_owned()),
        "8 to 128 characters, not only whitespace",
    )
}

/// `echo_core::model::Email`: structural, at most 254 characters.
pub fn email() -> Object {
    let mut o = string(3, 254, None, "An email address (case-insensitive)");
    o.format = Some(SchemaFormat::KnownFormat(KnownFormat::Email));
    o
}

/// The cron expressions the schema promises: five fields of `*`, `*/step` or a number in the
/// field's range, with a day of month up to 28 so that every one has an occurrence. The server
/// accepts more (ranges, lists, names, `@daily`), as `echo_core::runner::CronSchedule` does.
pub fn cron() -> Object {
    let field = |n: &str| format!(r"(\*(/[1-9][0-9]?)?|{n})");
    let pattern = format!(
        r"^{} {} {} {} {}$",
        field("[0-5]?[0-9]"),
        field("[01]?[0-9]|2[0-3]"),
        field("[1-9]|1[0-9]|2[0-8]"),
        field("[1-9]|1[0-2]"),
        field("[0-6]"),
    );
    let mut o = string(
        9,
        200,
        Some(pattern),
        "A cron expression in UTC (minute hour day-of-month month day-of-week); the first run starts now",
    );
    o.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
    o
}

/// A web domain (`hubspot.com`), as `routes::brand` validates it.
pub fn domain() -> Object {
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let mut o = string(
        3,
        253,
        Some(format!(r"^({label}\.)+{label}$")),
        "The brand's web domain, e.g. hubspot.com",
    );
    o.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
    o
}

/// An enumeration of strings, `null` allowed when `optional`.
pub fn one_of(values: &[&str], optional: bool, description: &str) -> Object {
    let mut o = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build();
    if optional {
        o.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
        if let Some(e) = o.enum_values.as_mut() {
            e.push(serde_json::Value::Null);
        }
    }
    o
}

/// A brand's match mode (`echo_core::model::MatchMode`).
pub fn match_mode() -> Object {
    one_of(
        &["case_insensitive", "case_sensitive", "aliases_only"],
        true,
        "`case_insensitive` (default), `case_sensitive` (brands named by ordinary words, like \"Close\"), or `aliases_only` (needs aliases)",
    )
}

/// A key's environment.
pub fn key_environment() -> Object {
    one_of(
        &["live", "test"],
        true,
        "`live` or `test`; default: `test` on a staging server, `live` elsewhere",
    )
}

/// An experiment status filter (`echo_core::model::ExperimentStatus`).
pub fn experiment_status() -> Object {
    one_of(
        &[
            "pending",
            "queued",
            "running",
            "completed",
            "failed",
            "cancelled",
        ],
        false,
        "Only experiments in this status",
    )
}

/// A run's answers cursor (`AnswerCursor::encode`): `i` and the next answer index in hex.
pub fn answer_cursor() -> Object {
    string(
        2,
        9,
        Some("^i[0-9a-fA-F]{1,8}$".to_owned()),
        "From a previous page's next_cursor",
    )
}

/// A page cursor of the experiment listing (`echo_core::store::ExperimentCursor::encode`:
/// creation time in hexadecimal microseconds, a dash, the id).
pub fn experiment_cursor() -> Object {
    let hex = |n: usize| format!("[0-9a-fA-F]{{{n}}}");
    string(
        38,
        51,
        Some(format!(
            "^[0-9a-fA-F]{{1,14}}-{}-{}-{}-{}-{}$",
            hex(8),
            hex(4),
            hex(4),
            hex(4),
            hex(12)
        )),
        "From a previous page's next_cursor",
    )
}

/// A prompt set's phrasings: 5 to 50 prompts
/// (`echo_core::model::PromptSetVersion::MIN_PROMPTS`/`MAX_PROMPTS`), no two alike.
pub fn phrasings() -> Array {
    ArrayBuilder::new()
        .items(prompt())
        .min_items(Some(5))
        .max_items(Some(50))
        .unique_items(true)
        .description(Some(
            "5 to 50 phrasings of the topic's question, each a valid prompt; two that differ only in case or surrounding spaces are refused",
        ))
        .build()
}

/// `echo_core::model::WebhookUrl` as a development server accepts it: `https://` and a host
/// name (its last label starting with a letter) or `http://` to a loopback host, an optional
/// port, and an ASCII path and query. Staging and production also refuse hosts that are
/// private or loopback addresses (422), which no pattern can know.
pub fn webhook_url() -> Object {
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let top = "[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let port = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})";
    let chars = "A-Za-z0-9._~!$&'()*+,;=:@%/-";
    string(
        9,
        2048,
        Some(format!(
            r"^(https://({label}\.)*{top}|http://(localhost|127\.0\.0\.1|\[::1\]))(:{port})?(/[{chars}]*)?(\?[{chars}?]*)?$"
        )),
        "Where deliveries are posted: https (http only to localhost on a development server); \
         staging and production refuse private and loopback addresses",
    )
}

/// `echo_core::model::WebhookEndpoint::validate_description`.
pub fn webhook_description() -> Object {
    let mut o = string(
        0,
        200,
        Some(r"^[^\x00-\x1f\x7f-\x9f]*$".to_owned()),
        "A note for you, at most 200 characters; no control characters",
    );
    o.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
    o
}
