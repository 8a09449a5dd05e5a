//! The `echoai` command line: argument types (clap). Parsing only; the work is in
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Echo: measure how AI assistants talk about brands.
#[derive(Debug, Parser)]
#[command(name = "echoai", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `echo_core=debug`.
    #[arg(long, env = "ECHO_LOG", default_value = "warn", global = true)]
    pub log: String,

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
    /// Apply the database migrations (idempotent; safe while servers run).
    Migrate(MigrateArgs),
}

/// `echoai migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// SQLite file (or `sqlite://PATH`) or `postgres://` URL.
    #[arg(long, env = "ECHO_DATABASE", default_value = "./echo.db")]
    pub database: String,
}

/// `echoai run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt sent to every provider.
    #[arg(long)]
    pub prompt: String,

    /// The brand whose visibility is measured. Aliases: `--brand "HubSpot=HubSpot CRM,Hubspot"`.
    #[arg(long)]
    pub brand: String,

    /// A competitor (repeatable), with optional aliases: `--competitor "Salesforce=SFDC"`.
    #[arg(long = "competitor")]
    pub competitors: Vec<String>,

    /// Samples per provider.
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
    /// ± this (Wilson 95% half-width, e.g. 0.05), or at --iterations; unused quota is refunded.
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
    /// The target brand, with optional aliases (`"HubSpot=HubSpot CRM"`).
    #[arg(long)]
    pub brand: String,

    /// A competitor (repeatable), with optional aliases.
    #[arg(long = "competitor")]
    pub competitors: Vec<String>,

    /// The answer to analyse; `-` reads standard input.
    pub file: PathBuf,
}
