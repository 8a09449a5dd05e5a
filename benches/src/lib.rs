//! Shared fixtures for Echo's benchmarks: realistic records and bulk seeding helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use echo_core::model::*;

pub mod extraction;

/// A PHC string shaped like a real argon2id hash (benchmarks never verify it).
pub const FAKE_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

/// A fresh user with a unique email, consenting to data processing as users who run
/// experiments do.
pub fn user(now: Timestamp) -> User {
    let mut user = User::new(
        Email::parse(format!("{}@bench.example", UserId::new())).unwrap(),
        PasswordHash::new(FAKE_HASH).unwrap(),
        PricingTier::Enterprise,
        now,
    );
    user.consents.data_processing_consent_at = Some(now);
    user
}

/// A realistic experiment created `age_micros` before `now`.
pub fn experiment(
    owner: UserId,
    now: Timestamp,
    age_micros: i64,
    status: ExperimentStatus,
) -> Experiment {
    let created = Timestamp::from_unix_micros(now.unix_micros() - age_micros).unwrap();
    let brand = |n: &str| Brand::new(BrandName::parse(n).unwrap());
    Experiment {
        id: ExperimentId::new(),
        user_id: owner,
        prompt: Prompt::parse("What is the best CRM for a 20-person B2B startup?").unwrap(),
        target: Brand {
            aliases: vec![BrandName::parse("HubSpot CRM").unwrap()],
            ..brand("HubSpot")
        },
        competitors: vec![
            brand("Salesforce"),
            brand("Pipedrive"),
            brand("Zoho CRM"),
            brand("Close"),
        ],
        iterations: Iterations::new(50).unwrap(),
        providers: vec![ProviderConfig {
            provider: ProviderKind::OpenAi,
            model: "gpt-4o-mini".into(),
            temperature: 0.7,
        }],
        status,
        recurrence: None,
        prompt_set: None,
        precision: None,
        created_at: created,
        updated_at: created,
    }
}

/// A realistic successful iteration of about 900 bytes with three mentions.
pub fn iteration(run: BatchRunId, index: u32, now: Timestamp) -> Iteration {
    iteration_answering(run, index, now, ANSWER)
}

/// The same iteration with another `answer` (which should name HubSpot, Salesforce and
/// Pipedrive, as its mentions say).
pub fn iteration_answering(run: BatchRunId, index: u32, now: Timestamp, answer: &str) -> Iteration {
    let mention = |brand: &str, rank: u32, offset: u32| BrandMention {
        brand: brand.into(),
        count: 2,
        first_offset: offset,
        rank,
        list_position: Some(rank),
    };
    Iteration {
        id: IterationId::new(),
        batch_run_id: run,
        index,
        raw_response: Some(answer.to_owned()),
        mentions: Some(vec![
            mention("HubSpot", 1, 45),
            mention("Salesforce", 2, 160),
            mention("Pipedrive", 3, 280),
        ]),
        is_success: true,
        error: None,
        latency_ms: 1_800,
        input_tokens: 18,
        output_tokens: 240,
        created_at: now,
        is_anonymized: false,
        anonymized_at: None,
        sources: Vec::new(),
    }
}

const ANSWER: &str = "Here are some strong options for a B2B startup:\n\n\
1. **HubSpot** – known for its intuitive interface and a generous free tier; HubSpot's \
marketing tools integrate tightly with the CRM.\n\
2. **Salesforce** – the most customisable option, though advanced features cost extra and \
setup often needs a consultant.\n\
3. **Pipedrive** – a pipeline-first CRM that sales-led teams adopt quickly; reporting is \
simpler than Salesforce's.\n\n\
If you want one all-in-one option, HubSpot is hard to beat. Consider how each one fits your \
sales process, your integrations and your budget before you commit, and try a free trial of \
two or three of them with real deals from your pipeline.";
