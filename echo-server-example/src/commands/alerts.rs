//! `echoai alerts`: a user's alerts on significant change, read from the store.

use echo_core::analysis::alerts::ALERT_FDR_Q;
use echo_core::model::{Alert, AlertId, ExperimentId};
use echo_core::service::{AlertService, describe_alert};
use echo_core::store::{AlertQuery, PageSize};

use super::CliError;
use crate::cli::AlertsArgs;
use crate::routes::alerts::AlertView;

/// Alerts read per store call.
const PAGE: u32 = 100;

pub(super) async fn alerts(args: AlertsArgs) -> Result<(), CliError> {
    let experiment = args
        .experiment
        .as_deref()
        .map(|id| {
            id.parse::<ExperimentId>().map_err(|_| {
                CliError::Usage(format!("--experiment {id:?} is not an experiment id"))
            })
        })
        .transpose()?;
    let (store, user) = super::open_for_user(&args.database, &args.user).await?;
    if let Some(id) = experiment {
        // Another user's experiment is as unknown as a missing one.
        store
            .get_experiment(user.id, id)
            .await
            .map_err(|e| match e {
                echo_core::store::StoreError::NotFound { .. } => {
                    CliError::Usage(format!("{} has no experiment {id}", user.email.as_str()))
                }
                other => other.into(),
            })?;
    }
    let service = AlertService::from_store(&store);
    let limit = args.limit as usize;
    let mut found: Vec<Alert> = Vec::new();
    let mut after: Option<AlertId> = None;
    // The store lists a user's alerts without an experiment filter, so --experiment keeps
    // reading pages until it has --limit matches or none are left.
    loop {
        let page_size = if experiment.is_some() {
            PAGE
        } else {
            PAGE.min(u32::try_from(limit - found.len()).unwrap_or(PAGE))
        };
        let page = service
            .list(
                user.id,
                &AlertQuery {
                    after,
                    limit: PageSize::new(page_size)?,
                },
            )
            .await?;
        found.extend(
            page.items
                .into_iter()
                .filter(|a| experiment.is_none_or(|e| a.experiment_id == e)),
        );
        match page.next_cursor {
            Some(next) if found.len() < limit => after = Some(next),
            _ => break,
        }
    }
    found.truncate(limit);
    if args.json {
        let views: Vec<AlertView> = found.iter().map(AlertView::of).collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        print!("{}", lines(&found));
    }
    Ok(())
}

/// One line per alert: when, the experiment, and [`describe_alert`]'s sentence.
fn lines(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return format!(
            "no alerts (they come from recurring experiments: each scheduled run is compared \
             with the previous one, Benjamini-Hochberg at q = {ALERT_FDR_Q})\n"
        );
    }
    let mut out = String::new();
    for a in alerts {
        out.push_str(&format!(
            "{}  experiment {}  {}\n",
            crate::web::view::when(&a.created_at),
            a.experiment_id,
            describe_alert(&a.finding)
        ));
    }
    out
}
