//! What is needed to reproduce (or explain a change in) a batch run's numbers.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{ProviderConfig, ProviderKind};

/// The version of Echo that computed a record.
pub const ECHO_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Lowercase hexadecimal SHA-256 of `bytes`.
///
/// ```
/// use echo_core::analysis::sha256_hex;
/// assert_eq!(
///     sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// One answer's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerFingerprint {
    /// Iteration index within the run.
    pub index: u32,
    /// Model the API reported for this answer, when it reported one.
    pub model: Option<String>,
    /// SHA-256 (hex) of the answer text exactly as received; `None` for a failed call.
    pub sha256: Option<String>,
}

/// The reproducibility record of one batch run: the request that produced the answers and a hash
/// of each answer, so that a later run can be compared like for like and a silent model update
/// shows as a change of reported model rather than as a trend.
///
/// ```
/// use echo_core::analysis::ReproducibilityRecord;
/// use echo_core::model::{ProviderConfig, ProviderKind};
///
/// let config = ProviderConfig { provider: ProviderKind::OpenAi, model: "gpt-4o".into(), temperature: 0.7 };
/// let mut record = ReproducibilityRecord::new(&config, Some("Be concise."), "Best CRM?");
/// record.record_answer(0, Some("gpt-4o-2024-08-06"), Some("HubSpot."));
/// record.record_answer(1, None, None);
/// assert_eq!(record.models_reported, ["gpt-4o-2024-08-06"]);
/// assert_eq!(record.answers[1].sha256, None);
/// assert_eq!(record.prompt_sha256.len(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproducibilityRecord {
    /// Provider queried.
    pub provider: ProviderKind,
    /// Model requested.
    pub model_requested: String,
    /// Distinct models the API reported, in order of first appearance; more than one means the
    /// model changed during the run (see [`model_changed`](Self::model_changed)).
    pub models_reported: Vec<String>,
    /// Sampling temperature requested; `None` if the configured value was not a finite number.
    pub temperature: Option<f32>,
    /// System prompt sent, verbatim.
    pub system_prompt: Option<String>,
    /// SHA-256 (hex) of the user prompt's UTF-8 bytes.
    pub prompt_sha256: String,
    /// Echo version ([`ECHO_VERSION`]).
    pub echo_version: String,
    /// One fingerprint per recorded answer, in recording order.
    pub answers: Vec<AnswerFingerprint>,
}

impl ReproducibilityRecord {
    /// A record for a run of `config` with `prompt`, before any answer.
    pub fn new(config: &ProviderConfig, system_prompt: Option<&str>, prompt: &str) -> Self {
        Self {
            provider: config.provider,
            model_requested: config.model.clone(),
            models_reported: Vec::new(),
            temperature: config.temperature.is_finite().then_some(config.temperature),
            system_prompt: system_prompt.map(str::to_owned),
            prompt_sha256: sha256_hex(prompt.as_bytes()),
            echo_version: ECHO_VERSION.to_owned(),
            answers: Vec::new(),
        }
    }

    /// Adds answer `index`: the model the API reported and the answer text (`None` if failed).
    pub fn record_answer(
        &mut self,
        index: u32,
        reported_model: Option<&str>,
        answer: Option<&str>,
    ) {
        if let Some(m) = reported_model
            && !self.models_reported.iter().any(|r| r == m)
        {
            self.models_reported.push(m.to_owned());
        }
        self.answers.push(AnswerFingerprint {
            index,
            model: reported_model.map(str::to_owned),
            sha256: answer.map(|a| sha256_hex(a.as_bytes())),
        });
    }

    /// Whether the API reported more than one model during the run.
    pub fn model_changed(&self) -> bool {
        self.models_reported.len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_contents() {
        let config = ProviderConfig {
            provider: ProviderKind::Anthropic,
            model: "claude".into(),
            temperature: f32::NAN,
        };
        let mut r = ReproducibilityRecord::new(&config, None, "");
        assert_eq!(
            r.prompt_sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(r.temperature, None);
        assert_eq!(r.echo_version, env!("CARGO_PKG_VERSION"));
        r.record_answer(0, Some("a"), Some("x"));
        r.record_answer(1, Some("b"), Some("x"));
        r.record_answer(2, Some("a"), Some("y"));
        assert!(r.model_changed());
        assert_eq!(r.models_reported, ["a", "b"]);
        assert_eq!(r.answers[0].sha256, r.answers[1].sha256);
        assert_ne!(r.answers[0].sha256, r.answers[2].sha256);
        crate::analysis::assert_json_round_trip(&r);
    }
}
