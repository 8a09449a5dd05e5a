//! CSV export of an experiment: its per-run metrics (one row per run × brand) and its answers
//! (one row per iteration), streamed from the store a page at a time.
//!
//! # Format
//! RFC 4180: comma-separated, records end with CRLF, a cell holding a comma, a double quote,
//! CR or LF is put in double quotes with its quotes doubled, and the first record names the
//! columns. Text is UTF-8. Undefined numbers (a rate over zero answers) are empty cells.
//!
//! # Formula injection
//! Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula (and some treat a
//! leading tab or CR the same way), and answers are text a model wrote under the influence of
//! whatever it read. So every cell that starts with one of those six characters gets a leading
//! `'` (the OWASP recommendation), which spreadsheets show as text. The cost is that such a cell
//! no longer reads back byte for byte: an answer that begins with a markdown list item
//! (`- HubSpot…`) is exported as `'- HubSpot…`. Numbers Echo writes are never negative, so no
//! numeric cell is touched.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};

use super::ServiceError;
use crate::analysis::{Proportion, RunMetrics};
use crate::model::{BatchRun, BatchRunId, ExperimentId, Iteration, ProviderKind, UserId};
use crate::store::{DynStore, ExperimentStore, RunStore, StoreError};

/// Iterations read from the store per page of the answers export: bounds the memory one export
/// holds, whatever the run's size.
const ANSWER_PAGE: u32 = 500;

/// The columns of the per-run metrics export, in order.
pub const RUN_COLUMNS: &[&str] = &[
    "run_id",
    "created_at",
    "completed_at",
    "status",
    "provider",
    "model",
    "simulated",
    "brand",
    "is_target",
    "n",
    "failures",
    "mentions",
    "visibility",
    "visibility_ci_low",
    "visibility_ci_high",
    "answers_naming",
    "mention_share_of_voice",
    "answer_share_of_voice",
    "average_rank",
    "first_place",
    "first_place_ci_low",
    "first_place_ci_high",
    "average_list_position",
];

/// The columns of the answers export, in order. `brands` lists the tracked brands the answer
/// names, in rank order, as `Name:count` separated by `; `.
pub const ANSWER_COLUMNS: &[&str] = &[
    "run_id",
    "provider",
    "model",
    "index",
    "created_at",
    "success",
    "error",
    "anonymized",
    "text",
    "brands",
    "target_rank",
];

/// Which table of an experiment to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvTable {
    /// One row per run × tracked brand, with the run's metrics ([`RUN_COLUMNS`]). A run without
    /// metrics (still running, or failed before any answer) has one row with the brand columns
    /// empty.
    Runs,
    /// One row per stored iteration, runs oldest first, each ascending by index
    /// ([`ANSWER_COLUMNS`]). An anonymized answer has an empty `text` and `anonymized` true;
    /// its brands (the stored analysis) stay.
    Answers,
}

/// The CSV text, as chunks of whole records: the header first, then one chunk per run (metrics)
/// or per page of iterations (answers). An error ends the stream; what came before it is a
/// prefix of the file, so a caller that has already sent it must make the truncation visible
/// (an HTTP server aborts the body).
pub type CsvStream = BoxStream<'static, Result<String, ServiceError>>;

/// Exports an experiment as CSV for its owner: another user's experiment is
/// [`StoreError::NotFound`](crate::store::StoreError::NotFound), as a missing one is.
#[derive(Debug, Clone)]
pub struct ExportService {
    experiments: Arc<dyn ExperimentStore>,
    runs: Arc<dyn RunStore>,
    page: u32,
}

impl ExportService {
    /// A service over the two store parts it uses.
    pub fn new(experiments: Arc<dyn ExperimentStore>, runs: Arc<dyn RunStore>) -> Self {
        Self {
            experiments,
            runs,
            page: ANSWER_PAGE,
        }
    }

    /// A service over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone(), store.clone())
    }

    #[cfg(test)]
    fn with_page(mut self, page: u32) -> Self {
        self.page = page.max(1);
        self
    }

    /// The CSV of `owner`'s experiment `experiment`. The owner check and the list of runs are
    /// read before this returns, so `NotFound` comes back here rather than in the stream; the
    /// answers are then read a page at a time as the stream is polled.
    pub async fn csv(
        &self,
        owner: UserId,
        experiment: ExperimentId,
        table: CsvTable,
    ) -> Result<CsvStream, ServiceError> {
        let experiment = self.experiments.get_experiment(owner, experiment).await?;
        let runs = self.runs.list_batch_runs(owner, experiment.id).await?;
        Ok(match table {
            CsvTable::Runs => {
                let header = stream::once(async { Ok(header(RUN_COLUMNS)) });
                let rows = stream::iter(runs).map(|run| Ok(run_rows(&run)));
                header.chain(rows).boxed()
            }
            CsvTable::Answers => answers(
                self.runs.clone(),
                owner,
                runs,
                experiment.target.name.as_str().to_owned(),
                self.page,
            ),
        })
    }
}

/// Appends one CSV record (RFC 4180 quoting, the formula-injection guard, CRLF) to `out`.
///
/// ```
/// let mut out = String::new();
/// echo_core::service::csv_record(&mut out, ["plain", "a, \"b\"", "=1+1", "-3"]);
/// assert_eq!(out, "plain,\"a, \"\"b\"\"\",'=1+1,'-3\r\n");
/// ```
pub fn csv_record<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guard = matches!(
            cell.as_bytes().first(),
            Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
        );
        let quote = cell.contains([',', '"', '\r', '\n']);
        if quote {
            out.push('"');
        }
        if guard {
            out.push('\'');
        }
        if quote {
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push_str("\r\n");
}

fn header(columns: &[&str]) -> String {
    let mut out = String::new();
    csv_record(&mut out, columns.iter().copied());
    out
}

fn num(x: Option<f64>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

fn ci(p: &Proportion) -> [String; 2] {
    [num(p.ci95.map(|c| c.lower)), num(p.ci95.map(|c| c.upper))]
}

fn run_rows(run: &BatchRun) -> String {
    let head = [
        run.id.to_string(),
        run.created_at.to_string(),
        run.completed_at.map(|t| t.to_string()).unwrap_or_default(),
        run.status.as_str().to_owned(),
        run.provider.as_str().to_owned(),
        run.model.clone(),
        (run.provider == ProviderKind::Simulated).to_string(),
    ];
    let mut out = String::new();
    let metrics: Option<&RunMetrics> = run.metrics.as_ref().map(|m| &m.metrics);
    let Some(m) = metrics.filter(|m| !m.brands.is_empty()) else {
        let empty = std::iter::repeat_n("", RUN_COLUMNS.len() - head.len());
        csv_record(&mut out, head.iter().map(String::as_str).chain(empty));
        return out;
    };
    for b in &m.brands {
        let [vis_low, vis_high] = ci(&b.visibility);
        let [first_low, first_high] = ci(&b.first_place);
        let cells = [
            b.brand.clone(),
            b.is_target.to_string(),
            m.n.to_string(),
            m.failures.to_string(),
            b.mentions.to_string(),
            num(b.visibility.rate),
            vis_low,
            vis_high,
            b.visibility.successes.to_string(),
            num(b.mention_share_of_voice),
            num(b.answer_share_of_voice),
            num(b.average_rank),
            num(b.first_place.rate),
            first_low,
            first_high,
            num(b.average_list_position),
        ];
        csv_record(
            &mut out,
            head.iter().chain(cells.iter()).map(String::as_str),
        );
    }
    out
}

fn answer_row(out: &mut String, run: &BatchRun, target: &str, it: &Iteration) {
    let mut mentions = it.mentions.clone().unwrap_or_default();
    mentions.sort_by_key(|m| m.rank);
    let brands = mentions
        .iter()
        .map(|m| format!("{}:{}", m.brand, m.count))
        .collect::<Vec<_>>()
        .join("; ");
    let target_rank = mentions
        .iter()
        .find(|m| m.brand == target)
        .map(|m| m.rank.to_string())
        .unwrap_or_default();
    let text = if it.is_anonymized {
        ""
    } else {
        it.raw_response.as_deref().unwrap_or_default()
    };
    let (run_id, index, created_at) = (
        run.id.to_string(),
        it.index.to_string(),
        it.created_at.to_string(),
    );
    let cells: [&str; 11] = [
        &run_id,
        run.provider.as_str(),
        &run.model,
        &index,
        &created_at,
        if it.is_success { "true" } else { "false" },
        it.error.as_deref().unwrap_or_default(),
        if it.is_anonymized { "true" } else { "false" },
        text,
        &brands,
        &target_rank,
    ];
    csv_record(out, cells);
}

/// Where the answers export stands: the run being read and the index its next page starts at.
struct Cursor {
    store: Arc<dyn RunStore>,
    owner: UserId,
    runs: Vec<BatchRun>,
    target: String,
    run: usize,
    from: u32,
    page: u32,
}

fn answers(
    store: Arc<dyn RunStore>,
    owner: UserId,
    runs: Vec<BatchRun>,
    target: String,
    page: u32,
) -> CsvStream {
    let header = stream::once(async { Ok(header(ANSWER_COLUMNS)) });
    let cursor = Cursor {
        store,
        owner,
        target,
        runs,
        run: 0,
        from: 0,
        page,
    };
    let pages = stream::try_unfold(cursor, |mut c| async move {
        loop {
            let Some(run) = c.runs.get(c.run).cloned() else {
                return Ok(None);
            };
            let rows = read_page(&*c.store, c.owner, run.id, c.from, c.page).await?;
            let next = rows.last().and_then(|it| it.index.checked_add(1));
            if rows.len() < c.page as usize || next.is_none() {
                c.run += 1;
                c.from = 0;
            } else if let Some(next) = next {
                c.from = next;
            }
            if rows.is_empty() {
                continue;
            }
            let mut out = String::new();
            for it in &rows {
                answer_row(&mut out, &run, &c.target, it);
            }
            return Ok(Some((out, c)));
        }
    });
    header.chain(pages).boxed()
}

/// One page of a run's answers. Once the file's first bytes are out, a failed read can only cut
/// the download short, so a transient store error (a busy database, a dropped connection) is
/// retried a few times, briefly, before it does.
async fn read_page(
    store: &dyn RunStore,
    owner: UserId,
    run: BatchRunId,
    from: u32,
    limit: u32,
) -> Result<Vec<Iteration>, StoreError> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match store.list_iterations(owner, run, from, limit).await {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "retrying a page of a CSV export");
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests;
