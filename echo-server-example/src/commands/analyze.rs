//! `echoai analyze`: the extraction, on a file, as JSON — so every number can be audited.

use std::io::Read;

use echo_core::analysis::BrandMatcher;

use super::{CliError, parse_brand};
use crate::cli::AnalyzeArgs;

pub(super) async fn analyze(args: AnalyzeArgs) -> Result<(), CliError> {
    let target = parse_brand(&args.brand)?;
    let competitors = args
        .competitors
        .iter()
        .map(|c| parse_brand(c))
        .collect::<Result<Vec<_>, _>>()?;
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        tokio::fs::read_to_string(&args.file).await?
    };
    let matcher = BrandMatcher::new(&target, &competitors).map_err(CliError::from)?;
    let extraction = matcher.extract(&text);
    println!("{}", serde_json::to_string_pretty(&extraction)?);
    Ok(())
}
