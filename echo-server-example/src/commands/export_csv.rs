//! `echoai export-csv`: an experiment's per-run metrics or its answers as CSV, through the same
//! [`ExportService`] as `GET /api/v1/experiments/{id}/export/*.csv`.

use std::io::Write;

use echo_core::model::ExperimentId;
use echo_core::service::{CsvTable, ExportService};
use futures::TryStreamExt;

use super::CliError;
use crate::cli::{CsvTableArg, ExportCsvArgs};

pub(super) async fn export_csv(args: ExportCsvArgs) -> Result<(), CliError> {
    let id: ExperimentId = args.experiment.parse().map_err(|_| {
        CliError::Usage(format!(
            "--experiment {:?} is not an experiment id",
            args.experiment
        ))
    })?;
    let (store, user) = super::open_for_user(&args.database, &args.user).await?;
    let table = match args.table {
        CsvTableArg::Runs => CsvTable::Runs,
        CsvTableArg::Answers => CsvTable::Answers,
    };
    let mut rows = ExportService::from_store(&store)
        .csv(user.id, id, table)
        .await?;
    // A command-line tool writing one file: blocking writes between pages are fine.
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) if path.as_os_str() != "-" => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(path)?))
        }
        _ => Box::new(std::io::stdout()),
    };
    while let Some(chunk) = rows.try_next().await? {
        out.write_all(chunk.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
