//! Embed Echo over a SQLite file: run an experiment on the simulated provider and print each
//! brand's visibility with its 95% interval.
//!
//! ```sh
//! cargo run -p echo-store-sqlite --example embed_sqlite -- /tmp/echo-example.db
//! ```

use echo_core::prelude::*;
use echo_core::service::ExperimentDraft;
use echo_store_sqlite::{SqliteConfig, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "echo-example.db".into());
    let store = SqliteStore::open(&path, SqliteConfig::default()).await?;
    let echo = Echo::builder(Arc::new(store)).simulated(42).build();

    let me = echo.local_user("analyst@example.com").await?;
    let draft = ExperimentDraft::new(
        Prompt::parse("What is the best CRM for a startup?")?,
        Brand::new(BrandName::parse("HubSpot")?),
    )
    .competitor(Brand::new(BrandName::parse("Salesforce")?))
    .competitor(Brand::new(BrandName::parse("Pipedrive")?))
    .iterations(100)?;
    let outcome = echo.run(me.id, draft).await?;

    for run in &outcome.batch_runs {
        let Some(measured) = &run.metrics else {
            continue;
        };
        println!(
            "{} ({}), n = {}",
            run.provider, run.model, measured.metrics.n
        );
        for brand in &measured.metrics.brands {
            let v = &brand.visibility;
            match (v.rate, v.ci95) {
                (Some(rate), Some(ci)) => println!(
                    "  {:<12} visibility {:>5.1}%  (95% CI {:.1}–{:.1}%, {} of {})",
                    brand.brand,
                    rate * 100.0,
                    ci.lower * 100.0,
                    ci.upper * 100.0,
                    v.successes,
                    v.n,
                ),
                _ => println!("  {:<12} no successful answers", brand.brand),
            }
        }
    }
    Ok(())
}
