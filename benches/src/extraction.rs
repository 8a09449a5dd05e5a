//! The brand extraction workload, shared by the `extraction` bench and the `extract_callgrind`
//! example so both measure the same brands and answer.

use echo_core::analysis::BrandMatcher;
use echo_core::model::{Brand, BrandName, MatchMode};
use regex::{Regex, RegexBuilder};

/// 50 CRM and productivity brands with aliases (96 names), in the match modes real experiments
/// use; the first is the target.
pub const BRANDS: &[(&str, &[&str], MatchMode)] = &[
    (
        "HubSpot",
        &["HubSpot CRM", "HubSpot Sales Hub"],
        MatchMode::CaseInsensitive,
    ),
    (
        "Salesforce",
        &["Salesforce Sales Cloud", "SFDC"],
        MatchMode::CaseInsensitive,
    ),
    ("Pipedrive", &[], MatchMode::CaseInsensitive),
    (
        "Zoho CRM",
        &["Zoho", "Bigin by Zoho"],
        MatchMode::CaseInsensitive,
    ),
    (
        "Freshsales",
        &["Freshworks CRM", "Freshworks"],
        MatchMode::CaseInsensitive,
    ),
    (
        "Monday.com",
        &["monday sales CRM", "Monday CRM"],
        MatchMode::CaseInsensitive,
    ),
    (
        "Close",
        &["Close CRM", "Close.com"],
        MatchMode::CaseSensitive,
    ),
    ("Copper", &["Copper CRM"], MatchMode::CaseInsensitive),
    ("Insightly", &[], MatchMode::CaseInsensitive),
    ("Nimble", &["Nimble CRM"], MatchMode::CaseSensitive),
    ("Keap", &["Infusionsoft"], MatchMode::CaseInsensitive),
    (
        "ActiveCampaign",
        &["Active Campaign"],
        MatchMode::CaseInsensitive,
    ),
    ("Zendesk Sell", &["Zendesk"], MatchMode::CaseInsensitive),
    (
        "Microsoft Dynamics 365",
        &["Dynamics 365", "MS Dynamics"],
        MatchMode::CaseInsensitive,
    ),
    ("SugarCRM", &["Sugar CRM"], MatchMode::CaseInsensitive),
    ("Agile CRM", &[], MatchMode::CaseInsensitive),
    ("Capsule CRM", &["Capsule"], MatchMode::CaseInsensitive),
    ("Streak", &["Streak CRM"], MatchMode::CaseSensitive),
    ("Less Annoying CRM", &["LACRM"], MatchMode::CaseInsensitive),
    ("Bitrix24", &["Bitrix 24"], MatchMode::CaseInsensitive),
    ("Apptivo", &[], MatchMode::CaseInsensitive),
    ("Vtiger", &["Vtiger CRM"], MatchMode::CaseInsensitive),
    ("EngageBay", &[], MatchMode::CaseInsensitive),
    ("Salesflare", &[], MatchMode::CaseInsensitive),
    ("Attio", &[], MatchMode::CaseInsensitive),
    ("Folk", &["folk CRM", "folk.app"], MatchMode::AliasesOnly),
    ("Airtable", &[], MatchMode::CaseInsensitive),
    ("Notion", &["Notion CRM"], MatchMode::CaseInsensitive),
    ("ClickUp", &["Click Up"], MatchMode::CaseInsensitive),
    ("Asana", &[], MatchMode::CaseInsensitive),
    ("Trello", &[], MatchMode::CaseInsensitive),
    ("Jira", &["Jira Software"], MatchMode::CaseInsensitive),
    ("Basecamp", &[], MatchMode::CaseInsensitive),
    ("Wrike", &[], MatchMode::CaseInsensitive),
    ("Smartsheet", &[], MatchMode::CaseInsensitive),
    ("Slack", &[], MatchMode::CaseInsensitive),
    ("Microsoft Teams", &["MS Teams"], MatchMode::CaseInsensitive),
    ("Zoom", &["Zoom Workplace"], MatchMode::CaseInsensitive),
    (
        "Google Workspace",
        &["G Suite", "Gmail"],
        MatchMode::CaseInsensitive,
    ),
    (
        "Mailchimp",
        &["Intuit Mailchimp"],
        MatchMode::CaseInsensitive,
    ),
    ("Klaviyo", &[], MatchMode::CaseInsensitive),
    ("Brevo", &["Sendinblue"], MatchMode::CaseInsensitive),
    ("Constant Contact", &[], MatchMode::CaseInsensitive),
    ("Intercom", &[], MatchMode::CaseInsensitive),
    ("Drift", &["Salesloft Drift"], MatchMode::CaseSensitive),
    ("Gong", &["Gong.io"], MatchMode::CaseInsensitive),
    ("Outreach", &["Outreach.io"], MatchMode::CaseSensitive),
    ("Apollo.io", &["Apollo"], MatchMode::CaseInsensitive),
    ("ZoomInfo", &["Zoom Info"], MatchMode::CaseInsensitive),
    (
        "LinkedIn Sales Navigator",
        &["Sales Navigator"],
        MatchMode::CaseInsensitive,
    ),
];

/// A 4,018-byte markdown answer (headings, a table, numbered and bulleted lists, bare and
/// markdown links) naming 11 of the brands 32 times outside URLs.
pub const ANSWER: &str = r#"# Best CRM for a 10-person B2B startup (2025)

Choosing a CRM at this stage is less about features and more about **adoption**: the tool your team
actually opens every morning. Below is a short list based on pricing, ease of setup and how well
each option scales once you hire your first sales manager.

## Quick comparison

| CRM | Free plan | Best for |
|-----|-----------|----------|
| HubSpot | Yes | Inbound-led teams |
| Pipedrive | No (14-day trial) | Pipeline-driven sales |
| Attio | Yes | Data-heavy, flexible teams |

## Top picks

1. **HubSpot CRM** — The most complete free tier on the market. Contact management, deal
   pipelines, email tracking and meeting scheduling are included at no cost, and the Starter
   bundle adds automation for about $20 per seat. HubSpot’s main drawback is price jumps: the
   Professional tier costs considerably more. See https://www.hubspot.com/pricing/crm for details.
2. **Pipedrive** — Built around a visual pipeline, Pipedrive is the favourite of founders who
   run sales themselves. It is fast, opinionated and integrates with the usual inbox, calendar and
   calling tools out of the box. Pricing starts around $14 per user per month.
3. **Salesforce Sales Cloud** — The industry standard, e.g. for companies planning to scale past
   50 reps. Salesforce is extremely customizable, but setup typically needs an admin or a
   consultant, which is hard to justify for a team of ten.
4. **Attio** — A newer, data-first CRM that feels like a spreadsheet and a database at once. It
   syncs your inbox and calendar automatically and builds relationship records for you.
5. **Zoho CRM** — Strong value for money with a generous free plan for up to three users. Zoho
   also offers Bigin by Zoho, a lighter pipeline tool aimed at very small teams.

### Also worth a look

- **Close** — Built for inside sales teams that live on the phone; calling and SMS are native.
- **Freshsales** (by Freshworks) — AI lead scoring on every plan and a clean interface.
- **Monday.com** — If your team already runs projects in monday, the monday sales CRM module keeps
  everything in one workspace.
- **Copper** — The best fit if you live in Google Workspace.

## How to decide

Start with the question of who will maintain the CRM. If nobody owns it, pick the tool with the
least configuration: HubSpot or Pipedrive. If you sell to enterprises with long cycles and many
stakeholders, Salesforce will pay off later, though migrating from HubSpot to Salesforce later is
a well-trodden path (see the [migration guide](https://example.com/hubspot-to-salesforce)).

Consider integrations as well. Most teams need their CRM to talk to email marketing (Mailchimp or
the HubSpot Marketing Hub), the support desk and calendars. Check whether the integration is
native or requires a middleware tool such as Zapier, which adds cost and another point of failure.

Finally, think about data ownership and export: all of the tools above let you export contacts
and deals as CSV, but the quality of the export of activities (emails, calls, notes) varies a
lot. Run a trial export in the first week, before your data grows.

## Pricing notes

List prices change often and annual billing usually saves 15–20%. Watch for seat minimums,
paid onboarding and contact-based pricing on marketing add-ons, which can double the bill as your
database grows. Ask for a startup discount: several vendors run programmes that cut the first
year's price by half or more for venture-backed companies, and Pipedrive and Copper both offer
extended trials on request. Budget time, too: a realistic rollout takes two to four weeks.

## My recommendation

For most 10-person B2B startups, **HubSpot CRM** is the safest default: free to start, easy to
adopt, and it grows with you. If your motion is outbound and pipeline-heavy, choose **Pipedrive**
instead. Revisit the decision when you pass roughly 25 sales reps or $5M in annual recurring
revenue, which is when Salesforce starts to make sense.
"#;

/// A brand from the fixture's parts (the fixture's names are valid).
pub fn brand(name: &str, aliases: &[&str], mode: MatchMode) -> Brand {
    Brand {
        name: BrandName::parse(name).unwrap(),
        aliases: aliases
            .iter()
            .map(|a| BrandName::parse(a).unwrap())
            .collect(),
        match_mode: mode,
    }
}

/// [`BRANDS`] as brands, target first.
pub fn brands() -> Vec<Brand> {
    BRANDS.iter().map(|(n, a, m)| brand(n, a, *m)).collect()
}

/// [`brands`] plus one brand with a non-ASCII name, which sends every answer through the
/// lowercased copy.
pub fn unicode_brands() -> Vec<Brand> {
    let mut brands = brands();
    brands.push(brand(
        "Société Générale",
        &["SocGen"],
        MatchMode::CaseInsensitive,
    ));
    brands
}

/// The matcher for `brands`: the first is the target, the rest are competitors.
pub fn matcher(brands: &[Brand]) -> BrandMatcher {
    let (target, competitors) = brands.split_first().unwrap();
    BrandMatcher::new(target, competitors).unwrap()
}

/// The naive baseline: one regex per brand, longest spelling first so the alternation prefers
/// "HubSpot CRM" over "HubSpot" as the matcher does.
pub fn naive_regexes(brands: &[Brand]) -> Vec<(String, Regex)> {
    brands
        .iter()
        .map(|b| {
            let mut names: Vec<&str> = b.aliases.iter().map(BrandName::as_str).collect();
            if b.match_mode != MatchMode::AliasesOnly {
                names.push(b.name.as_str());
            }
            names.sort_by_key(|n| std::cmp::Reverse(n.len()));
            let alternation: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
            let re = RegexBuilder::new(&format!(r"\b(?:{})\b", alternation.join("|")))
                .case_insensitive(b.match_mode != MatchMode::CaseSensitive)
                .build()
                .unwrap();
            (b.name.as_str().to_owned(), re)
        })
        .collect()
}

/// (brand, first offset, count) of every brand found, in order of first appearance.
pub fn naive_extract<'a>(regexes: &'a [(String, Regex)], text: &str) -> Vec<(&'a str, usize, u32)> {
    let mut found = Vec::new();
    for (name, re) in regexes {
        let mut first = None;
        let mut count = 0u32;
        for m in re.find_iter(text) {
            first.get_or_insert(m.start());
            count += 1;
        }
        if let Some(first) = first {
            found.push((name.as_str(), first, count));
        }
    }
    found.sort_by_key(|f| f.1);
    found
}
