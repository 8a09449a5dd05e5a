//! Implement `Provider` for your own model and measure it like any other.
//!
//! ```sh
//! cargo run -p echo-core --example custom_provider
//! ```

use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::prelude::*;
use echo_core::provider::FinishReason;

/// A toy model that recommends CRMs from a fixed rotation: HubSpot in two answers of three.
#[derive(Debug)]
struct RotatingModel;

#[async_trait]
impl Provider for RotatingModel {
    fn kind(&self) -> ProviderKind {
        // Any OpenAI-compatible endpoint (a local model, a gateway) is measured under this kind.
        ProviderKind::OpenAiCompatible
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let text = match request.sample_index % 3 {
            0 => "1. **HubSpot**: free to start.\n2. **Pipedrive**: simple pipelines.",
            1 => "Most startups pick Salesforce, though HubSpot is cheaper.",
            _ => "Try Pipedrive or Salesforce.",
        };
        Ok(Completion {
            text: text.to_owned(),
            model: request.model.clone(),
            input_tokens: 12,
            output_tokens: 20,
            latency: Duration::from_millis(1),
            finish_reason: FinishReason::Stop,
            citations: Vec::new(),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let echo = Echo::builder(Arc::new(MemoryStore::new()))
        .provider(Arc::new(RotatingModel))
        .build();
    let me = echo.local_user("dev@example.com").await?;
    let draft = ExperimentDraft::new(
        Prompt::parse("Which CRM should a startup use?")?,
        Brand::new(BrandName::parse("HubSpot")?),
    )
    .competitor(Brand::new(BrandName::parse("Salesforce")?))
    .competitor(Brand::new(BrandName::parse("Pipedrive")?))
    .provider(ProviderKind::OpenAiCompatible, "rotating-1")
    .iterations(30)?;
    let outcome = echo.run(me.id, draft).await?;

    let run = &outcome.batch_runs[0];
    let measured = run.metrics.as_ref().ok_or("the run has no metrics")?;
    for brand in &measured.metrics.brands {
        println!(
            "{:<10} named in {:>2} of {} answers",
            brand.brand, brand.visibility.successes, brand.visibility.n
        );
    }
    let hubspot = measured.metrics.target().ok_or("no target row")?;
    assert_eq!(
        hubspot.visibility.successes, 20,
        "two answers in three name HubSpot"
    );
    Ok(())
}
