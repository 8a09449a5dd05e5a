//! The reference server's [`WebhookTransport`]: reqwest, with the SSRF rules enforced on every
//! address a receiver's host name resolves to.

use std::error::Error as _;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use echo_core::async_trait;
use echo_core::webhook::{
    TransportError, WebhookRequest, WebhookResponse, WebhookTransport, WebhookUrlPolicy,
    request_headers,
};

use crate::config::Environment;

/// Longest a delivery may take, connection included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The policy each environment enforces: development may post to `http://localhost` and to
/// private addresses; staging and production only to public `https` receivers.
pub fn policy_for(env: Environment) -> WebhookUrlPolicy {
    match env {
        Environment::Development => WebhookUrlPolicy::DEVELOPMENT,
        Environment::Staging | Environment::Production => WebhookUrlPolicy::PRODUCTION,
    }
}

/// A resolved address the policy forbids; found again in reqwest's error chain.
#[derive(Debug)]
struct Forbidden(String);

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Forbidden {}

/// Resolves with the system resolver and refuses the name when **any** of its addresses is
/// forbidden: connecting to the allowed ones only would still let a name that mixes public
/// and private records reach the private one on a retry.
#[derive(Debug, Clone, Copy)]
struct CheckedResolver(WebhookUrlPolicy);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is replaced by the URL's; DNS has none.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !policy.allows(a.ip())) {
                return Err(Box::new(Forbidden(format!(
                    "{host} resolves to {}, which is not a public address",
                    bad.ip()
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Posts deliveries with reqwest: no redirects, no proxy (a proxy would resolve the name
/// itself, past the check), [`DELIVERY_TIMEOUT`] per attempt.
#[derive(Debug, Clone)]
pub struct ReqwestWebhookTransport {
    client: reqwest::Client,
    policy: WebhookUrlPolicy,
}

impl ReqwestWebhookTransport {
    /// A transport enforcing `policy`.
    pub fn new(policy: WebhookUrlPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("Echo-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(CheckedResolver(policy)))
            .build()?;
        Ok(Self { client, policy })
    }
}

#[async_trait]
impl WebhookTransport for ReqwestWebhookTransport {
    async fn post(&self, request: WebhookRequest<'_>) -> Result<WebhookResponse, TransportError> {
        let url = request.url.as_url();
        // Literal addresses never reach the resolver.
        let literal: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip.into()),
            Some(url::Host::Ipv6(ip)) => Some(ip.into()),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| !self.policy.allows(*ip)) {
            return Err(TransportError::AddressRefused(format!(
                "{ip} is not a public address"
            )));
        }
        let mut builder = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.body.to_vec());
        for (name, value) in request_headers(&request) {
            builder = builder.header(name, value);
        }
        match builder.send().await {
            Ok(response) => Ok(WebhookResponse {
                status: response.status().as_u16(),
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}

fn classify(e: &reqwest::Error) -> TransportError {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(forbidden) = s.downcast_ref::<Forbidden>() {
            return TransportError::AddressRefused(forbidden.0.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    // The chain's innermost message says most (refused, reset, no such host, certificate),
    // and holds no body or header.
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    TransportError::Connect(detail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use echo_core::model::{WebhookDeliveryId, WebhookEvent, WebhookUrl};
    use wiremock::matchers::{header, header_exists, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn request<'a>(url: &'a WebhookUrl, body: &'a [u8]) -> WebhookRequest<'a> {
        WebhookRequest {
            url,
            body,
            signature: "t=1,v1=00",
            delivery_id: WebhookDeliveryId::new(),
            event: WebhookEvent::Ping,
        }
    }

    fn dev_url(server: &MockServer, at: &str) -> WebhookUrl {
        WebhookUrl::parse(
            &format!("{}{at}", server.uri()),
            WebhookUrlPolicy::DEVELOPMENT,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn posts_the_body_and_headers_and_returns_the_status() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .and(header("content-type", "application/json"))
            .and(header_exists("echo-signature"))
            .and(header("echo-event", "ping"))
            .and(header_exists("echo-delivery"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let transport = ReqwestWebhookTransport::new(WebhookUrlPolicy::DEVELOPMENT).unwrap();
        let url = dev_url(&server, "/hook");
        let answer = transport.post(request(&url, b"{}")).await.unwrap();
        assert_eq!(answer.status, 204);
        // (wiremock's header matcher splits on commas, so the value is checked here.)
        let got = server.received_requests().await.unwrap();
        assert_eq!(got[0].headers["echo-signature"], "t=1,v1=00");
        assert_eq!(got[0].body, b"{}");
    }

    #[tokio::test]
    async fn redirects_are_answers_not_followed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(
                ResponseTemplate::new(307).insert_header("location", "http://169.254.169.254/"),
            )
            .mount(&server)
            .await;
        let transport = ReqwestWebhookTransport::new(WebhookUrlPolicy::DEVELOPMENT).unwrap();
        let url = dev_url(&server, "/hook");
        assert_eq!(
            transport.post(request(&url, b"{}")).await.unwrap().status,
            307
        );
    }

    #[tokio::test]
    async fn a_slow_receiver_times_out() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(DELIVERY_TIMEOUT * 2))
            .mount(&server)
            .await;
        let transport = ReqwestWebhookTransport {
            client: reqwest::Client::builder()
                .timeout(Duration::from_millis(200))
                .build()
                .unwrap(),
            policy: WebhookUrlPolicy::DEVELOPMENT,
        };
        let url = dev_url(&server, "/hook");
        assert_eq!(
            transport.post(request(&url, b"{}")).await.unwrap_err(),
            TransportError::Timeout
        );
    }

    #[tokio::test]
    async fn production_refuses_private_addresses_literal_or_resolved() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let transport = ReqwestWebhookTransport::new(WebhookUrlPolicy::PRODUCTION).unwrap();
        let port = server.address().port();
        // Stored under development rules, delivered under production's (a changed deployment).
        for (url, expected) in [
            (
                format!("https://127.0.0.1:{port}/hook"),
                "127.0.0.1 is not a public address".to_owned(),
            ),
            (
                format!("http://localhost:{port}/hook"),
                "localhost resolves to".to_owned(),
            ),
        ] {
            let url = WebhookUrl::parse(&url, WebhookUrlPolicy::DEVELOPMENT).unwrap();
            match transport.post(request(&url, b"{}")).await {
                Err(TransportError::AddressRefused(why)) => {
                    assert!(why.starts_with(&expected), "{why}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_failure() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let transport = ReqwestWebhookTransport::new(WebhookUrlPolicy::DEVELOPMENT).unwrap();
        let url = WebhookUrl::parse(
            &format!("http://127.0.0.1:{port}/hook"),
            WebhookUrlPolicy::DEVELOPMENT,
        )
        .unwrap();
        assert!(matches!(
            transport.post(request(&url, b"{}")).await,
            Err(TransportError::Connect(_))
        ));
    }

    #[test]
    fn staging_and_production_share_the_strict_policy() {
        assert_eq!(
            policy_for(Environment::Production),
            WebhookUrlPolicy::PRODUCTION
        );
        assert_eq!(
            policy_for(Environment::Staging),
            WebhookUrlPolicy::PRODUCTION
        );
        assert_eq!(
            policy_for(Environment::Development),
            WebhookUrlPolicy::DEVELOPMENT
        );
    }
}
