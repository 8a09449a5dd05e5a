//! Alerts on significant change: evaluated after each finished execution of a recurring
//! experiment, stored once, listed to their owner and mailed to them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::ServiceError;
use crate::analysis::alerts::{ALERT_FDR_Q, AlertFinding, RunComparison, evaluate_alerts};
use crate::analysis::{Proportion, RunMetrics};
use crate::mail::{DynMailer, MailMessage};
use crate::model::{
    Alert, AlertId, AlertKind, BatchRun, BatchRunStatus, ExperimentId, ProviderKind, Timestamp,
    UserId,
};
use crate::store::{
    AlertQuery, AlertStore, DynStore, ExperimentStore, Page, RunStore, UserStore, WebhookStore,
};

/// Evaluates, stores, lists and mails alerts (see [`crate::analysis::alerts`] for the tests and
/// the Benjamini–Hochberg correction).
///
/// [`AlertService::evaluate`] is what the job executor calls after a recurring experiment's
/// execution finished; it is idempotent, so a retried job or a second call for the same runs
/// stores and mails nothing new.
#[derive(Debug, Clone)]
pub struct AlertService {
    users: Arc<dyn UserStore>,
    experiments: Arc<dyn ExperimentStore>,
    runs: Arc<dyn RunStore>,
    alerts: Arc<dyn AlertStore>,
    webhooks: Arc<dyn WebhookStore>,
    mailer: Option<Arc<DynMailer>>,
}

impl AlertService {
    /// A service over a whole store, without mail.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self {
            users: store.clone(),
            experiments: store.clone(),
            runs: store.clone(),
            alerts: store.clone(),
            webhooks: store.clone(),
            mailer: None,
        }
    }

    /// Also mails each evaluation's new alerts to the experiment's owner.
    pub fn with_mailer(mut self, mailer: Arc<DynMailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Compares, per provider, the newest completed run of the owner's experiment with the
    /// previous completed one, raises an alert for each significant change (one
    /// Benjamini–Hochberg family at q = [`ALERT_FDR_Q`] across brands × providers), stores
    /// them and, with a mailer, mails the new ones. Returns the alerts this call stored:
    /// empty when nothing changed significantly, when a provider has fewer than two completed
    /// runs with metrics, for an experiment that is not recurring, and when the same runs
    /// were evaluated before.
    ///
    /// The new alerts are also queued as one `alerts.raised` webhook delivery to each of the
    /// owner's endpoints (see [`WebhookService`](super::WebhookService)).
    ///
    /// A mail that cannot be sent, or deliveries that cannot be queued, are logged and do not
    /// undo the stored alerts (they stay listed in the API).
    ///
    /// Errors: `NotFound` for another user's or a missing experiment; store failures.
    pub async fn evaluate(
        &self,
        owner: UserId,
        experiment: ExperimentId,
        now: Timestamp,
    ) -> Result<Vec<Alert>, ServiceError> {
        let e = self.experiments.get_experiment(owner, experiment).await?;
        if e.recurrence.is_none() {
            return Ok(Vec::new());
        }
        let runs = self.runs.list_batch_runs(owner, experiment).await?;
        let pairs = latest_pairs(&runs);
        let comparisons: Vec<RunComparison<'_>> = pairs
            .iter()
            .map(|(provider, (before, after))| RunComparison {
                provider: *provider,
                before: &before.1,
                after: &after.1,
            })
            .collect();
        let findings = evaluate_alerts(&comparisons, ALERT_FDR_Q);
        let alerts: Vec<Alert> = findings
            .into_iter()
            .filter_map(|finding| {
                let (before, after) = pairs.get(&finding.provider)?;
                Some(Alert {
                    id: AlertId::new(),
                    user_id: owner,
                    experiment_id: experiment,
                    batch_run_id: after.0,
                    previous_run_id: before.0,
                    finding,
                    created_at: now,
                })
            })
            .collect();
        if alerts.is_empty() {
            return Ok(alerts);
        }
        // Evaluation is deterministic for the same runs, so a repeat inserts none of them.
        let inserted = self.alerts.record_alerts(&alerts).await?;
        if inserted == 0 {
            return Ok(Vec::new());
        }
        if let Err(error) =
            super::webhooks::queue_alerts(&*self.webhooks, owner, &e, &alerts, now).await
        {
            tracing::warn!(%experiment, error = %error, "alert webhooks not queued");
        }
        if let Some(mailer) = &self.mailer {
            let user = self.users.get_user(owner).await?;
            let message = MailMessage {
                to: user.email,
                subject: alert_subject(alerts.len()),
                body: alert_mail_body(e.prompt.as_str(), &alerts),
            };
            if let Err(error) = mailer.send(&message).await {
                tracing::warn!(%experiment, error = %error, "alert mail not sent");
            }
        }
        Ok(alerts)
    }

    /// The owner's alerts, newest first, a page at a time.
    pub async fn list(
        &self,
        owner: UserId,
        query: &AlertQuery,
    ) -> Result<Page<Alert, AlertId>, ServiceError> {
        Ok(self.alerts.list_alerts(owner, query).await?)
    }
}

type RunRef = (crate::model::BatchRunId, RunMetrics);

/// Per provider, the previous and the newest completed run with metrics (runs come oldest
/// first).
fn latest_pairs(runs: &[BatchRun]) -> BTreeMap<ProviderKind, (RunRef, RunRef)> {
    let mut by_provider: BTreeMap<ProviderKind, Vec<&BatchRun>> = BTreeMap::new();
    for r in runs {
        if r.status == BatchRunStatus::Completed && r.metrics.is_some() {
            by_provider.entry(r.provider).or_default().push(r);
        }
    }
    by_provider
        .into_iter()
        .filter_map(|(provider, mut runs)| {
            runs.sort_by_key(|r| (r.completed_at, r.created_at));
            let after = runs.pop()?;
            let before = runs.pop()?;
            let metrics = |r: &BatchRun| Some((r.id, r.metrics.as_ref()?.metrics.clone()));
            Some((provider, (metrics(before)?, metrics(after)?)))
        })
        .collect()
}

/// One line; no user text, so no header injection.
fn alert_subject(count: usize) -> String {
    if count == 1 {
        "Echo alert: 1 significant change".to_owned()
    } else {
        format!("Echo alert: {count} significant changes")
    }
}

fn rate(p: &Proportion) -> String {
    match p.rate {
        Some(r) => format!("{:.0}% ({} of {})", r * 100.0, p.successes, p.n),
        None => "no answers".to_owned(),
    }
}

/// What one alert says, in a sentence: shared by the mail and the CLI.
pub fn describe_alert(finding: &AlertFinding) -> String {
    let c = &finding.change;
    let verb = if c.difference.is_some_and(|d| d < 0.0) {
        "fell"
    } else {
        "rose"
    };
    let what = match finding.kind {
        AlertKind::Visibility => format!("visibility of {}", finding.brand),
        AlertKind::FirstPlace => format!("first-place rate of {}", finding.brand),
        AlertKind::CompetitorOvertook => format!(
            "visibility of {} (now ahead of {})",
            finding.brand, finding.target
        ),
    };
    format!(
        "{}: {what} {verb} from {} to {} (adjusted p = {:.4})",
        finding.provider,
        rate(&c.before),
        rate(&c.after),
        finding.adjusted_p
    )
}

fn alert_mail_body(prompt: &str, alerts: &[Alert]) -> String {
    let mut body = format!(
        "The latest run of your recurring experiment\n\n  {prompt}\n\nchanged significantly \
         from the previous one (two-proportion tests, Benjamini-Hochberg q = {ALERT_FDR_Q}):\n\n"
    );
    for a in alerts {
        let _ = writeln!(body, "- {}", describe_alert(&a.finding));
    }
    body
}

#[cfg(test)]
mod tests;
