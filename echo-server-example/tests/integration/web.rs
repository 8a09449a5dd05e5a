//! The web dashboard through the real router: pages, forms, sessions, CSRF, escaping, CSP,
//! asset caching and the styled error pages.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::harness::TestServer;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Form bodies (this build's reqwest has no `form` feature).
trait FormBody {
    fn form<T: serde::Serialize + ?Sized>(self, pairs: &T) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form<T: serde::Serialize + ?Sized>(self, pairs: &T) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(pairs).unwrap())
    }
}

/// A browser-like client: no automatic redirects, cookies sent by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A signed-in browser session: the cookie header and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Posts the log-in or sign-up form at `path` as a browser would: first loading it (for the
/// form cookie and its token), then sending the fields with the token.
async fn anonymous_post(s: &TestServer, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let r = browser().get(s.url(path)).send().await.unwrap();
    let jar = cookies(r.headers());
    let (name, value) = jar.iter().find(|(k, _)| k == "__Host-echo_form").unwrap();
    let page = r.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let at = page.find(marker).unwrap() + marker.len();
    let token = &page[at..at + 64];
    assert_eq!(token, value, "the hidden field echoes the cookie");
    let mut form = fields.to_vec();
    form.push(("csrf_token", token));
    browser()
        .post(s.url(path))
        .header("cookie", format!("{name}={value}"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn sign_up(s: &TestServer, email: &str) -> Session {
    let r = anonymous_post(
        s,
        "/signup",
        &[
            ("email", email),
            ("password", "correct horse battery"),
            ("accept_policy", "yes"),
        ],
    )
    .await;
    // Registration does not sign in: a new and a registered address get the same next step.
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?registered=1");
    let r = anonymous_post(
        s,
        "/login",
        &[
            ("email", email),
            ("password", "correct horse battery"),
            ("next", "/"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/");
    let jar = cookies(r.headers());
    let session = jar
        .iter()
        .find(|(k, _)| k == "__Host-echo_session")
        .unwrap();
    let csrf = jar.iter().find(|(k, _)| k == "__Host-echo_csrf").unwrap();
    Session {
        cookie: format!("{}={}", session.0, session.1),
        csrf: csrf.1.clone(),
    }
}

async fn get(s: &TestServer, session: &Session, path: &str) -> (StatusCode, HeaderMap, String) {
    let r = browser()
        .get(s.url(path))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

async fn post(
    s: &TestServer,
    session: &Session,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let r = browser()
        .post(s.url(path))
        .header("cookie", &session.cookie)
        .header("sec-fetch-site", "same-origin")
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

fn assert_page(headers: &HeaderMap) {
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{headers:?}"
    );
    assert_eq!(headers["content-security-policy"], CSP);
    assert_eq!(headers["cache-control"], "private, no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("x-request-id"));
}

/// Creates an experiment through the form; returns its id.
async fn create(s: &TestServer, session: &Session, target: &str, iterations: &str) -> String {
    let (status, headers, body) = post(
        s,
        session,
        "/experiments",
        &[
            ("csrf_token", &session.csrf),
            ("prompt", "Which CRM should a startup pick?"),
            ("target", target),
            ("target_aliases", "HubSpot CRM"),
            ("match_mode", "case_insensitive"),
            ("competitors", "Salesforce\nPipedrive: Pipedrive CRM"),
            ("providers", "simulated"),
            ("iterations", iterations),
            ("schedule", ""),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = headers["location"].to_str().unwrap();
    location.strip_prefix("/experiments/").unwrap().to_owned()
}

/// The detail page once the experiment has settled (the live-progress notice is gone).
async fn settled(s: &TestServer, session: &Session, id: &str) -> String {
    for _ in 0..400 {
        let page = get(s, session, &format!("/experiments/{id}")).await.2;
        if !page.contains("id=\"live\"") {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("experiment {id} never settled");
}

#[tokio::test]
async fn every_page_renders_for_its_owner() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-owner@example.com").await;
    let id = create(&s, &me, "HubSpot", "12").await;
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    for path in [
        "/".to_owned(),
        "/experiments".to_owned(),
        "/experiments?status=queued".to_owned(),
        "/alerts".to_owned(),
        "/experiments/new".to_owned(),
        format!("/experiments/{id}"),
        format!("/experiments/{id}/delete"),
        "/settings/keys".to_owned(),
        "/settings/privacy".to_owned(),
        "/settings/delete-account".to_owned(),
    ] {
        let (status, headers, body) = get(&s, &me, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_page(&headers);
        assert!(body.contains("web-owner@example.com"), "{path}");
        assert!(body.contains("<main id=\"main\""), "{path}");
    }
    // Once finished, the detail page shows the API's numbers: visibility with its interval
    // and n for the simulated provider.
    let page = settled(&s, &me, &id).await;
    assert!(page.contains("badge-completed"), "{page}");
    assert!(page.contains("n = 12"), "{page}");
    // The chart is server-rendered SVG with a text title, styled by classes only (the CSP
    // forbids inline style), and needs no script.
    assert!(page.contains("<svg viewBox=\"0 0 640 ") && page.contains("role=\"img\""));
    assert!(page.contains("class=\"ci\""), "the interval is drawn");
    assert!(!page.contains(" style="), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("simulated"));
    // The CSV downloads are the API's routes, which take the page's session cookie.
    for table in ["runs", "answers"] {
        let link = format!("/api/v1/experiments/{id}/export/{table}.csv");
        assert!(
            page.contains(&format!("href=\"{link}\" download")),
            "{page}"
        );
        let (status, headers, csv) = get(&s, &me, &link).await;
        assert_eq!(status, StatusCode::OK, "{csv}");
        assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
        assert!(csv.starts_with("run_id,"), "{csv}");
    }

    // Re-run, then compare the two runs in words.
    let (status, headers, _) = post(
        &s,
        &me,
        &format!("/experiments/{id}/run"),
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], format!("/experiments/{id}"));
    let page = settled(&s, &me, &id).await;
    assert!(page.contains("Compare two runs"), "{page}");
    let runs: Vec<&str> = page
        .match_indices("<option value=\"")
        .map(|(i, _)| &page[i + 15..i + 15 + 36])
        .collect();
    let (status, _, compare) = get(
        &s,
        &me,
        &format!("/experiments/{id}/compare?a={}&b={}", runs[0], runs[1]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{compare}");
    assert!(
        compare.contains("likely a real change")
            || compare.contains("could be chance")
            || compare.contains("unchanged"),
        "{compare}"
    );

    // Delete through the confirmation page's form.
    let (status, headers, _) = post(
        &s,
        &me,
        &format!("/experiments/{id}/delete"),
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/experiments");
    let (status, _, _) = get(&s, &me, &format!("/experiments/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    workers.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn the_home_dashboard_charts_the_brand_over_time_and_its_share_of_voice() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-trend@example.com").await;
    let other = sign_up(&s, "web-trend-other@example.com").await;
    // Before any run: no charts, and no chart script.
    let (_, _, empty) = get(&s, &me, "/").await;
    assert!(
        !empty.contains("over time") && !empty.contains("chart."),
        "{empty}"
    );
    let first = create(&s, &me, "HubSpot", "12").await;
    let second = create(&s, &me, "HubSpot", "8").await;
    let theirs = create(&s, &other, "Zoho", "5").await;
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    for (who, id) in [(&me, &first), (&me, &second), (&other, &theirs)] {
        settled(&s, who, id).await;
    }
    let (status, headers, page) = get(&s, &me, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_page(&headers);
    assert!(page.contains("Visibility of HubSpot over time"), "{page}");
    // One simulated line with a band and a point per completed run, each labelled with its
    // interval and n; another user's run is not among them.
    assert_eq!(
        page.matches("class=\"series s0\" data-series=\"simulated\"")
            .count(),
        1
    );
    assert_eq!(page.matches("class=\"band\"").count(), 1);
    assert_eq!(page.matches("class=\"pt\"").count(), 2, "{page}");
    assert!(page.contains("(95% interval ") && page.contains("n = 12)") && page.contains("n = 8)"));
    assert!(!page.contains("Zoho"), "{page}");
    // The table equivalent links each point to its experiment.
    assert!(page.contains(&format!("href=\"/experiments/{first}\"")));
    assert!(page.contains(&format!("href=\"/experiments/{second}\"")));
    // Share of voice against the competitors, as bars and as a table.
    assert!(page.contains("Share of voice: HubSpot and its competitors"));
    for brand in ["Salesforce", "Pipedrive"] {
        assert!(
            page.contains(&format!("<th scope=\"row\">{brand}")),
            "{brand}: {page}"
        );
    }
    // The chart module is loaded as a hashed ES module, and nothing is inline.
    let script = echo_server_example::web::assets::url("chart.js");
    assert!(page.contains(&format!("<script type=\"module\" src=\"{script}\">")));
    assert!(
        !page.contains(" style=") && !page.contains("<script>"),
        "{page}"
    );
    let (status, _, js) = get(&s, &me, script).await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("aria-pressed"));

    // The same charts as JSON: every point and bar the page shows, and only the caller's.
    let (status, headers, json) = get(&s, &me, "/api/v1/dashboard/trend").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(headers["content-type"], "application/json");
    let trend: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(trend["brand"], "HubSpot");
    assert_eq!(trend["runs"], 2);
    assert_eq!(trend["truncated"], false);
    let series = trend["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{trend}");
    assert_eq!(series[0]["provider"], "simulated");
    let points = series[0]["points"].as_array().unwrap();
    let mut experiments: Vec<&str> = points
        .iter()
        .map(|p| p["experiment_id"].as_str().unwrap())
        .collect();
    experiments.sort_unstable();
    let mut ours = vec![first.as_str(), second.as_str()];
    ours.sort_unstable();
    assert_eq!(experiments, ours);
    // Oldest first, like the line.
    assert!(points[0]["at"].as_str().unwrap() <= points[1]["at"].as_str().unwrap());
    for p in points {
        let f = |k: &str| p[k].as_f64().unwrap() * 100.0;
        let row = format!(
            "<td class=\"num\">{:.1}%</td><td class=\"num\">{:.1}–{:.1}%</td><td class=\"num\">{}</td>",
            f("rate"),
            f("low"),
            f("high"),
            p["n"]
        );
        assert!(page.contains(&row), "{row}: {page}");
        assert!(p["successes"].as_u64().unwrap() <= p["n"].as_u64().unwrap());
        assert_eq!(p["run_id"].as_str().unwrap().len(), 36);
    }
    let voices = trend["share_of_voice"].as_array().unwrap();
    assert!(voices.len() >= 3, "{trend}");
    for v in voices {
        let row = format!(
            "<td class=\"num\">{}</td><td class=\"num\">{:.1}%</td></tr>",
            v["mentions"],
            v["share"].as_f64().unwrap() * 100.0
        );
        let brand = v["brand"].as_str().unwrap();
        let at = page
            .find(&format!("<th scope=\"row\">{brand}"))
            .unwrap_or_else(|| panic!("{brand}: {page}"));
        assert!(page[at..].contains(&row), "{brand} {row}: {page}");
        assert_eq!(v["is_target"], brand == "HubSpot");
    }
    let (status, _, theirs_json) = get(&s, &other, "/api/v1/dashboard/trend").await;
    assert_eq!(status, StatusCode::OK);
    let theirs_trend: serde_json::Value = serde_json::from_str(&theirs_json).unwrap();
    assert_eq!(theirs_trend["brand"], "Zoho");
    assert_eq!(theirs_trend["runs"], 1);
    let their_points = theirs_trend["series"][0]["points"].as_array().unwrap();
    assert_eq!(their_points.len(), 1);
    assert_eq!(their_points[0]["experiment_id"], theirs.as_str());
    assert!(!theirs_json.contains(&first) && !theirs_json.contains(&second));
    // Signed out: a problem, not data.
    let r = browser()
        .get(s.url("/api/v1/dashboard/trend"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    workers.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn another_users_experiment_is_the_404_page() {
    let s = TestServer::start().await;
    let owner = sign_up(&s, "web-a@example.com").await;
    let other = sign_up(&s, "web-b@example.com").await;
    let id = create(&s, &owner, "HubSpot", "5").await;
    for path in [
        format!("/experiments/{id}"),
        format!("/experiments/{id}/delete"),
        "/experiments/not-an-id".to_owned(),
    ] {
        let (status, headers, body) = get(&s, &other, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_page(&headers);
        assert!(body.contains("Error 404"), "{body}");
        assert!(!body.contains("Which CRM"), "{body}");
    }
    // Nor can they act on it.
    let (status, _, _) = post(
        &s,
        &other,
        &format!("/experiments/{id}/delete"),
        &[("csrf_token", &other.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(get(&s, &owner, &format!("/experiments/{id}")).await.0, 200);
}

#[tokio::test]
async fn unknown_pages_are_styled_and_the_api_keeps_its_problems() {
    let s = TestServer::start().await;
    let r = browser().get(s.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_page(r.headers());
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Page not found") && body.contains("Request id"),
        "{body}"
    );

    let r = browser()
        .get(s.url("/api/v1/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert_eq!(r.headers()["cache-control"], "no-store");

    // Signed out, a page sends the browser to the log-in page, which returns there.
    let r = browser()
        .get(s.url("/experiments?status=failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fexperiments%3Fstatus%3Dfailed"
    );
    let r = browser()
        .get(s.url("/login?next=%2Fexperiments"))
        .send()
        .await
        .unwrap();
    assert_page(r.headers());
    assert!(r.text().await.unwrap().contains("value=\"/experiments\""));
}

#[tokio::test]
async fn assets_are_hashed_immutable_and_compressed() {
    let s = TestServer::start().await;
    let r = browser().get(s.url("/login")).send().await.unwrap();
    let page = r.text().await.unwrap();
    let start = page.find("/assets/app.").unwrap();
    let end = start + page[start..].find('"').unwrap();
    let css = &page[start..end];
    assert!(
        css.ends_with(".css") && css.len() == "/assets/app.".len() + 16 + 4,
        "{css}"
    );

    let r = browser()
        .get(s.url(css))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(r.headers()["content-encoding"], "gzip");

    // A stale or invented hash names nothing.
    let r = browser()
        .get(s.url("/assets/app.0000000000000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["cache-control"], "private, no-store");

    // Pages are compressed too; the JSON API is left as it was.
    let r = browser()
        .get(s.url("/login"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    let r = browser()
        .get(s.url("/api/v1/privacy-policy"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("content-encoding"));
}

#[tokio::test]
async fn form_posts_without_the_csrf_token_or_from_another_site_are_refused() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-csrf@example.com").await;
    let form = [
        ("prompt", "Best CRM?"),
        ("target", "HubSpot"),
        ("providers", "simulated"),
        ("iterations", "5"),
    ];
    let (status, headers, body) = post(&s, &me, "/experiments", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_page(&headers);
    assert!(body.contains("CSRF"), "{body}");

    let mut forged = form.to_vec();
    forged.push(("csrf_token", "forged"));
    let (status, _, _) = post(&s, &me, "/experiments", &forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut good = form.to_vec();
    good.push(("csrf_token", &me.csrf));
    let r = browser()
        .post(s.url("/experiments"))
        .header("cookie", &me.cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Nothing was created by the refused posts.
    let (_, _, list) = get(&s, &me, "/experiments").await;
    assert!(list.contains("No experiments"), "{list}");

    // Log-out is a form post too, and ends the session.
    let (status, _, _) = post(&s, &me, "/logout", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, _) = post(&s, &me, "/logout", &[("csrf_token", &me.csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/login");
    let (status, headers, _) = get(&s, &me, "/experiments").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers["location"].to_str().unwrap().starts_with("/login"));
}

#[tokio::test]
async fn hostile_brand_names_are_escaped() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-xss@example.com").await;
    let hostile = "<img src=x onerror=alert(1)>";
    let (status, headers, body) = post(
        &s,
        &me,
        "/experiments",
        &[
            ("csrf_token", &me.csrf),
            ("prompt", "Best CRM? <script>alert(2)</script>"),
            ("target", hostile),
            ("competitors", "\"><svg onload=alert(3)>"),
            ("providers", "simulated"),
            ("iterations", "5"),
        ],
    )
    .await;
    let pages = if status == StatusCode::SEE_OTHER {
        let detail = headers["location"].to_str().unwrap().to_owned();
        vec![
            get(&s, &me, &detail).await.2,
            get(&s, &me, "/experiments").await.2,
            get(&s, &me, "/").await.2,
        ]
    } else {
        // Refused: the form comes back with what was typed, escaped.
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        vec![body]
    };
    for page in pages {
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<svg onload"), "{page}");
        // askama writes numeric character references.
        assert!(
            page.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{page}"
        );
    }
}

#[tokio::test]
async fn a_refused_form_keeps_what_was_typed() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-form@example.com").await;
    let (status, headers, body) = post(
        &s,
        &me,
        "/experiments",
        &[
            ("csrf_token", &me.csrf),
            ("prompt", "Which CRM should a startup pick?"),
            ("target", "HubSpot"),
            ("target_aliases", "HubSpot CRM"),
            ("competitors", "Salesforce"),
            ("providers", "simulated"),
            ("iterations", "0"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_page(&headers);
    assert!(body.contains("id=\"iterations-error\""), "{body}");
    assert!(
        body.contains(">Which CRM should a startup pick?</textarea>"),
        "{body}"
    );
    assert!(body.contains("value=\"HubSpot CRM\""), "{body}");
    assert!(body.contains(">Salesforce</textarea>"), "{body}");
    assert!(body.contains("value=\"0\""), "{body}");

    let (status, _, body) = post(
        &s,
        &me,
        "/experiments",
        &[
            ("csrf_token", &me.csrf),
            ("prompt", "Which CRM?"),
            ("target", "HubSpot"),
            ("providers", "simulated"),
            ("iterations", "5"),
            ("schedule", "custom"),
            ("cron", "every tuesday-ish"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"cron-error\""), "{body}");
    assert!(body.contains("value=\"every tuesday-ish\""), "{body}");

    // Sign-up: the errors sit next to their fields and the email stays.
    let r = anonymous_post(
        &s,
        "/signup",
        &[("email", "typed@example.com"), ("password", "short")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("value=\"typed@example.com\""), "{body}");
    assert!(
        body.contains("id=\"accept_policy-error\"") || body.contains("id=\"password-error\""),
        "{body}"
    );
    let r = anonymous_post(
        &s,
        "/signup",
        &[
            ("email", "web-form@example.com"),
            ("password", "correct horse battery"),
            ("accept_policy", "yes"),
        ],
    )
    .await;
    // A registered address gets the same answer as a new one: the page tells nobody which
    // addresses have accounts.
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?registered=1");
    let note = browser()
        .get(s.url("/login?registered=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(note.contains("If this address was new"), "{note}");

    // Log-in: a wrong password says so and keeps the email.
    let r = anonymous_post(
        &s,
        "/login",
        &[
            ("email", "web-form@example.com"),
            ("password", "wrong password"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("The email or password is wrong."), "{body}");
    assert!(body.contains("value=\"web-form@example.com\""), "{body}");
    let r = anonymous_post(
        &s,
        "/login",
        &[
            ("email", "web-form@example.com"),
            ("password", "correct horse battery"),
            ("next", "/experiments"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/experiments");
    assert!(
        cookies(r.headers())
            .iter()
            .any(|(k, _)| k == "__Host-echo_session")
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_then_only_by_prefix() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-keys@example.com").await;
    let (status, headers, page) = post(
        &s,
        &me,
        "/settings/keys",
        &[("csrf_token", &me.csrf), ("name", "ci pipeline")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    assert_eq!(headers["cache-control"], "private, no-store");
    let marker = "id=\"new-key\" readonly value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let key = &page[start..start + page[start..].find('"').unwrap()];
    assert!(key.starts_with("echo1_"), "{key}");
    assert!(page.contains("data-copy=\"new-key\""));
    assert!(
        page.contains("/assets/page."),
        "the copy button's module is loaded"
    );

    // The key works against the API, and the listing shows only its start.
    let r = browser()
        .get(s.url("/api/v1/auth/me"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, _, list) = get(&s, &me, "/settings/keys").await;
    assert!(!list.contains(key), "{list}");
    assert!(list.contains("ci pipeline"));
    assert!(list.contains(&key[..12]), "{list}");

    // Rotate shows the replacement once; revoke ends a key.
    let id_at = list.find("/settings/keys/").unwrap() + "/settings/keys/".len();
    let id = &list[id_at..id_at + 36];
    let (status, _, rotated) = post(
        &s,
        &me,
        &format!("/settings/keys/{id}/rotate"),
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert!(rotated.contains("id=\"new-key\""));
    let (status, headers, _) = post(
        &s,
        &me,
        &format!("/settings/keys/{id}/revoke"),
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/settings/keys");
    let r = browser()
        .get(s.url("/api/v1/auth/me"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A bad name is shown next to the field.
    let (status, _, page) = post(
        &s,
        &me,
        "/settings/keys",
        &[("csrf_token", &me.csrf), ("name", "")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("id=\"name-error\""), "{page}");
}

#[tokio::test]
async fn privacy_settings_export_and_account_deletion() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-privacy@example.com").await;
    let (status, headers, _) = post(
        &s,
        &me,
        "/settings/privacy",
        &[
            ("csrf_token", &me.csrf),
            ("accept_policy", "yes"),
            ("data_processing", "yes"),
            ("marketing", "yes"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/settings/privacy");
    let (_, _, page) = get(&s, &me, "/settings/privacy").await;
    assert!(
        page.contains("id=\"marketing\" name=\"marketing\" value=\"yes\" checked"),
        "{page}"
    );

    // The export link is the API's, which the session cookie may GET.
    let (status, headers, export) = get(&s, &me, "/api/v1/user/data-export").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(export.contains("web-privacy@example.com"));

    let (status, headers, page) = post(
        &s,
        &me,
        "/settings/delete-account",
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("scheduled for deletion"));
    assert!(
        cookies(&headers)
            .iter()
            .any(|(k, v)| k == "__Host-echo_session" && v.is_empty())
    );
    let (status, _, _) = get(&s, &me, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the session ended");

    // Logging in during the grace period restores the account.
    let r = anonymous_post(
        &s,
        "/login",
        &[
            ("email", "web-privacy@example.com"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_audit_log_is_for_admins_only() {
    let s = TestServer::start().await;
    let tenant = sign_up(&s, "web-tenant@example.com").await;
    let (status, headers, body) = get(&s, &tenant, "/admin/audit").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_page(&headers);
    assert!(body.contains("Error 404"), "{body}");
    assert!(!body.contains("Audit log"), "{body}");

    let admin = sign_up(&s, "web-admin@example.com").await;
    s.make_admin("web-admin@example.com").await;
    let (status, headers, body) = get(&s, &admin, "/admin/audit?action=register").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_page(&headers);
    assert!(body.contains("<td>register</td>"), "{body}");
    assert!(!body.contains("<td>login_success</td>"), "filtered: {body}");
    let (status, _, body) = get(&s, &admin, "/admin/audit?from=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"from-error\""), "{body}");
    assert!(body.contains("value=\"yesterday\""), "{body}");
}

#[tokio::test]
async fn log_in_and_sign_up_forms_need_their_form_token() {
    let s = TestServer::start().await;
    sign_up(&s, "web-token@example.com").await;
    let fields = [
        ("email", "web-token@example.com"),
        ("password", "correct horse battery"),
    ];
    // No cookie and no token, a token without its cookie, a cookie with another token.
    let bare = browser()
        .post(s.url("/login"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    assert_page(bare.headers());
    let mut with_token = fields.to_vec();
    with_token.push(("csrf_token", "ab".repeat(32).leak()));
    let r = browser()
        .post(s.url("/login"))
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = browser()
        .post(s.url("/signup"))
        .header("cookie", format!("__Host-echo_form={}", "cd".repeat(32)))
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The real form passes.
    let r = anonymous_post(&s, "/login", &fields).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_runs_answers_show_marked_brands_escaped_and_only_to_their_owner() {
    use echo_core::conformance::fixtures::iteration;
    use echo_core::model::{BatchRun, ExperimentId, ProviderKind, Timestamp};
    let s = TestServer::start().await;
    let owner = sign_up(&s, "web-answers@example.com").await;
    let other = sign_up(&s, "web-answers-b@example.com").await;
    let id = create(&s, &owner, "HubSpot", "5").await;
    // Answers written straight to the store, so their text is the test's, hostile included.
    let experiment: ExperimentId = id.parse().unwrap();
    let run = BatchRun::new(
        experiment,
        ProviderKind::Simulated,
        "sim-1",
        3,
        Timestamp::now(),
    );
    s.store.create_batch_run(&run).await.unwrap();
    let mut answers: Vec<_> = (0..3)
        .map(|i| iteration(run.id, i, Timestamp::now()))
        .collect();
    answers[0].raw_response =
        Some("Pick HubSpot CRM <script>alert(1)</script> over Salesforce.".into());
    answers[1].is_success = false;
    answers[1].raw_response = None;
    answers[1].mentions = None;
    answers[1].error = Some("timeout <b>upstream</b>".into());
    s.store.record_iterations(&answers).await.unwrap();
    let run_id = run.id.to_string();

    let detail = get(&s, &owner, &format!("/experiments/{id}")).await.2;
    let path = format!("/experiments/{id}/runs/{run_id}/answers");
    assert!(detail.contains(&format!("href=\"{path}\"")), "{detail}");
    let (status, headers, page) = get(&s, &owner, &path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page(&headers);
    // The alias "HubSpot CRM" matched the target; Salesforce is a competitor.
    assert!(
        page.contains("<mark class=\"mark-target\" title=\"HubSpot (as &#8220;HubSpot CRM&#8221;)\">HubSpot CRM</mark>")
            || page.contains("<mark class=\"mark-target\" title=\"HubSpot (as “HubSpot CRM”)\">HubSpot CRM</mark>"),
        "{page}"
    );
    assert!(
        page.contains("<mark class=\"mark-competitor\" title=\"Salesforce\">Salesforce</mark>"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.contains("<b>upstream"), "{page}");
    assert!(
        page.contains("timeout &#60;b&#62;upstream&#60;/b&#62;"),
        "{page}"
    );

    // A page of one answer links to the next.
    let (_, _, first) = get(&s, &owner, &format!("{path}?limit=1")).await;
    let marker = "rel=\"next\"";
    assert!(first.contains(marker), "{first}");
    let href_at = first.find(&format!("href=\"{path}?cursor=")).unwrap() + "href=\"".len();
    let href_end = href_at + first[href_at..].find('"').unwrap();
    let next = first[href_at..href_end].replace("&#38;", "&");
    let (status, _, second) = get(&s, &owner, &next).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert!(second.contains("Answer 2"), "{second}");

    let (status, headers, body) = get(&s, &other, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_page(&headers);
    assert!(body.contains("Error 404"), "{body}");
    assert!(!body.contains("HubSpot CRM"), "{body}");
}

#[tokio::test]
async fn the_mailed_link_verifies_the_address_once_through_a_form() {
    let mut options = crate::harness::Options::default();
    options.config.security.require_email_verification = Some(true);
    options.config.http.public_base_url = Some("https://echo.example.com/".into());
    let s = TestServer::start_with(options).await;
    let r = anonymous_post(
        &s,
        "/signup",
        &[
            ("email", "web-verify@example.com"),
            ("password", "correct horse battery"),
            ("accept_policy", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let token = s.mailed_token("web-verify@example.com");

    // Opening the link only shows the form: a link-following mail scanner uses nothing up.
    let r = browser()
        .get(s.url(&format!("/verify-email?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_page(r.headers());
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("name=\"token\" value=\"{token}\"")),
        "{page}"
    );
    assert!(page.contains("Verify my email"), "{page}");

    // Without the form token the post is refused and the token stays usable.
    let r = browser()
        .post(s.url("/verify-email"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_page(r.headers());

    let r = anonymous_post(&s, "/verify-email", &[("token", &token)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_page(r.headers());
    let page = r.text().await.unwrap();
    assert!(page.contains("Your email is verified"), "{page}");
    assert!(page.contains("href=\"/login\""), "{page}");

    // A used token, and a made-up hostile one, are refused on a page with the way forward.
    for bad in [token.as_str(), "<script>alert(1)</script>"] {
        let r = anonymous_post(&s, "/verify-email", &[("token", bad)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_page(r.headers());
        let page = r.text().await.unwrap();
        assert!(page.contains("Invalid verification token"), "{page}");
        assert!(page.contains("ask for a new verification link"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }
}

#[tokio::test]
async fn brand_profile_page_saves_keeps_input_on_errors_and_prefills_new_experiments() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-brand@example.com").await;
    let (status, _, page) = get(&s, &me, "/settings/brand").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("href=\"/settings/brand\" aria-current=\"page\""),
        "linked from the settings nav"
    );

    // A bad domain: the error sits next to the field and what was typed is kept (escaped).
    let (status, _, page) = post(
        &s,
        &me,
        "/settings/brand",
        &[
            ("csrf_token", &me.csrf),
            ("name", "Acme <b>"),
            ("aliases", "Acme Inc"),
            ("match_mode", "case_insensitive"),
            ("domain", "not a domain"),
            ("competitors", "Globex: Globex Corp\nInitech"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("id=\"domain-error\""), "{page}");
    assert!(page.contains("value=\"not a domain\""));
    assert!(
        page.contains("Acme &lt;b&gt;") || page.contains("Acme &#60;b&#62;"),
        "escaped"
    );
    assert!(page.contains("Globex: Globex Corp\nInitech"));

    let (status, headers, _) = post(
        &s,
        &me,
        "/settings/brand",
        &[
            ("csrf_token", &me.csrf),
            ("name", "Acme"),
            ("aliases", "Acme Inc"),
            ("match_mode", "case_sensitive"),
            ("domain", "Acme.example"),
            ("competitors", "Globex: Globex Corp\nInitech"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/settings/brand?saved=1");
    let (_, _, page) = get(&s, &me, "/settings/brand?saved=1").await;
    assert!(page.contains("Brand profile saved."));
    assert!(page.contains("value=\"acme.example\""));

    let (_, _, form) = get(&s, &me, "/experiments/new").await;
    assert!(
        form.contains("id=\"target\" name=\"target\" required value=\"Acme\""),
        "{form}"
    );
    assert!(form.contains("value=\"Acme Inc\""));
    assert!(form.contains("Globex: Globex Corp\nInitech"));
    assert!(form.contains("value=\"case_sensitive\" selected"));
}

#[tokio::test]
async fn prompt_set_pages_create_edit_as_versions_and_delete() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-sets@example.com").await;
    post(
        &s,
        &me,
        "/settings/brand",
        &[
            ("csrf_token", &me.csrf),
            ("name", "Acme"),
            ("match_mode", "case_insensitive"),
        ],
    )
    .await;
    let five = "How do I pick a CRM?\nBest CRM for a startup?\n\nWhich CRM is cheapest?\nCRM for a team of 5?\nTop CRM tools?";
    // Four phrasings: refused next to the field, with the text kept.
    let (status, _, page) = post(
        &s,
        &me,
        "/settings/prompt-sets",
        &[
            ("csrf_token", &me.csrf),
            ("name", "CRM"),
            ("prompts", "a?\nb?\nc?\nd?"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("id=\"prompts-error\""), "{page}");
    assert!(page.contains("a?\nb?\nc?\nd?"));

    let (status, headers, _) = post(
        &s,
        &me,
        "/settings/prompt-sets",
        &[
            ("csrf_token", &me.csrf),
            ("name", "CRM <picks>"),
            ("prompts", five),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let url = headers["location"].to_str().unwrap().to_owned();
    let (status, _, page) = get(&s, &me, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("CRM &lt;picks&gt;") || page.contains("CRM &#60;picks&#62;"));
    assert!(page.contains("<li>Which CRM is cheapest?</li>"));
    assert!(page.contains("name=\"based_on_version\" value=\"1\""));

    let (status, _, _) = post(
        &s,
        &me,
        &url,
        &[
            ("csrf_token", &me.csrf),
            ("based_on_version", "1"),
            ("name", "CRM"),
            ("prompts", &format!("{five}\nA sixth way to ask?")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A second edit from version 1 lost the race: shown on the form, not applied.
    let (status, _, page) = post(
        &s,
        &me,
        &url,
        &[
            ("csrf_token", &me.csrf),
            ("based_on_version", "1"),
            ("name", "Stale"),
            ("prompts", five),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("role=\"alert\""), "{page}");
    let (_, _, page) = get(&s, &me, &url).await;
    assert!(page.contains("version 2 of 2"));
    assert!(page.contains("<li>A sixth way to ask?</li>"));
    let (_, _, old) = get(&s, &me, &format!("{url}?version=1")).await;
    assert!(old.contains("version 1 of 2") && !old.contains("A sixth way"));
    assert!(old.contains("This is an old version."));

    let (_, _, list) = get(&s, &me, "/settings/prompt-sets").await;
    assert!(list.contains("<td>v2</td>"));
    let (status, headers, _) = post(
        &s,
        &me,
        &format!("{url}/delete"),
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/settings/prompt-sets");
    let (status, _, _) = get(&s, &me, &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_detail_page_shows_the_top_cited_domains_escaped() {
    use echo_core::conformance::fixtures::iteration;
    use echo_core::model::{BatchRun, ExperimentId, IterationSource, ProviderKind, Timestamp};
    let s = TestServer::start().await;
    let owner = sign_up(&s, "web-sources@example.com").await;
    let id = create(&s, &owner, "HubSpot", "5").await;
    let before = settled(&s, &owner, &id).await;
    assert!(
        !before.contains("Cited sources"),
        "no table while nothing is cited"
    );

    let experiment: ExperimentId = id.parse().unwrap();
    let run = BatchRun::new(
        experiment,
        ProviderKind::Simulated,
        "sim-1",
        3,
        Timestamp::now(),
    );
    s.store.create_batch_run(&run).await.unwrap();
    let hostile = IterationSource {
        position: 1,
        url: "https://evil.example/".into(),
        domain: "<script>alert(1)</script>.example".into(),
        title: None,
        spans: vec![],
    };
    let answers: Vec<_> = (0..3)
        .map(|i| {
            let mut it = iteration(run.id, i, Timestamp::now());
            if i == 0 {
                it.sources.push(IterationSource {
                    position: 3,
                    ..hostile.clone()
                });
            }
            it
        })
        .collect();
    s.store.record_iterations(&answers).await.unwrap();

    // The account's request rate limit may still be spent by the sign-up and the form post:
    // wait as the 429 says, then read the page.
    let mut response = get(&s, &owner, &format!("/experiments/{id}")).await;
    for _ in 0..5 {
        if response.0 != StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        response = get(&s, &owner, &format!("/experiments/{id}")).await;
    }
    let (status, headers, page) = response;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page(&headers);
    assert!(page.contains("Cited sources"), "{page}");
    assert!(page.contains("<th scope=\"row\">bbc.co.uk</th>"), "{page}");
    assert!(!page.contains("<script>alert(1)"), "the domain is escaped");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;.example")
            || page.contains("&#60;script&#62;alert(1)&#60;/script&#62;.example"),
        "{page}"
    );
}

#[tokio::test]
async fn an_unverified_account_can_have_the_mail_sent_again_within_the_limit() {
    let mut options = crate::harness::Options::default();
    options.config.security.require_email_verification = Some(true);
    options.config.http.public_base_url = Some("https://echo.example.com/".into());
    let s = TestServer::start_with(options).await;
    let email = "web-resend@example.com";
    let me = sign_up(&s, email).await;
    let first = s.mailed_token(email);
    let (_, _, home) = get(&s, &me, "/").await;
    assert!(home.contains("not verified yet"), "{home}");
    assert!(home.contains("action=\"/account/verify-email/resend\""));
    // Without the form token the post is refused and nothing is mailed.
    let (status, _, _) = post(&s, &me, "/account/verify-email/resend", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s.outbox().len(), 1);
    let (status, headers, page) = post(
        &s,
        &me,
        "/account/verify-email/resend",
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page(&headers);
    assert!(
        page.contains("A new verification email is on its way"),
        "{page}"
    );
    assert_eq!(s.outbox().len(), 2);
    let second = s.mailed_token(email);
    assert_ne!(first, second);
    // The API's rate limit holds for the button too: the refusal is a styled page.
    let mut refused = None;
    for _ in 0..5 {
        let (status, headers, page) = post(
            &s,
            &me,
            "/account/verify-email/resend",
            &[("csrf_token", &me.csrf)],
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((headers, page));
            break;
        }
        assert_eq!(status, StatusCode::OK);
    }
    let (headers, page) = refused.expect("the resend limit applies");
    assert_page(&headers);
    assert!(headers.contains_key("retry-after"));
    assert!(page.contains("<main id=\"main\""), "{page}");
    // Verified with the newest link, the notice is gone.
    let newest = s.mailed_token(email);
    let r = anonymous_post(&s, "/verify-email", &[("token", &newest)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, _, home) = get(&s, &me, "/").await;
    assert!(!home.contains("not verified yet"), "{home}");
}

#[tokio::test]
async fn webhook_settings_show_the_secret_once_keep_bad_input_and_log_a_ping() {
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-hooks@example.com").await;
    let (status, headers, page) = get(&s, &me, "/settings/webhooks").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page(&headers);
    assert!(page.contains("No endpoints yet"), "{page}");

    // A refused URL keeps what was typed, with the error next to its field.
    let hostile = "ftp://x/<script>alert(1)</script>";
    let (status, _, refused) = post(
        &s,
        &me,
        "/settings/webhooks",
        &[
            ("csrf_token", &me.csrf),
            ("url", hostile),
            ("description", "<b>relay</b>"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.contains("id=\"url-error\""), "{refused}");
    assert!(refused.contains("Must use https."), "{refused}");
    assert!(!refused.contains("<script>alert(1)"), "escaped");
    assert!(
        refused.contains("&#60;b&#62;relay&#60;/b&#62;"),
        "kept, escaped"
    );

    let (status, _, created) = post(
        &s,
        &me,
        "/settings/webhooks",
        &[
            ("csrf_token", &me.csrf),
            ("url", "http://localhost:9/hook"),
            ("description", "Slack <relay>"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let marker = "id=\"new-key\" readonly value=\"";
    let start = created.find(marker).unwrap() + marker.len();
    let secret = &created[start..start + created[start..].find('"').unwrap()];
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (_, _, list) = get(&s, &me, "/settings/webhooks").await;
    assert!(!list.contains(secret), "shown once");
    assert!(list.contains("Slack &#60;relay&#62;"), "{list}");
    let at = list.find("/settings/webhooks/").unwrap() + "/settings/webhooks/".len();
    let id = &list[at..at + 36];

    // A test ping is queued and shows in the log; another user gets the 404 page.
    let (status, headers, _) = post(
        &s,
        &me,
        &format!("/settings/webhooks/{id}/ping"),
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], format!("/settings/webhooks/{id}"));
    let (status, _, log) = get(&s, &me, &format!("/settings/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert!(log.contains("<code>ping</code>"), "{log}");
    assert!(log.contains("badge-pending"), "{log}");
    let other = sign_up(&s, "web-hooks-other@example.com").await;
    let (status, _, page) = get(&s, &other, &format!("/settings/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("<main id=\"main\""), "a styled page");
    let (status, _, _) = post(
        &s,
        &other,
        &format!("/settings/webhooks/{id}/delete"),
        &[("csrf_token", &other.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, headers, _) = post(
        &s,
        &me,
        &format!("/settings/webhooks/{id}/delete"),
        &[("csrf_token", &me.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/settings/webhooks");
    let (_, _, list) = get(&s, &me, "/settings/webhooks").await;
    assert!(list.contains("No endpoints yet"), "{list}");
}

#[tokio::test]
async fn the_form_sets_an_experiments_adaptive_precision_and_the_page_shows_the_early_stop() {
    let s = TestServer::start().await;
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let me = sign_up(&s, "web-precision@example.com").await;
    let (status, _, page) = get(&s, &me, "/experiments/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<select id=\"precision\" name=\"precision\""),
        "{page}"
    );
    assert!(page.contains("<option value=\"\" selected>Off"), "{page}");

    let (server, session) = (&s, &me);
    let send = move |precision: &'static str, iterations: &'static str| async move {
        post(
            server,
            session,
            "/experiments",
            &[
                ("csrf_token", session.csrf.as_str()),
                ("prompt", "Which CRM should a startup pick?"),
                ("target", "HubSpot"),
                ("competitors", "Salesforce"),
                ("providers", "simulated"),
                ("iterations", iterations),
                ("precision", precision),
            ],
        )
        .await
    };

    // Another field's error keeps the chosen precision.
    let (status, _, body) = send("5", "0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"iterations-error\""), "{body}");
    assert!(body.contains("<option value=\"5\" selected>"), "{body}");
    assert!(!body.contains("id=\"precision-error\""), "{body}");

    // A value that is none of the options is refused next to the field, as posted.
    let (status, _, body) = send("7", "50").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"precision-error\""), "{body}");

    // ±10 points on at most 300 answers: the run stops long before (97 at worst).
    let (status, headers, body) = send("10", "300").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let id = headers["location"]
        .to_str()
        .unwrap()
        .strip_prefix("/experiments/")
        .unwrap()
        .to_owned();
    let page = settled(&s, &me, &id).await;
    assert!(
        page.contains("adaptive precision <strong>±10 points</strong>"),
        "{page}"
    );
    assert!(page.contains(">stopped early</span>"), "{page}");

    // The API tells the same story.
    let detail: serde_json::Value = browser()
        .get(s.url(&format!("/api/v1/experiments/{id}")))
        .header("cookie", &me.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["experiment"]["precision"], 0.1);
    let run = &detail["batch_runs"][0];
    assert_eq!(run["stopped_early"], true, "{detail}");
    assert!(run["recorded"].as_u64().unwrap() <= 97, "{detail}");

    // Without a precision the page says it is off and the run asks every answer.
    let id = create(&s, &me, "HubSpot", "20").await;
    let page = settled(&s, &me, &id).await;
    assert!(page.contains("adaptive precision off"), "{page}");
    assert!(!page.contains(">stopped early</span>"), "{page}");
    workers.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn the_alerts_page_lists_the_users_alerts_newest_first_escaped_and_paged() {
    use echo_core::model::Email;
    let s = TestServer::start().await;
    let me = sign_up(&s, "web-alerts@example.com").await;
    let other = sign_up(&s, "web-alerts-b@example.com").await;
    let user_id = |email: &'static str| {
        let store = s.store.clone();
        async move {
            store
                .find_user_by_email(&Email::parse(email).unwrap())
                .await
                .unwrap()
                .unwrap()
                .id
        }
    };
    let my_id = user_id("web-alerts@example.com").await;
    let their_id = user_id("web-alerts-b@example.com").await;

    // Before any alert: the empty state says where alerts come from and how they are tested.
    let (status, headers, empty) = get(&s, &me, "/alerts").await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_page(&headers);
    assert!(empty.contains("No alerts yet"), "{empty}");
    assert!(empty.contains("recurring experiments"), "{empty}");
    assert!(empty.contains("Benjamini–Hochberg at q = 0.05"), "{empty}");
    assert!(
        empty.contains("<a href=\"/alerts\" aria-current=\"page\">Alerts</a>"),
        "the nav links the page: {empty}"
    );

    // 22 alerts of mine (the newest with a hostile brand), 1 of another user's.
    let hostile = "<img src=x onerror=alert(1)>";
    let mut brands: Vec<String> = (0..21).map(|i| format!("Brand{i:02}")).collect();
    brands.push(hostile.to_owned());
    let brand_refs: Vec<&str> = brands.iter().map(String::as_str).collect();
    let (experiment, runs, _) = crate::alerts::seed_alerts(&s.store, my_id, &brand_refs).await;
    crate::alerts::seed_alerts(&s.store, their_id, &["TheirSecretBrand"]).await;

    let (status, headers, page) = get(&s, &me, "/alerts").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page(&headers);
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{page}"
    );
    assert!(!page.contains("TheirSecretBrand"), "{page}");
    // Newest first: the hostile brand (newest) before Brand20, Brand01 not on page one.
    let hostile_at = page.find("&#60;img src=x").unwrap();
    let b20_at = page.find("Brand20").unwrap();
    assert!(hostile_at < b20_at, "newest first");
    assert!(page.contains("Brand02"), "{page}");
    assert!(!page.contains("Brand01"), "20 a page: {page}");
    assert!(page.contains("62% (62 of 100) → 41% (41 of 100)"), "{page}");
    assert!(
        page.contains("down 21.0 points, adjusted p = 0.003, likely a real change"),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/experiments/{}\"", experiment.id)),
        "{page}"
    );
    assert!(
        page.contains(experiment.prompt.as_str()),
        "the experiment is named by its prompt: {page}"
    );
    for run in &runs {
        let answers = format!("/experiments/{}/runs/{}/answers", experiment.id, run.id);
        assert!(page.contains(&format!("href=\"{answers}\"")), "{page}");
        let (status, _, _) = get(&s, &me, &answers).await;
        assert_eq!(status, StatusCode::OK, "{answers} exists");
    }

    // "Older alerts" leads to the rest, and the last page has no further link.
    let href_at = page.find("href=\"/alerts?cursor=").unwrap() + "href=\"".len();
    let href_end = href_at + page[href_at..].find('"').unwrap();
    let next = page[href_at..href_end].replace("&#38;", "&");
    assert!(page.contains("Older alerts"), "{page}");
    let (status, _, older) = get(&s, &me, &next).await;
    assert_eq!(status, StatusCode::OK, "{older}");
    assert!(
        older.contains("Brand01") && older.contains("Brand00"),
        "{older}"
    );
    assert!(!older.contains("Brand02"), "{older}");
    assert!(!older.contains("Older alerts"), "{older}");

    // The home page shows the latest three.
    let (_, _, home) = get(&s, &me, "/").await;
    assert!(home.contains("Latest alerts"), "{home}");
    assert!(
        home.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{home}"
    );
    assert!(
        home.contains("Brand20") && home.contains("Brand19"),
        "{home}"
    );
    assert!(!home.contains("Brand18"), "three only: {home}");
    assert!(!home.contains("<img src=x"), "{home}");

    // The other user sees only their own; a bad cursor is a styled 422 page.
    let (_, _, theirs) = get(&s, &other, "/alerts").await;
    assert!(theirs.contains("TheirSecretBrand"), "{theirs}");
    assert!(!theirs.contains("Brand20"), "{theirs}");
    let (status, headers, bad) = get(&s, &me, "/alerts?cursor=nope").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_page(&headers);

    // Signed out: the log-in page, coming back here.
    let r = browser().get(s.url("/alerts")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Falerts");
}
