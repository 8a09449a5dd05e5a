//! The `echoai` command line: argument types (clap). Parsing only; the work is in
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Echo: measure how AI assistants talk about brands.
#[derive(Debug, Parser)]
#[command(name = "echoai", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `echo_core=debug`. Default:
    /// `info` for `serve` and `worker`, `warn` otherwise.
    #[arg(long, env = "ECHO_LOG", global = true)]
    pub log: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment now and print its report.
    Run(RunArgs),
    /// Print the brand mentions found in a text file as JSON.
    Analyze(AnalyzeArgs),
    /// List the brands answers name but an experiment does not track (competitor discovery),
    /// from a stored experiment or from answer files.
    Discover(DiscoverArgs),
    /// Write a stored experiment's per-run metrics or its answers as CSV (RFC 4180; cells
    /// that a spreadsheet would run as a formula get a leading `'`).
    ExportCsv(ExportCsvArgs),
    /// List a user's alerts on significant change (from recurring experiments), newest
    /// first.
    Alerts(AlertsArgs),
    /// Apply the database migrations (idempotent; safe while servers run).
    Migrate(MigrateArgs),
    /// Serve the HTTP API, with workers and the scheduler in the same process by default.
    Serve(ServeArgs),
    /// Run job workers (and optionally the scheduler) without the API.
    Worker(WorkerArgs),
    /// Manage accounts (operators).
    #[command(subcommand)]
    User(UserCommand),
    /// Data retention (operators).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// The audit log (operators).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write everything Echo holds about one user as JSON (GDPR Art. 15/20).
    Export(ExportArgs),
    /// Inspect the configuration (operators, CI).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// GET a URL; exit 0 on a 2xx answer, 1 otherwise (a container health check without curl).
    Probe(ProbeArgs),
    /// Check a running server end to end: health, readiness, security headers, API keys and,
    /// with --create, one simulated experiment (the promotion gate).
    Smoke(SmokeArgs),
}

/// `echoai config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets redacted) and every setting that is unsafe
    /// for the environment; exit 1 when there is one.
    Check(ConfigCheckArgs),
}

/// `echoai config check`.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Check against this environment instead of the configured one (`ECHO_ENV`):
    /// development, staging or production.
    #[arg(long = "env")]
    pub environment: Option<String>,
    /// TOML configuration file (environment variables override it).
    #[arg(long, env = "ECHO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `echoai probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. `http://127.0.0.1:8080/healthz`.
    pub url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

/// `echoai smoke`.
#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// The server, e.g. `https://staging.echo.example`.
    #[arg(long)]
    pub base_url: String,
    /// An API key of an account on that server (read-only use unless --create).
    #[arg(long, env = "ECHO_SMOKE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Also create an experiment on the simulated provider, wait for it, check its metrics
    /// and delete it (costs one small experiment's quota; never spends on real providers).
    #[arg(long)]
    pub create: bool,
    /// Print every step as JSON.
    #[arg(long)]
    pub json: bool,
    /// Time limit of each request, and of waiting for the experiment (seconds).
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
}

/// `echoai retention …`.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Run the retention pass now: anonymize old answers, purge accounts past their grace
    /// period, archive old audit events.
    Run(RetentionRunArgs),
}

/// `echoai retention run`.
#[derive(Debug, Args)]
pub struct RetentionRunArgs {
    /// Count what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE")]
    pub database: Option<String>,
    /// TOML configuration file (environment variables override it).
    #[arg(long, env = "ECHO_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `echoai audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain (archives, then the database) and report the first altered,
    /// inserted, deleted or reordered event; checks signed checkpoints with the public key.
    Verify(AuditVerifyArgs),
}

/// `echoai audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
    /// Directory of audit archives (`audit-*.jsonl`), walked before the database.
    #[arg(long, env = "ECHO_AUDIT_ARCHIVE_DIR")]
    pub archives: Option<PathBuf>,
    /// Hex of the checkpoint public key (Ed25519); default: derived from
    /// ECHO_AUDIT_SIGNING_KEY when set. Without either, checkpoints are not checked.
    #[arg(long)]
    pub public_key: Option<String>,
}

/// `echoai export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The user's email.
    #[arg(long)]
    pub user: String,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
}

/// `echoai serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ECHO_LISTEN")]
    pub listen: Option<String>,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE")]
    pub database: Option<String>,
    /// TOML configuration file (environment variables override it).
    #[arg(long, env = "ECHO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve the API only: run workers and the scheduler elsewhere (`echoai worker`).
    #[arg(long)]
    pub no_workers: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    pub no_scheduler: bool,
}

/// `echoai worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE")]
    pub database: Option<String>,
    /// TOML configuration file (environment variables override it).
    #[arg(long, env = "ECHO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also run the scheduler (any number of schedulers may run: claims are atomic).
    #[arg(long)]
    pub scheduler: bool,
}

/// `echoai user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; prints a generated password unless `--password-stdin`.
    Create(UserCreateArgs),
    /// Issue an API key for an account and print it once (e.g. the staging smoke key). Uses
    /// the configured pepper, which must be set; staging issues test keys.
    Key(UserKeyArgs),
}

/// `echoai user key`.
#[derive(Debug, Args)]
pub struct UserKeyArgs {
    /// The account's email.
    #[arg(long)]
    pub email: String,
    /// The key's name, shown in listings.
    #[arg(long, default_value = "cli")]
    pub label: String,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE")]
    pub database: Option<String>,
    /// TOML configuration file (environment variables override it).
    #[arg(long, env = "ECHO_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `echoai user create`.
#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// Email address.
    #[arg(long)]
    pub email: String,
    /// Make the account an administrator.
    #[arg(long)]
    pub admin: bool,
    /// Pricing tier: free, pro or enterprise.
    #[arg(long, default_value = "free")]
    pub tier: String,
    /// Read the password from standard input (one line) instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
}

/// `echoai migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
    /// Change nothing: list the pending migrations and exit 1 when there are any.
    #[arg(long)]
    pub check: bool,
}

/// `echoai run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt sent to every provider (or give --prompt-set).
    #[arg(long, required_unless_present = "prompt_set")]
    pub prompt: Option<String>,

    /// Run a prompt set of the user's brand profile instead of one prompt: its id or its name.
    /// Every phrasing is sent --iterations times per provider; the newest version is pinned
    /// unless --set-version names another.
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_set: Option<String>,

    /// The prompt set version to run (with --prompt-set).
    #[arg(long, requires = "prompt_set")]
    pub set_version: Option<u32>,

    /// The brand whose visibility is measured. Aliases: `--brand "HubSpot=HubSpot CRM,Hubspot"`;
    /// a match mode after `;`: `--brand "Close=Close CRM;match=case_sensitive"` (modes:
    /// `case_insensitive`, the default; `case_sensitive`; `aliases_only`).
    #[arg(long)]
    pub brand: String,

    /// A competitor (repeatable), with optional aliases and match mode, as `--brand`:
    /// `--competitor "Salesforce=SFDC"`, `--competitor "Copper;match=case_sensitive"`.
    #[arg(long = "competitor")]
    pub competitors: Vec<String>,

    /// Samples per provider (with --prompt-set: per phrasing).
    #[arg(long, default_value_t = 50)]
    pub iterations: u32,

    /// Provider to query (repeatable): simulated, openai, anthropic, gemini, perplexity,
    /// openai_compatible. Real providers read their key from the environment
    /// (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, PERPLEXITY_API_KEY,
    /// ECHO_OPENAI_COMPATIBLE_API_KEY with ECHO_OPENAI_COMPATIBLE_BASE_URL).
    #[arg(long = "provider", default_value = "simulated")]
    pub providers: Vec<String>,

    /// Model name; defaults to a sensible model per provider.
    #[arg(long)]
    pub model: Option<String>,

    /// Sampling temperature (0.0 to 2.0).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,

    /// SQLite file (or `sqlite://PATH`) where everything is stored.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Seed of the simulated provider (same seed, same answers).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Adaptive sampling: stop each provider's run once the target's visibility is known to
    /// ± this (Wilson 95% half-width, 0.01 to 0.5, e.g. 0.05), or at --iterations; unused
    /// quota is refunded. Stored as the experiment's own precision.
    #[arg(long)]
    pub precision: Option<f64>,

    /// Provider calls in flight per provider.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,

    /// Stop each provider's run after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,

    /// Account the run is stored under (created on first use).
    #[arg(long, env = "ECHO_CLI_USER", default_value = "cli@echo.localhost")]
    pub user: String,
}

/// `echoai analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The target brand, with optional aliases and match mode, as for `run`
    /// (`"HubSpot=HubSpot CRM"`, `"Close;match=case_sensitive"`).
    #[arg(long)]
    pub brand: String,

    /// A competitor (repeatable), with optional aliases and match mode.
    #[arg(long = "competitor")]
    pub competitors: Vec<String>,

    /// The answer to analyse; `-` reads standard input.
    pub file: PathBuf,
}

/// Which table `echoai export-csv` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CsvTableArg {
    /// One row per run × tracked brand, with the run's metrics.
    Runs,
    /// One row per stored answer.
    Answers,
}

/// `echoai export-csv`.
#[derive(Debug, Args)]
pub struct ExportCsvArgs {
    /// The experiment's id.
    #[arg(long)]
    pub experiment: String,
    /// The email of the experiment's owner.
    #[arg(long)]
    pub user: String,
    /// `runs` (metrics per run and brand) or `answers` (one row per answer).
    #[arg(long, value_enum, default_value = "runs")]
    pub table: CsvTableArg,
    /// Write here instead of standard output (`-` is standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
}

/// `echoai alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The email of the alerts' owner.
    #[arg(long)]
    pub user: String,
    /// Only the alerts of this experiment (one of the user's).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Show at most this many alerts, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Print JSON (an array of the alerts in the API's shape) instead of one line each.
    #[arg(long)]
    pub json: bool,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
}

/// `echoai discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Answer files (one answer per file, markdown or plain text); `-` reads standard input.
    #[arg(required_unless_present = "experiment", conflicts_with = "experiment")]
    pub files: Vec<PathBuf>,
    /// A stored experiment's id: analyse the answers of all its runs (with --user).
    #[arg(long, requires = "user")]
    pub experiment: Option<String>,
    /// The email of the experiment's owner.
    #[arg(long)]
    pub user: Option<String>,
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL, for --experiment.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
    /// For files: a tracked brand not to report (repeatable), with optional aliases and match
    /// mode as for `run`. A stored experiment excludes its own brands.
    #[arg(long = "brand", conflicts_with = "experiment")]
    pub brands: Vec<String>,
    /// For files: the prompt the answers reply to; names made only of its words are not
    /// reported. A stored experiment uses its own prompt.
    #[arg(long, conflicts_with = "experiment")]
    pub prompt: Option<String>,
    /// Show at most this many brands.
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
