//! Deployment environments (`ECHO_ENV`) and the rules that make a configuration unsafe in
//! staging and production: one function, [`ServerConfig::violations`], used by start-up and by
//! `echoai config check`, so the two can never disagree.

use std::fmt;
use std::str::FromStr;

use echo_core::auth::{AcceptedEnvironments, KeyEnvironment};
use echo_core::model::ProviderKind;
use serde::{Deserialize, Serialize};

use super::{ConfigError, ServerConfig, invalid};

/// Where this process runs. Staging and production differ from development in settings only
/// (the same binary everywhere), and refuse to start with an unsafe configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// A laptop: everything optional, ephemeral secrets with warnings.
    #[default]
    Development,
    /// The rehearsal of production: production's rules, but test keys by default.
    Staging,
    /// Real users: every safety setting required, live keys only.
    Production,
}

impl Environment {
    /// The name used in `ECHO_ENV` and the `Echo-Environment` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// The environment of keys created without an explicit one: staging hands out test keys,
    /// so a key copied out of staging is refused by production.
    pub fn default_key_environment(self) -> KeyEnvironment {
        match self {
            Environment::Staging => KeyEnvironment::Test,
            Environment::Development | Environment::Production => KeyEnvironment::Live,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "development" => Ok(Environment::Development),
            "staging" => Ok(Environment::Staging),
            "production" => Ok(Environment::Production),
            other => Err(format!(
                "{other:?} is not one of development, staging, production"
            )),
        }
    }
}

/// Parser of `ECHO_ENV` for the environment table.
pub(super) fn environment(name: &str, value: &str) -> Result<Environment, ConfigError> {
    value
        .parse()
        .map_err(|reason: String| invalid(name, reason))
}

/// One reason a configuration is unsafe for its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The setting to change: file key and environment variable.
    pub setting: &'static str,
    /// Why it is unsafe, and what to do.
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.reason)
    }
}

/// The provider variables a production server can be given (see `crate::providers`).
const PROVIDER_SETTINGS: &str = "providers (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, \
     PERPLEXITY_API_KEY or ECHO_OPENAI_COMPATIBLE_BASE_URL; or ECHO_ALLOW_SIMULATED)";

impl ServerConfig {
    /// Every reason this configuration is unsafe for its environment (`self.env`); empty in
    /// development, which must keep working with no configuration at all.
    ///
    /// `real_providers` are the real providers this process can call (see
    /// `crate::providers::configured_kinds`): they come from the environment, not from this
    /// struct.
    pub fn violations(&self, real_providers: &[ProviderKind]) -> Vec<Violation> {
        let env = self.env;
        let mut out = Vec::new();
        if env == Environment::Development {
            return out;
        }
        let mut refuse = |setting: &'static str, reason: String| {
            out.push(Violation { setting, reason });
        };
        if self.security.pepper.is_none() {
            refuse(
                "security.pepper (ECHO_PEPPER)",
                format!(
                    "must be set in {env}: without it an ephemeral pepper is drawn and every API key and session stops working at restart"
                ),
            );
        }
        if self.security.dev_insecure_cookies {
            refuse(
                "security.dev_insecure_cookies (ECHO_DEV_INSECURE_COOKIES)",
                format!(
                    "must be false in {env}: it drops the cookie's Secure flag and HSTS, for plain-HTTP localhost only"
                ),
            );
        }
        if self.privacy.audit_signing_key.is_none() {
            refuse(
                "privacy.audit_signing_key (ECHO_AUDIT_SIGNING_KEY)",
                format!(
                    "must be set in {env}: unsigned audit checkpoints cannot show that the log's tail was not rewritten"
                ),
            );
        }
        if let Ok(addr) = self.listen_addr()
            && !addr.ip().is_loopback()
            && !self.security.trust_forwarded_for
        {
            refuse(
                "listen (ECHO_LISTEN) with security.trust_forwarded_for (ECHO_TRUST_FORWARDED_FOR)",
                format!(
                    "{addr} is reachable from other hosts, but security.trust_forwarded_for is off: in {env} the server runs behind a trusted proxy, so set ECHO_TRUST_FORWARDED_FOR=true (or listen on 127.0.0.1)"
                ),
            );
        }
        if env == Environment::Production {
            if self.security.accept_test_keys {
                refuse(
                    "security.accept_test_keys (ECHO_ACCEPT_TEST_KEYS)",
                    "must be false in production: echo1_test_ keys are for development and staging"
                        .into(),
                );
            }
            if real_providers.is_empty() && !self.simulated.allow_in_production {
                let built = if cfg!(feature = "providers") {
                    ""
                } else {
                    " (this echoai was built without the providers feature)"
                };
                refuse(
                    PROVIDER_SETTINGS,
                    format!(
                        "no real provider is configured{built}: production would answer with simulated data; configure one, or set ECHO_ALLOW_SIMULATED=true for a demo deployment"
                    ),
                );
            }
        }
        out
    }

    /// The key environments the API accepts: development as configured, staging both (it
    /// issues test keys by default), production live only.
    pub fn accepted_key_environments(&self) -> AcceptedEnvironments {
        match self.env {
            Environment::Staging => AcceptedEnvironments::Both,
            Environment::Production => AcceptedEnvironments::Live,
            Environment::Development if self.security.accept_test_keys => {
                AcceptedEnvironments::Both
            }
            Environment::Development => AcceptedEnvironments::Live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_core::secret::Secret;

    fn safe(env: Environment) -> ServerConfig {
        let mut c = ServerConfig {
            env,
            ..ServerConfig::default()
        };
        c.security.pepper = Some(Secret::new("a pepper that is long enough for the check"));
        c.privacy.audit_signing_key = Some(Secret::new("11".repeat(32)));
        c
    }

    fn settings(c: &ServerConfig, providers: &[ProviderKind]) -> Vec<&'static str> {
        c.violations(providers)
            .into_iter()
            .map(|v| v.setting)
            .collect()
    }

    #[test]
    fn development_accepts_the_defaults_and_anything_else() {
        assert!(ServerConfig::default().violations(&[]).is_empty());
        let mut c = ServerConfig {
            listen: "0.0.0.0:8080".into(),
            ..ServerConfig::default()
        };
        c.security.dev_insecure_cookies = true;
        c.security.accept_test_keys = true;
        assert!(c.violations(&[]).is_empty());
    }

    #[test]
    fn staging_and_production_name_each_unsafe_setting() {
        for env in [Environment::Staging, Environment::Production] {
            let empty = ServerConfig {
                env,
                ..ServerConfig::default()
            };
            let found = settings(&empty, &[ProviderKind::OpenAi]);
            assert!(found.iter().any(|s| s.contains("ECHO_PEPPER")), "{found:?}");
            assert!(
                found.iter().any(|s| s.contains("ECHO_AUDIT_SIGNING_KEY")),
                "{found:?}"
            );
            assert_eq!(found.len(), 2, "{env}: {found:?}");

            assert!(settings(&safe(env), &[ProviderKind::OpenAi]).is_empty());

            let mut c = safe(env);
            c.security.dev_insecure_cookies = true;
            assert_eq!(
                settings(&c, &[ProviderKind::OpenAi]),
                ["security.dev_insecure_cookies (ECHO_DEV_INSECURE_COOKIES)"]
            );

            for wide in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080"] {
                let mut c = safe(env);
                c.listen = wide.into();
                let found = settings(&c, &[ProviderKind::OpenAi]);
                assert_eq!(found.len(), 1, "{wide}: {found:?}");
                assert!(found[0].contains("ECHO_TRUST_FORWARDED_FOR"), "{found:?}");
                c.security.trust_forwarded_for = true;
                assert!(settings(&c, &[ProviderKind::OpenAi]).is_empty(), "{wide}");
            }
            let mut c = safe(env);
            c.listen = "[::1]:8080".into();
            assert!(settings(&c, &[ProviderKind::OpenAi]).is_empty());
        }
    }

    #[test]
    fn only_production_refuses_test_keys_and_the_simulator_alone() {
        let mut staging = safe(Environment::Staging);
        staging.security.accept_test_keys = true;
        assert!(settings(&staging, &[]).is_empty());

        let mut c = safe(Environment::Production);
        c.security.accept_test_keys = true;
        assert_eq!(
            settings(&c, &[ProviderKind::Anthropic]),
            ["security.accept_test_keys (ECHO_ACCEPT_TEST_KEYS)"]
        );

        let c = safe(Environment::Production);
        let found = settings(&c, &[]);
        assert_eq!(found, [PROVIDER_SETTINGS]);
        let mut c = safe(Environment::Production);
        c.simulated.allow_in_production = true;
        assert!(settings(&c, &[]).is_empty());
    }

    #[test]
    fn key_environments_follow_the_deployment() {
        let mut c = ServerConfig::default();
        assert_eq!(c.accepted_key_environments(), AcceptedEnvironments::Live);
        c.security.accept_test_keys = true;
        assert_eq!(c.accepted_key_environments(), AcceptedEnvironments::Both);
        c.env = Environment::Production;
        assert_eq!(c.accepted_key_environments(), AcceptedEnvironments::Live);
        c.env = Environment::Staging;
        c.security.accept_test_keys = false;
        assert_eq!(c.accepted_key_environments(), AcceptedEnvironments::Both);
        assert_eq!(
            Environment::Staging.default_key_environment(),
            KeyEnvironment::Test
        );
        assert_eq!(
            Environment::Production.default_key_environment(),
            KeyEnvironment::Live
        );
    }

    #[test]
    fn the_environment_parses_from_its_variable_and_file_key() {
        let c =
            ServerConfig::load(None, |k| (k == "ECHO_ENV").then(|| "staging".to_owned())).unwrap();
        assert_eq!(c.env, Environment::Staging);
        let e = ServerConfig::load(None, |k| (k == "ECHO_ENV").then(|| "prod".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECHO_ENV"), "{e}");
        let c = ServerConfig::from_toml("env = \"production\"\n").unwrap();
        assert_eq!(c.env, Environment::Production);
    }
}
