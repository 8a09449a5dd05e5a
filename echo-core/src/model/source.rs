//! The web sources an answer cited, as stored with its iteration.

use serde::{Deserialize, Serialize};

use crate::provider::{CitedSource, SourceSpan, normalize_sources};

/// One web source cited by an answer, as stored with its [`Iteration`](super::Iteration).
///
/// Built from a provider's [`CitedSource`] by [`IterationSource::from_citations`], which keeps
/// what is valid and drops the rest (by the provider module's one rule,
/// [`normalize_sources`]), so a malformed citation never fails the iteration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterationSource {
    /// 1-based order among the answer's valid, distinct sources, as the provider listed them.
    pub position: u32,
    /// The URL as the provider returned it, trimmed.
    pub url: String,
    /// The registrable domain of the URL's host ([`registrable_domain`]): `bbc.co.uk` for
    /// `https://www.news.bbc.co.uk/x`.
    pub domain: String,
    /// The page title, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The byte ranges of the stored answer this source supports, ascending; empty when the
    /// provider gave none (attribution then falls back to `[n]` markers in the text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<SourceSpan>,
}

impl IterationSource {
    /// The storable sources of a completion whose stored answer is `answer`.
    ///
    /// What is valid is decided in one place, [`normalize_sources`] (absolute `http(s)` URLs,
    /// each once, at most [`MAX_SOURCES_PER_ANSWER`](crate::provider::MAX_SOURCES_PER_ANSWER),
    /// spans that fit `answer`, cleaned titles); adapters already pass their sources through it,
    /// and it runs again here for a [`Provider`](crate::provider::Provider) that did not. Pass
    /// the answer as stored: when redaction changed the text, the provider's offsets no longer
    /// point at the same words, so the caller passes `spans_valid = false` and every span is
    /// dropped.
    ///
    /// ```
    /// use echo_core::model::IterationSource;
    /// use echo_core::provider::{CitedSource, SourceSpan};
    ///
    /// let answer = "Use HubSpot [1]. See also the BBC [2].";
    /// let cited = [
    ///     CitedSource::from_url("https://www.hubspot.com/pricing"),
    ///     CitedSource::from_url("not a url"),
    ///     CitedSource { spans: vec![SourceSpan { start: 17, end: 38 }], ..CitedSource::from_url("https://news.bbc.co.uk/a") },
    /// ];
    /// let stored = IterationSource::from_citations(&cited, answer, true);
    /// assert_eq!(stored.len(), 2);
    /// assert_eq!((stored[0].position, stored[0].domain.as_str()), (1, "hubspot.com"));
    /// assert_eq!((stored[1].position, stored[1].domain.as_str()), (2, "bbc.co.uk"));
    /// assert_eq!(stored[1].spans, [SourceSpan { start: 17, end: 38 }]);
    /// ```
    pub fn from_citations(citations: &[CitedSource], answer: &str, spans_valid: bool) -> Vec<Self> {
        normalize_sources(answer, citations.iter().cloned())
            .into_iter()
            .filter_map(|cited| {
                let domain = registrable_domain(&cited.url)?;
                Some((cited, domain))
            })
            .enumerate()
            .filter_map(|(i, (cited, domain))| {
                Some(Self {
                    position: u32::try_from(i + 1).ok()?,
                    domain,
                    title: cited.title,
                    spans: if spans_valid { cited.spans } else { Vec::new() },
                    url: cited.url,
                })
            })
            .collect()
    }
}

/// The registrable domain ("eTLD+1") of an `http` or `https` URL's host, lower-case: the
/// public suffix plus one label, so `https://WWW.News.BBC.co.uk/` gives `bbc.co.uk` and
/// `https://user.github.io/` gives `user.github.io` (`github.io` is on the list's private
/// section). A host that is itself a suffix or has no listed suffix (`localhost`) is kept
/// whole less a leading `www.`; an IP address is kept as written. `None` when the text is not
/// an `http(s)` URL with a host.
///
/// The public-suffix list is the one compiled into the `psl` crate; a release of Echo carries
/// the list of its build.
///
/// ```
/// use echo_core::model::registrable_domain;
/// assert_eq!(registrable_domain("https://www.bbc.co.uk/news").as_deref(), Some("bbc.co.uk"));
/// assert_eq!(registrable_domain("http://Shop.Example.COM:8080/x?y").as_deref(), Some("example.com"));
/// assert_eq!(registrable_domain("https://co.uk/").as_deref(), Some("co.uk"));
/// assert_eq!(registrable_domain("ftp://example.com/"), None);
/// assert_eq!(registrable_domain("example.com"), None);
/// ```
pub fn registrable_domain(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    match parsed.host()? {
        url::Host::Domain(host) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let host = host.strip_prefix("www.").unwrap_or(&host);
            if host.is_empty() {
                return None;
            }
            Some(psl::domain_str(host).unwrap_or(host).to_owned())
        }
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(format!("[{ip}]")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domain_is_public_suffix_aware() {
        let cases = [
            ("https://www.bbc.co.uk/news", Some("bbc.co.uk")),
            ("https://news.bbc.co.uk", Some("bbc.co.uk")),
            ("https://WWW.HubSpot.com/pricing", Some("hubspot.com")),
            ("https://user.github.io/x", Some("user.github.io")),
            ("https://example.com.au/", Some("example.com.au")),
            ("https://www.example.com./", Some("example.com")),
            ("http://localhost:8080/", Some("localhost")),
            ("http://www.localhost/", Some("localhost")),
            ("http://192.168.1.1/x", Some("192.168.1.1")),
            ("http://[::1]/", Some("[::1]")),
            ("https://bücher.de/", Some("xn--bcher-kva.de")),
            ("mailto:a@example.com", None),
            ("javascript:alert(1)", None),
            ("", None),
            ("https://", None),
        ];
        for (url, want) in cases {
            assert_eq!(registrable_domain(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn malformed_citations_are_kept_as_far_as_valid() {
        let answer = "héllo world";
        let mut many: Vec<CitedSource> = (0..10_000)
            .map(|i| CitedSource::from_url(format!("https://s{i}.example.org/")))
            .collect();
        many[0] = CitedSource {
            url: "  https://a.example.com/  ".into(),
            title: Some("   ".into()),
            spans: vec![
                SourceSpan { start: 7, end: 12 },
                SourceSpan { start: 1, end: 2 }, // inside 'é'
                SourceSpan { start: 5, end: 5 },
                SourceSpan { start: 0, end: 99 },
                SourceSpan { start: 0, end: 3 },
                SourceSpan { start: 7, end: 12 },
            ],
        };
        many[1].url = "no url".into();
        many[2].title = Some("x".repeat(5000));
        let stored = IterationSource::from_citations(&many, answer, true);
        assert_eq!(stored.len(), crate::provider::MAX_SOURCES_PER_ANSWER);
        assert_eq!(stored[0].url, "https://a.example.com/");
        assert_eq!(stored[0].title, None);
        assert_eq!(
            stored[0].spans,
            [
                SourceSpan { start: 0, end: 3 },
                SourceSpan { start: 7, end: 12 }
            ]
        );
        assert_eq!(
            stored[1].position, 2,
            "the invalid second entry leaves no gap"
        );
        assert_eq!(
            stored[1].title.as_ref().map(|t| t.chars().count()),
            Some(crate::provider::MAX_TITLE_CHARS)
        );
        let no_spans = IterationSource::from_citations(&many[..1], answer, false);
        assert!(no_spans[0].spans.is_empty());
    }
}
