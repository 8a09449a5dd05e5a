//! Per-model prices for cost accounting.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::ProviderKind;

/// The price of one model, in millionths of a US dollar per million tokens (so $0.15 / 1M
/// tokens is `150_000`): integers keep cost sums exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Input (prompt) tokens.
    pub input_micros_per_mtok: u64,
    /// Output (completion) tokens.
    pub output_micros_per_mtok: u64,
}

/// Prices by `(provider, model)`. A model's dated snapshot (`gpt-4o-mini-2024-07-18`) is
/// priced as its longest listed prefix (`gpt-4o-mini`). Unknown models cost 0 and are reported
/// as unpriced, never guessed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    prices: HashMap<ProviderKind, Vec<(String, ModelPrice)>>,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// List prices published by the providers for common models (USD, checked 2026). Operators
    /// override them with [`PriceTable::set`] from configuration.
    pub fn with_defaults() -> Self {
        let mut t = Self::new();
        let list: &[(ProviderKind, &str, u64, u64)] = &[
            (ProviderKind::OpenAi, "gpt-4o-mini", 150_000, 600_000),
            (ProviderKind::OpenAi, "gpt-4o", 2_500_000, 10_000_000),
            (ProviderKind::OpenAi, "gpt-4.1-mini", 400_000, 1_600_000),
            (ProviderKind::OpenAi, "gpt-4.1", 2_000_000, 8_000_000),
            (
                ProviderKind::Anthropic,
                "claude-3-5-haiku",
                800_000,
                4_000_000,
            ),
            (
                ProviderKind::Anthropic,
                "claude-sonnet-4",
                3_000_000,
                15_000_000,
            ),
            (
                ProviderKind::Anthropic,
                "claude-3-7-sonnet",
                3_000_000,
                15_000_000,
            ),
            (ProviderKind::Gemini, "gemini-2.0-flash", 100_000, 400_000),
            (ProviderKind::Gemini, "gemini-2.5-flash", 300_000, 2_500_000),
            (
                ProviderKind::Gemini,
                "gemini-2.5-pro",
                1_250_000,
                10_000_000,
            ),
            (ProviderKind::Perplexity, "sonar", 1_000_000, 1_000_000),
            (ProviderKind::Perplexity, "sonar-pro", 3_000_000, 15_000_000),
            (ProviderKind::Simulated, "", 0, 0),
        ];
        for (provider, model, input, output) in list {
            t.set(
                *provider,
                model,
                ModelPrice {
                    input_micros_per_mtok: *input,
                    output_micros_per_mtok: *output,
                },
            );
        }
        t
    }

    /// Sets (or replaces) a model's price.
    pub fn set(&mut self, provider: ProviderKind, model: &str, price: ModelPrice) {
        let entries = self.prices.entry(provider).or_default();
        entries.retain(|(m, _)| m != model);
        entries.push((model.to_owned(), price));
        // Longest prefix first, so lookups take the most specific entry.
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    }

    /// The price for a model, if listed.
    pub fn price(&self, provider: ProviderKind, model: &str) -> Option<ModelPrice> {
        self.prices
            .get(&provider)?
            .iter()
            .find(|(m, _)| model.starts_with(m.as_str()))
            .map(|(_, p)| *p)
    }

    /// Cost of a call in millionths of a dollar, rounded up; `None` when the model is unpriced.
    pub fn cost_micros(
        &self,
        provider: ProviderKind,
        model: &str,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Option<u64> {
        let p = self.price(provider, model)?;
        let total = u128::from(input_tokens) * u128::from(p.input_micros_per_mtok)
            + u128::from(output_tokens) * u128::from(p.output_micros_per_mtok);
        u64::try_from(total.div_ceil(1_000_000)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_cost() {
        let t = PriceTable::with_defaults();
        // 1,000 in + 500 out on gpt-4o-mini: 1000*0.15 + 500*0.6 = 450 micro-dollars.
        assert_eq!(
            t.cost_micros(ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18", 1_000, 500),
            Some(450)
        );
        // The longer prefix wins: gpt-4o-mini is not priced as gpt-4o.
        assert_eq!(
            t.price(ProviderKind::OpenAi, "gpt-4o-mini")
                .map(|p| p.input_micros_per_mtok),
            Some(150_000)
        );
        assert_eq!(
            t.cost_micros(ProviderKind::OpenAi, "unknown-model", 1, 1),
            None
        );
        assert_eq!(
            t.cost_micros(ProviderKind::Simulated, "anything", 10, 10),
            Some(0)
        );
    }
}
