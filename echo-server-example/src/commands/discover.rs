//! `echoai discover`: competitor discovery on a stored experiment or on answer files.

use std::io::Read;

use echo_core::analysis::{BrandMatcher, Discoverer, Discovery};
use echo_core::model::ExperimentId;
use echo_core::service::DiscoveryService;

use super::{CliError, parse_brand};
use crate::cli::DiscoverArgs;

pub(super) async fn discover(args: DiscoverArgs) -> Result<(), CliError> {
    let mut found = match &args.experiment {
        Some(id) => from_experiment(&args, id).await?,
        None => from_files(&args).await?,
    };
    found.brands.truncate(args.top);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{}", table(&found));
    }
    Ok(())
}

async fn from_experiment(args: &DiscoverArgs, id: &str) -> Result<Discovery, CliError> {
    let id: ExperimentId = id
        .parse()
        .map_err(|_| CliError::Usage(format!("--experiment {id:?} is not an experiment id")))?;
    let (store, user) =
        super::open_for_user(&args.database, args.user.as_deref().unwrap_or_default()).await?;
    Ok(DiscoveryService::from_store(&store)
        .discovered_brands(user.id, id)
        .await?)
}

async fn from_files(args: &DiscoverArgs) -> Result<Discovery, CliError> {
    let mut answers = Vec::with_capacity(args.files.len());
    for file in &args.files {
        if file.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            answers.push(s);
        } else {
            answers.push(
                tokio::fs::read_to_string(file)
                    .await
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?,
            );
        }
    }
    let mut discoverer = Discoverer::new();
    let brands = args
        .brands
        .iter()
        .map(|b| parse_brand(b))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((target, competitors)) = brands.split_first() {
        discoverer = discoverer.tracking(BrandMatcher::new(target, competitors)?);
    }
    if let Some(prompt) = &args.prompt {
        discoverer = discoverer.prompt(prompt);
    }
    Ok(discoverer.discover(answers.iter().map(String::as_str)))
}

fn table(found: &Discovery) -> String {
    let mut out = format!("{} answers analysed\n", found.answers);
    if found.brands.is_empty() {
        out.push_str("no untracked brands found\n");
        return out;
    }
    let width = found
        .brands
        .iter()
        .map(|b| b.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    out.push_str(&format!(
        "{:>3}  {:<width$}  {:>9}  {:>6}  {:<15}  {:>6}\n",
        "#", "brand", "answers", "share", "95% CI", "listed"
    ));
    let pct = |x: f64| format!("{:.1}", x * 100.0);
    for (i, b) in found.brands.iter().enumerate() {
        let share = b
            .answers
            .rate
            .map_or_else(|| "-".to_owned(), |r| pct(r) + "%");
        let ci = b.answers.ci95.map_or_else(
            || "-".to_owned(),
            |c| format!("[{}, {}]", pct(c.lower), pct(c.upper)),
        );
        out.push_str(&format!(
            "{:>3}  {:<width$}  {:>9}  {:>6}  {:<15}  {:>6}\n",
            i + 1,
            b.name,
            format!("{}/{}", b.answers.successes, b.answers.n),
            share,
            ci,
            b.listed
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_share_interval_and_n() {
        let found = Discoverer::new().discover(["- Attio\n- Zoho CRM", "- Attio", "Nothing."]);
        let t = table(&found);
        assert!(t.starts_with("3 answers analysed\n"), "{t}");
        assert!(t.contains("Attio"), "{t}");
        assert!(t.contains("2/3"), "{t}");
        assert!(t.contains("66.7%"), "{t}");
        let empty = table(&Discoverer::new().discover(["nothing here"]));
        assert!(empty.contains("no untracked brands found"), "{empty}");
    }
}
