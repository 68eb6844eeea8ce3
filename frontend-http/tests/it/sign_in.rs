//! People sign in to a portal and connect an MCP client as themselves: dynamic client
//! registration, the authorization endpoint with PKCE, one-time-PIN sign-in, consent, the token
//! endpoint, the MCP endpoint with the access token, refresh, revocation, sign-out; and each
//! refusal the OAuth and MCP specifications require.
//!
//! The PIN is read from an in-process mailer (the app's `Mailer` seam) instead of a mailbox:
//! Portico does not speak SMTP yet.

use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use portico_app::sign_in::{Mailer, PinMail};
use serde_json::{Value, json};

use crate::support::TestApp;

const REDIRECT: &str = "http://127.0.0.1:33418/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9E1vYMmy7sCt5m3CSXxQ8hdRg";
/// The S256 challenge of [`VERIFIER`].
const CHALLENGE: &str = "xcbZOoE7jIS1XSoIOS1zV3mk2cyjrFtvRZzOpbiWloA";
const RESOURCE: &str = "http://localhost:8080/portals/team/mcp";

#[derive(Debug, Default)]
struct Outbox(Mutex<Vec<PinMail>>);

impl Mailer for Outbox {
    fn send<'a>(
        &'a self,
        mail: &'a PinMail,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        self.0.lock().unwrap().push(mail.clone());
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Outbox {
    fn last_code(&self) -> String {
        self.0.lock().unwrap().last().expect("a PIN was mailed").code.0.clone()
    }
}

/// A browser: the cookies it holds for the portal.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    /// The `Content-Security-Policy`.
    csp: Option<String>,
    body: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, app: &TestApp, req: TestRequest) -> Page {
        let req = req.insert_header(("Host", "localhost:8080"));
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.insert_header(("Cookie", self.cookie_header()))
        };
        let response = app.respond(req).await;
        for c in response.response().cookies() {
            self.cookies.retain(|(k, _)| k != c.name());
            if !c.value().is_empty() {
                self.cookies.push((c.name().to_owned(), c.value().to_owned()));
            }
        }
        let status = response.status();
        let header =
            |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (location, csp) = (header("location"), header("content-security-policy"));
        let body =
            String::from_utf8_lossy(&actix_web::test::read_body(response).await).into_owned();
        Page { status, location, csp, body }
    }

    async fn get(&mut self, app: &TestApp, path: &str) -> Page {
        self.send(app, TestRequest::get().uri(path)).await
    }

    async fn post_form(&mut self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        self.send(
            app,
            TestRequest::post()
                .uri(path)
                .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                .set_payload(body),
        )
        .await
    }

    fn csrf(&self) -> String {
        self.cookies.iter().find(|(k, _)| k == "portico_csrf").expect("a CSRF cookie").1.clone()
    }
}

/// The value of hidden field `name` in a page.
fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start =
        body.find(&marker).unwrap_or_else(|| panic!("no field `{name}` in {body}")) + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    unescape(&body[start..end])
}

/// Undoes HTML escaping: named entities for `&<>"'` and numeric ones.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find(';') else { break };
        let entity = &rest[at + 1..at + end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(|d| d.parse::<u32>()))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        out.push(decoded.unwrap_or_else(|| panic!("unknown entity &{entity};")));
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

struct Setup {
    app: TestApp,
    outbox: Arc<Outbox>,
}

async fn setup() -> Setup {
    setup_with(Default::default()).await
}

async fn setup_with(gateway: portico_gateway::GatewayConfig) -> Setup {
    let app = TestApp::with_gateway(gateway).await;
    let outbox = Arc::new(Outbox::default());
    app.state.app.pins.set_mailer(outbox.clone());
    for (id, host) in [("team", "team.example.com"), ("other", "other.example.com")] {
        app.post(&app.portals(), json!({"id": id, "name": id, "hostname": host})).await.ok();
    }
    app.post(
        &app.api("/cedar/policies"),
        json!({"id": "example-connects", "name": "example-connects", "policy":
            r#"permit(principal is Portico::User, action == Portico::Action::"connect", resource) when { principal.email like "*@example.com" };"#}),
    )
    .await
    .ok();
    Setup { app, outbox }
}

async fn register(app: &TestApp, portal: &str, redirect: &str) -> (StatusCode, Value) {
    let answer = app
        .send(
            TestRequest::post()
                .uri(&format!("/portals/{portal}/oauth/register"))
                .insert_header(("Host", "localhost:8080"))
                .set_json(json!({"client_name": "Test client", "redirect_uris": [redirect]})),
        )
        .await;
    (answer.status, answer.body)
}

fn authorize_url(client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
        ("resource", RESOURCE),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    format!("/portals/team/oauth/authorize?{}", serde_urlencoded::to_string(&pairs).unwrap())
}

/// Signs `email` in through the pages, starting from `path`; the page after the PIN.
async fn sign_in(s: &Setup, browser: &mut Browser, path: &str, email: &str) -> Page {
    let login = browser.get(&s.app, path).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert!(login.body.contains("Sign in to team"), "{}", login.body);
    let next = field(&login.body, "next");
    let csrf = browser.csrf();
    let pin_page = browser
        .post_form(
            &s.app,
            "/portals/team/login",
            &[("csrf", &csrf), ("next", &next), ("email", email)],
        )
        .await;
    assert_eq!(pin_page.status, StatusCode::OK, "{}", pin_page.body);
    let challenge = field(&pin_page.body, "challenge");
    let code = s.outbox.last_code();
    assert_eq!(code.len(), 6);
    let after = browser
        .post_form(
            &s.app,
            "/portals/team/login/pin",
            &[
                ("csrf", &csrf),
                ("next", &next),
                ("challenge", &challenge),
                ("email", email),
                ("code", &code),
            ],
        )
        .await;
    if after.status == StatusCode::SEE_OTHER {
        let location = after.location.clone().unwrap();
        return browser.get(&s.app, &location).await;
    }
    after
}

async fn token(app: &TestApp, portal: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let answer = app
        .send(
            TestRequest::post()
                .uri(&format!("/portals/{portal}/oauth/token"))
                .insert_header(("Host", "localhost:8080"))
                .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                .set_payload(serde_urlencoded::to_string(form).unwrap()),
        )
        .await;
    (answer.status, answer.body)
}

/// Through sign-in and consent to a code; the client id and the code.
async fn code_for(s: &Setup, browser: &mut Browser, email: &str) -> (String, String) {
    let (status, client) = register(&s.app, "team", REDIRECT).await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    code_for_client(s, browser, email, &client_id).await
}

/// Submits the consent form of `page` with "allow".
async fn allow(s: &Setup, browser: &mut Browser, page: &Page) -> Page {
    let mut form: Vec<(String, String)> = [
        "response_type",
        "client_id",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "resource",
        "state",
    ]
    .iter()
    .map(|k| (k.to_string(), field(&page.body, k)))
    .collect();
    form.push(("csrf".into(), browser.csrf()));
    form.push(("decision".into(), "allow".into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post_form(&s.app, "/portals/team/consent", &pairs).await
}

/// Through sign-in and consent to a code for `client_id`.
async fn code_for_client(
    s: &Setup,
    browser: &mut Browser,
    email: &str,
    client_id: &str,
) -> (String, String) {
    let client_id = client_id.to_owned();
    let consent = sign_in(s, browser, &authorize_url(&client_id, &[]), email).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent.body.contains("wants to use portal"), "{}", consent.body);
    assert!(consent.body.contains("127.0.0.1"), "the redirect host is shown: {}", consent.body);
    let redirect = allow(s, browser, &consent).await;
    assert_eq!(redirect.status, StatusCode::FOUND, "{}", redirect.body);
    let location = redirect.location.unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some("http://localhost:8080/portals/team")
    );
    (client_id, query_param(&location, "code").expect("a code"))
}

async fn redeem(app: &TestApp, client_id: &str, code: &str) -> (StatusCode, Value) {
    token(
        app,
        "team",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ],
    )
    .await
}

async fn mcp_initialize(
    app: &TestApp,
    portal: &str,
    access_token: Option<&str>,
) -> actix_web::dev::ServiceResponse {
    let mut req = TestRequest::post()
        .uri(&format!("/portals/{portal}/mcp"))
        .insert_header(("Host", "localhost:8080"))
        .insert_header(("Accept", "application/json, text/event-stream"))
        .set_json(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    if let Some(token) = access_token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    app.respond(req).await
}

#[actix_web::test]
async fn discovery_documents_point_the_client_at_the_portal_s_authorization_server() {
    let s = setup().await;
    let unauthenticated = mcp_initialize(&s.app, "team", None).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let challenge =
        unauthenticated.headers().get("www-authenticate").unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        challenge,
        r#"Bearer resource_metadata="http://localhost:8080/.well-known/oauth-protected-resource/portals/team/mcp""#
    );
    let prm = s
        .app
        .send(
            TestRequest::get()
                .uri("/.well-known/oauth-protected-resource/portals/team/mcp")
                .insert_header(("Host", "localhost:8080")),
        )
        .await;
    assert_eq!(prm.body["resource"], RESOURCE);
    assert_eq!(prm.body["authorization_servers"], json!(["http://localhost:8080/portals/team"]));
    for path in [
        "/.well-known/oauth-authorization-server/portals/team",
        "/.well-known/openid-configuration/portals/team",
        "/portals/team/.well-known/openid-configuration",
    ] {
        let asm = s
            .app
            .send(TestRequest::get().uri(path).insert_header(("Host", "localhost:8080")))
            .await;
        assert_eq!(asm.status, StatusCode::OK, "{path}");
        assert_eq!(asm.body["issuer"], "http://localhost:8080/portals/team");
        assert_eq!(asm.body["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            asm.body["registration_endpoint"],
            "http://localhost:8080/portals/team/oauth/register"
        );
        assert_eq!(
            asm.body["revocation_endpoint"],
            "http://localhost:8080/portals/team/oauth/revoke"
        );
    }
    // On the portal's own host: the resource is `/mcp` at the root.
    let on_host = s
        .app
        .send(
            TestRequest::get()
                .uri("/.well-known/oauth-protected-resource")
                .insert_header(("Host", "team.example.com")),
        )
        .await;
    assert_eq!(on_host.body["resource"], "http://team.example.com/mcp");
    assert_eq!(on_host.body["authorization_servers"], json!(["http://team.example.com"]));
}

#[actix_web::test]
async fn a_person_signs_in_with_a_pin_and_their_client_calls_the_portal_as_them() {
    let s = setup().await;
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "Alice@Example.com").await;
    let (status, tokens) = redeem(&s.app, &client_id, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let ok = mcp_initialize(&s.app, "team", Some(&access)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    // Bound to its portal: the same token is refused at another.
    let elsewhere = mcp_initialize(&s.app, "other", Some(&access)).await;
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    assert!(
        elsewhere
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // Refresh rotates; the old refresh token, replayed, revokes the grant.
    let refresh_form = |t: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", t.to_owned()),
            ("client_id", client_id.clone()),
        ]
    };
    let as_pairs = |v: &Vec<(&'static str, String)>| {
        v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let form = as_pairs(&refresh_form(&refresh));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, rotated) = token(&s.app, "team", &pairs).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated["refresh_token"], refresh);
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the old access token ended"
    );
    assert_eq!(mcp_initialize(&s.app, "team", Some(&new_access)).await.status(), StatusCode::OK);
    let (status, replay) = token(&s.app, "team", &pairs).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{replay}"
    );
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&new_access)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the replay revoked the grant"
    );

    // Nothing secret entered the log.
    let log =
        serde_json::to_string(&s.app.events().await.iter().map(|e| &e.event).collect::<Vec<_>>())
            .unwrap();
    for secret in [&code, &access, &refresh, &new_access, &s.outbox.last_code()] {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
    assert!(
        log.contains("alice@example.com"),
        "the sign-in is recorded with the normalised address"
    );
}

#[actix_web::test]
async fn a_code_works_once_and_its_second_use_revokes_what_it_issued() {
    let s = setup().await;
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "bob@example.com").await;
    let (_, tokens) = redeem(&s.app, &client_id, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, again) = redeem(&s.app, &client_id, &code).await;
    assert_eq!((status, again["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn token_requests_that_do_not_prove_the_code_are_refused_and_leave_no_grant() {
    let s = setup().await;
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "carol@example.com").await;
    let (_, other_client) = register(&s.app, "team", "http://localhost:9999/cb").await;
    let other = other_client["client_id"].as_str().unwrap().to_owned();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier-00")],
            "invalid_grant",
        ),
        (vec![("redirect_uri", "http://127.0.0.1:33418/other")], "invalid_grant"),
        (vec![("client_id", other.as_str())], "invalid_grant"),
        (vec![("client_id", "unknown")], "invalid_client"),
        (vec![("resource", "http://localhost:8080/portals/other/mcp")], "invalid_target"),
        (vec![("grant_type", "password")], "unsupported_grant_type"),
    ];
    for (change, error) in cases {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id.as_str()),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ];
        for (k, v) in &change {
            form.retain(|(name, _)| name != k);
            form.push((k, v));
        }
        let (status, body) = token(&s.app, "team", &form).await;
        assert_eq!(body["error"], error, "{change:?}: {body}");
        assert!(status.is_client_error());
    }
    // The code at another portal's token endpoint.
    let (_, at_other) = token(
        &s.app,
        "other",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        at_other["error"], "invalid_client",
        "the client is registered at `team`: {at_other}"
    );
    // None of those consumed the code.
    let (status, tokens) = redeem(&s.app, &client_id, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

#[actix_web::test]
async fn authorization_requests_without_pkce_or_for_unregistered_redirects_are_refused() {
    let s = setup().await;
    let (_, client) = register(&s.app, "team", REDIRECT).await;
    let client_id = client["client_id"].as_str().unwrap();
    let mut browser = Browser::default();
    // Unverified redirect URI or client: a page, never a redirect.
    for url in [
        authorize_url(client_id, &[("redirect_uri", "https://evil.example/cb")]),
        authorize_url("unknown-client", &[]),
    ] {
        let page = browser.get(&s.app, &url).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(page.location.is_none());
    }
    // Verified client: errors go back to it.
    for (change, error) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain"), ("code_challenge", VERIFIER)], "invalid_request"),
        (vec![("resource", "")], "invalid_target"),
        (vec![("resource", "http://localhost:8080/portals/other/mcp")], "invalid_target"),
        (vec![("response_type", "token")], "unsupported_response_type"),
    ] {
        let page = browser.get(&s.app, &authorize_url(client_id, &change)).await;
        assert_eq!(page.status, StatusCode::FOUND, "{change:?}");
        let location = page.location.unwrap();
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some(error),
            "{change:?}: {location}"
        );
        assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    }
}

#[actix_web::test]
async fn registration_follows_the_portal_s_rules_for_redirect_uris() {
    let s = setup().await;
    for ok in
        ["http://127.0.0.1:5555/cb", "http://localhost:6274/oauth/callback", "http://[::1]:80/cb"]
    {
        assert_eq!(register(&s.app, "team", ok).await.0, StatusCode::CREATED, "{ok}");
    }
    for bad in
        ["https://app.example.com/cb", "http://evil.example/cb", "javascript:alert(1)", "not a uri"]
    {
        let (status, body) = register(&s.app, "team", bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")),
            "{bad}: {body}"
        );
    }
}

#[actix_web::test]
async fn people_no_policy_lets_connect_see_the_block_page_and_get_no_session() {
    let s = setup().await;
    let mut browser = Browser::default();
    let page = sign_in(&s, &mut browser, "/portals/team/", "mallory@elsewhere.test").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("That account does not have access"), "{}", page.body);
    assert!(!browser.cookies.iter().any(|(k, _)| k == "portico_session"));
}

#[actix_web::test]
async fn forms_need_their_csrf_token_and_redirects_stay_on_the_portal() {
    let s = setup().await;
    let mut browser = Browser::default();
    let login = browser.get(&s.app, "/portals/team/login?next=//evil.example/x").await;
    assert_eq!(
        field(&login.body, "next"),
        "/portals/team/",
        "an open redirect became the home page"
    );
    let no_csrf = browser
        .post_form(
            &s.app,
            "/portals/team/login",
            &[("next", "/portals/team/"), ("email", "a@example.com")],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::BAD_REQUEST);
    assert!(s.outbox.0.lock().unwrap().is_empty(), "no PIN was sent");
    let wrong = browser
        .post_form(
            &s.app,
            "/portals/team/login",
            &[("csrf", &"0".repeat(64)), ("next", "/portals/team/"), ("email", "a@example.com")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
}

/// Browsers check `form-action` on each redirect after a form is sent: the forms whose answer
/// ends at the client (the PIN page of an authorization, the consent page) allow its origin,
/// and the others only the portal (Chromium stopped the consent's redirect to the client when
/// every page allowed `'self'` alone).
#[actix_web::test]
async fn the_pages_of_an_authorization_let_the_browser_return_to_the_client() {
    const PORTAL_ONLY: &str =
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";
    const AND_CLIENT: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http://127.0.0.1:33418; frame-ancestors 'none'";
    let s = setup().await;
    let (status, client) = register(&s.app, "team", REDIRECT).await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let client_id = client["client_id"].as_str().unwrap();
    for (start, expected) in
        [(authorize_url(client_id, &[]), AND_CLIENT), ("/portals/team/".to_owned(), PORTAL_ONLY)]
    {
        let mut browser = Browser::default();
        let login = browser.get(&s.app, &start).await;
        assert_eq!(login.csp.as_deref(), Some(PORTAL_ONLY), "the sign-in form answers with a page");
        let next = field(&login.body, "next");
        let csrf = browser.csrf();
        let form = [("csrf", csrf.as_str()), ("next", &next), ("email", "fay@example.com")];
        let pin_page = browser.post_form(&s.app, "/portals/team/login", &form).await;
        assert_eq!(pin_page.status, StatusCode::OK, "{}", pin_page.body);
        assert_eq!(pin_page.csp.as_deref(), Some(expected), "from {start}");
        let challenge = field(&pin_page.body, "challenge");
        let wrong = if s.outbox.last_code() == "000000" { "111111" } else { "000000" };
        let mut form = vec![("csrf", csrf.as_str()), ("next", &next), ("challenge", &challenge)];
        form.extend([("email", "fay@example.com"), ("code", wrong)]);
        let again = browser.post_form(&s.app, "/portals/team/login/pin", &form).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
        assert_eq!(again.csp.as_deref(), Some(expected), "a wrong PIN, from {start}");
    }
    let mut browser = Browser::default();
    let consent =
        sign_in(&s, &mut browser, &authorize_url(client_id, &[]), "fay@example.com").await;
    assert!(consent.body.contains("wants to use portal"), "{}", consent.body);
    assert_eq!(consent.csp.as_deref(), Some(AND_CLIENT));
    // A `next` naming a redirect URI the client did not register allows nothing more.
    let forged = authorize_url(client_id, &[("redirect_uri", "https://evil.example/cb")]);
    let mut browser = Browser::default();
    browser.get(&s.app, "/portals/team/login").await;
    let csrf = browser.csrf();
    let form = [("csrf", csrf.as_str()), ("next", &forged), ("email", "fay@example.com")];
    let pin_page = browser.post_form(&s.app, "/portals/team/login", &form).await;
    assert_eq!(pin_page.csp.as_deref(), Some(PORTAL_ONLY));
}

#[actix_web::test]
async fn five_wrong_pins_lock_the_challenge() {
    let s = setup().await;
    let mut browser = Browser::default();
    browser.get(&s.app, "/portals/team/login").await;
    let csrf = browser.csrf();
    let pin_page = browser
        .post_form(
            &s.app,
            "/portals/team/login",
            &[("csrf", &csrf), ("next", "/portals/team/"), ("email", "dave@example.com")],
        )
        .await;
    let challenge = field(&pin_page.body, "challenge");
    let right = s.outbox.last_code();
    let wrong = if right == "000000" { "111111" } else { "000000" };
    for attempt in 1..=5 {
        let page = browser
            .post_form(
                &s.app,
                "/portals/team/login/pin",
                &[
                    ("csrf", &csrf),
                    ("next", "/portals/team/"),
                    ("challenge", &challenge),
                    ("email", "dave@example.com"),
                    ("code", wrong),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "attempt {attempt}");
    }
    let late = browser
        .post_form(
            &s.app,
            "/portals/team/login/pin",
            &[
                ("csrf", &csrf),
                ("next", "/portals/team/"),
                ("challenge", &challenge),
                ("email", "dave@example.com"),
                ("code", &right),
            ],
        )
        .await;
    assert_eq!(
        late.status,
        StatusCode::BAD_REQUEST,
        "the right code after the lock-out is refused"
    );
    assert!(late.body.contains("ask for a new code"), "{}", late.body);
    assert!(!browser.cookies.iter().any(|(k, _)| k == "portico_session"));
}

#[actix_web::test]
async fn sign_out_ends_the_session_and_every_client_s_access() {
    let s = setup().await;
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "erin@example.com").await;
    let (_, tokens) = redeem(&s.app, &client_id, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let home = browser.get(&s.app, "/portals/team/").await;
    assert!(home.body.contains("Signed in as <strong>erin@example.com</strong>"), "{}", home.body);
    assert!(home.body.contains(RESOURCE), "the MCP URL is on the home page");
    let csrf = browser.csrf();
    let out = browser.post_form(&s.app, "/portals/team/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let after = browser.get(&s.app, "/portals/team/").await;
    assert!(after.body.contains("Sign in to team"), "signed out: {}", after.body);
}

#[actix_web::test]
async fn admins_list_who_signed_in_and_revoke_a_person_everywhere() {
    let s = setup().await;
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "frank@example.com").await;
    let (_, tokens) = redeem(&s.app, &client_id, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    let users = s.app.get(&s.app.api("/access/users")).await.ok();
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users[0]["email"], "frank@example.com");
    assert_eq!(users[0]["idp"], "onetimepin");
    assert!(users[0]["last_successful_login"].as_str().unwrap().ends_with('Z'));
    let none = s.app.get(&s.app.api("/access/users?search=nobody")).await.ok();
    assert_eq!(none, json!([]));

    let revoke = s.app.api("/access/organizations/revoke_user");
    let reader =
        s.app.create_token("reader", portico_core::domain::account::TokenScope::Read).await;
    let refused = s
        .app
        .request(
            actix_web::http::Method::POST,
            &revoke,
            Some(&reader),
            Some(json!({"email": "frank@example.com"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&access)).await.status(),
        StatusCode::OK,
        "a refused revocation changed nothing"
    );
    let unknown = s.app.post(&revoke, json!({"email": "nobody@example.com"})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad = s.app.post(&revoke, json!({"email": "frank@example.com", "extra": 1})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        s.app.post(&revoke, json!({"email": " Frank@Example.com "})).await.ok(),
        json!(true)
    );
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let home = browser.get(&s.app, "/portals/team/").await;
    assert!(home.body.contains("Sign in to team"), "the browser session ended too: {}", home.body);
}

/// Serves `document` at `http://127.0.0.1:<port>/client.json` from a real HTTP server; its URL.
fn serve_metadata_document(
    document: impl Fn(&str) -> Value + Send + Sync + Clone + 'static,
) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/client.json", listener.local_addr().unwrap());
    let id = url.clone();
    let server = actix_web::HttpServer::new(move || {
        let document = document.clone();
        let id = id.clone();
        actix_web::App::new().route(
            "/client.json",
            actix_web::web::get().to(move || {
                let body = document(&id);
                async move { actix_web::HttpResponse::Ok().json(body) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    url
}

fn private_upstreams_allowed() -> portico_gateway::GatewayConfig {
    let mut config = portico_gateway::GatewayConfig::default();
    config.upstream.policy.allow_private = true;
    config
}

#[actix_web::test]
async fn a_client_identified_by_its_metadata_document_signs_in_without_registering() {
    let s = setup_with(private_upstreams_allowed()).await;
    let client_id = serve_metadata_document(
        |id| json!({"client_id": id, "client_name": "Document client", "redirect_uris": [REDIRECT]}),
    );
    let mut browser = Browser::default();
    let (_, code) = code_for_client(&s, &mut browser, "gina@example.com", &client_id).await;
    let (status, tokens) = redeem(&s.app, &client_id, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(mcp_initialize(&s.app, "team", Some(access)).await.status(), StatusCode::OK);
    let metadata = s
        .app
        .send(
            TestRequest::get()
                .uri("/.well-known/oauth-authorization-server/portals/team")
                .insert_header(("Host", "localhost:8080")),
        )
        .await;
    assert_eq!(metadata.body["client_id_metadata_document_supported"], true);
}

#[actix_web::test]
async fn a_metadata_document_that_names_another_client_or_sits_on_a_private_address_is_refused() {
    // It claims another client's id.
    let s = setup_with(private_upstreams_allowed()).await;
    let liar = serve_metadata_document(
        |_| json!({"client_id": "https://trusted.example.com/client.json", "client_name": "Liar", "redirect_uris": [REDIRECT]}),
    );
    let mut browser = Browser::default();
    let page = browser.get(&s.app, &authorize_url(&liar, &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location.is_none(), "no redirect for an unverified client");
    assert!(unescape(&page.body).contains("other than its own URL"), "{}", page.body);

    // The default policy refuses private addresses: the document is never fetched.
    let s = setup().await;
    let private = "https://127.0.0.1:9/client.json";
    let page = browser.get(&s.app, &authorize_url(private, &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(unescape(&page.body).contains("loopback"), "{}", page.body);
    let (status, body) = token(
        &s.app,
        "team",
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
            ("client_id", private),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
}

/// Replaces the sign-in settings of portal `team`'s Access application.
async fn set_access_app(app: &TestApp, settings: Value) {
    let id = portico_core::domain::access_app::access_app_id(
        &portico_core::domain::ids::PortalId::parse("team").unwrap(),
    );
    let mut body = json!({"type": "mcp_portal"});
    for (k, v) in settings.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.put(&app.api(&format!("/access/apps/{id}")), body).await.ok();
}

#[actix_web::test]
async fn the_portal_s_access_application_sets_lifetimes_registration_and_the_block_page() {
    let s = setup().await;
    set_access_app(&s.app, json!({
        "custom_deny_message": "Ask the platform team for access.",
        "oauth_configuration": {
            "enabled": true,
            "dynamic_client_registration": {"enabled": true, "allow_any_on_localhost": false, "allow_any_on_loopback": true, "allowed_uris": ["https://app.example.com/oauth/*"]},
            "grant": {"access_token_lifetime": "5m"},
        },
    }))
    .await;
    // Registration follows the portal's rules.
    assert_eq!(
        register(&s.app, "team", "http://localhost:6274/cb").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        register(&s.app, "team", "https://app.example.com/oauth/callback").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        register(&s.app, "team", "https://app.example.com/oauthx").await.0,
        StatusCode::BAD_REQUEST
    );
    // The access token lives as long as the portal says.
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "hana@example.com").await;
    let (_, tokens) = redeem(&s.app, &client_id, &code).await;
    assert_eq!(tokens["expires_in"], 300, "{tokens}");
    // The block page has the portal's message.
    let mut other = Browser::default();
    let page = sign_in(&s, &mut other, "/portals/team/", "ivan@elsewhere.test").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Ask the platform team for access."), "{}", page.body);
    // ... or sends people to the portal's own page.
    set_access_app(&s.app, json!({"custom_deny_url": "https://help.example.com/denied"})).await;
    let mut third = Browser::default();
    let login = third.get(&s.app, "/portals/team/").await;
    let csrf = third.csrf();
    let pin_page = third
        .post_form(
            &s.app,
            "/portals/team/login",
            &[
                ("csrf", &csrf),
                ("next", &field(&login.body, "next")),
                ("email", "judy@elsewhere.test"),
            ],
        )
        .await;
    let denied = third
        .post_form(
            &s.app,
            "/portals/team/login/pin",
            &[
                ("csrf", &csrf),
                ("next", "/portals/team/"),
                ("challenge", &field(&pin_page.body, "challenge")),
                ("email", "judy@elsewhere.test"),
                ("code", &s.outbox.last_code()),
            ],
        )
        .await;
    assert_eq!(denied.status, StatusCode::FOUND);
    assert_eq!(denied.location.as_deref(), Some("https://help.example.com/denied"));
}

#[actix_web::test]
async fn a_portal_can_turn_off_oauth_and_the_one_time_pin() {
    let s = setup().await;
    let (_, client) = register(&s.app, "team", REDIRECT).await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    set_access_app(&s.app, json!({"oauth_configuration": {"enabled": false}})).await;
    let (status, body) = register(&s.app, "team", REDIRECT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{body}"
    );
    let mut browser = Browser::default();
    assert_eq!(
        browser.get(&s.app, &authorize_url(&client_id, &[])).await.status,
        StatusCode::FORBIDDEN
    );

    // Only an OpenID Connect provider allowed: its button, no PIN sign-in.
    let idp = s.app.post(&s.app.api("/access/identity_providers"), json!({
        "name": "Corp SSO", "type": "oidc",
        "config": {"client_id": "portico", "client_secret": "s3cret", "auth_url": "https://sso.example.com/auth", "token_url": "https://sso.example.com/token", "certs_url": "https://sso.example.com/jwks"}
    })).await.ok();
    set_access_app(&s.app, json!({"allowed_idps": [idp["id"]]})).await;
    let page = browser.get(&s.app, "/portals/team/login").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Sign in with Corp SSO"), "{}", page.body);
    let start = format!("/portals/team/login/oidc?idp={}", idp["id"].as_str().unwrap());
    assert!(page.body.contains(&start), "{}", page.body);
    assert!(!page.body.contains("name=\"email\""), "{}", page.body);
}

#[actix_web::test]
async fn instant_auth_sends_the_browser_to_the_only_provider_with_state_nonce_and_pkce() {
    let s = setup().await;
    let idp = s.app.post(&s.app.api("/access/identity_providers"), json!({
        "name": "Corp SSO", "type": "oidc",
        "config": {"client_id": "portico", "client_secret": "s3cret", "auth_url": "https://sso.example.com/auth", "token_url": "https://sso.example.com/token", "certs_url": "https://sso.example.com/jwks", "pkce_enabled": true}
    })).await.ok();
    set_access_app(&s.app, json!({"allowed_idps": [idp["id"]], "auto_redirect_to_identity": true}))
        .await;
    let mut browser = Browser::default();
    let page = browser.get(&s.app, "/portals/team/").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let location = url::Url::parse(page.location.as_deref().unwrap()).unwrap();
    assert_eq!(location.origin().ascii_serialization(), "https://sso.example.com");
    assert_eq!(location.path(), "/auth");
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], "portico");
    assert!(query["redirect_uri"].ends_with("/portals/team/login/oidc/callback"), "{query:?}");
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["scope"].split(' ').any(|s| s == "openid"), "{query:?}");
    assert!(query["state"].len() >= 32 && query["nonce"].len() >= 32, "{query:?}");

    // A callback whose state Portico never issued signs no one in.
    let callback = format!("/portals/team/login/oidc/callback?state={}x&code=abc", query["state"]);
    let refused = browser.get(&s.app, &callback).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("unknown or expired"), "{}", refused.body);
}

#[actix_web::test]
async fn a_session_stays_bound_to_the_person_who_opened_it() {
    let s = setup().await;
    let mut first = Browser::default();
    let (client_id, code) = code_for(&s, &mut first, "kim@example.com").await;
    let (_, kim) = redeem(&s.app, &client_id, &code).await;
    let mut second = Browser::default();
    let consent_free =
        sign_in(&s, &mut second, &authorize_url(&client_id, &[]), "lee@example.com").await;
    assert_eq!(
        consent_free.status,
        StatusCode::OK,
        "lee is asked for consent: {}",
        consent_free.body
    );
    let redirect = allow(&s, &mut second, &consent_free).await;
    let lee_code = query_param(&redirect.location.unwrap(), "code").unwrap();
    let (_, lee) = redeem(&s.app, &client_id, &lee_code).await;

    let opened = mcp_initialize(&s.app, "team", kim["access_token"].as_str()).await;
    assert_eq!(opened.status(), StatusCode::OK);
    let session = opened.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_owned();
    let list = |token: String| {
        TestRequest::post()
            .uri("/portals/team/mcp")
            .insert_header(("Host", "localhost:8080"))
            .insert_header(("Accept", "application/json, text/event-stream"))
            .insert_header(("Mcp-Session-Id", session.clone()))
            .insert_header(("MCP-Protocol-Version", "2025-11-25"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .set_json(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
    };
    let as_kim = s.app.send(list(kim["access_token"].as_str().unwrap().to_owned())).await;
    assert!(as_kim.text.contains("portal_list_servers"), "kim lists the tools: {}", as_kim.text);
    let as_lee = s.app.send(list(lee["access_token"].as_str().unwrap().to_owned())).await;
    assert!(as_lee.text.contains("this session belongs to another caller"), "{}", as_lee.text);
    assert!(!as_lee.text.contains("portal_list_servers"));
}

#[actix_web::test]
async fn admins_pre_register_clients_and_removing_one_ends_its_access() {
    let s = setup().await;
    let clients = format!("{}/team/oauth_clients", s.app.portals());
    // An https redirect URI, which dynamic registration refuses by default.
    let redirect = "https://app.example.com/oauth/callback";
    assert_eq!(register(&s.app, "team", redirect).await.0, StatusCode::BAD_REQUEST);
    let created = s
        .app
        .post(&clients, json!({"client_name": "Team app", "redirect_uris": [REDIRECT, redirect]}))
        .await
        .ok();
    assert_eq!(created["pre_registered"], true);
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let (_, dynamic) = register(&s.app, "team", "http://127.0.0.1:5/cb").await;
    let listed = s.app.get(&clients).await.ok();
    let mut ids: Vec<&str> =
        listed.as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![client_id.as_str(), dynamic["client_id"].as_str().unwrap()];
    expected.sort();
    assert_eq!(ids, expected);

    // Bad input is a 400 that changes nothing; a read token cannot write.
    let before = s.app.events().await.len();
    for body in [
        json!({"client_name": "x", "redirect_uris": []}),
        json!({"client_name": "x", "redirect_uris": ["javascript:alert(1)"]}),
        json!({"client_name": "", "redirect_uris": [REDIRECT]}),
        json!({"client_name": "x", "redirect_uris": [REDIRECT], "client_secret": "no"}),
    ] {
        assert_eq!(
            s.app.post(&clients, body.clone()).await.status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    let reader =
        s.app.create_token("reader", portico_core::domain::account::TokenScope::Read).await;
    let refused = s
        .app
        .request(
            actix_web::http::Method::POST,
            &clients,
            Some(&reader),
            Some(json!({"client_name": "x", "redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.app.events().await.len(),
        before + 1,
        "only the read token's creation was recorded"
    );
    assert_eq!(
        s.app
            .post(
                &format!("{}/ghost/oauth_clients", s.app.portals()),
                json!({"client_name": "x", "redirect_uris": [REDIRECT]})
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The pre-registered client signs a person in, then is removed: its tokens stop working.
    let mut browser = Browser::default();
    let (_, code) = code_for_client(&s, &mut browser, "mia@example.com", &client_id).await;
    let (_, tokens) = redeem(&s.app, &client_id, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(mcp_initialize(&s.app, "team", Some(&access)).await.status(), StatusCode::OK);
    s.app.delete(&format!("{clients}/{client_id}")).await.ok();
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.app.delete(&format!("{clients}/{client_id}")).await.status, StatusCode::NOT_FOUND);
    let page = browser.get(&s.app, &authorize_url(&client_id, &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "a removed client cannot start a sign-in");
}

#[actix_web::test]
async fn one_address_may_register_only_so_many_clients() {
    let s = setup().await;
    let from = |ip: &str| {
        TestRequest::post()
            .uri("/portals/team/oauth/register")
            .insert_header(("Host", "localhost:8080"))
            .peer_addr(format!("{ip}:40000").parse().unwrap())
            .set_json(json!({"client_name": "c", "redirect_uris": [REDIRECT]}))
    };
    for i in 0..portico_app::sign_in::REGISTRATIONS_PER_IP {
        assert_eq!(
            s.app.send(from("192.0.2.7")).await.status,
            StatusCode::CREATED,
            "registration {i}"
        );
    }
    let before = s.app.events().await.len();
    let limited = s.app.respond(from("192.0.2.7")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(s.app.events().await.len(), before, "a refused registration records nothing");
    assert_eq!(
        s.app.send(from("192.0.2.8")).await.status,
        StatusCode::CREATED,
        "another address is not limited"
    );
}

#[actix_web::test]
async fn a_refresh_after_the_person_lost_connect_is_refused_and_ends_the_grant() {
    let s = setup().await;
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "nora@example.com").await;
    let (_, tokens) = redeem(&s.app, &client_id, &code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // The only policy that let her connect goes away.
    s.app.delete(&s.app.api("/cedar/policies/example-connects")).await.ok();
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(&access)).await.status(),
        StatusCode::FORBIDDEN,
        "connect is checked on every request"
    );
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let (status, body) = token(&s.app, "team", &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert!(body["error_description"].as_str().unwrap().contains("no longer"), "{body}");
    let revoked = s.app.events().await.iter().any(|e| {
        matches!(&e.event, portico_core::Event::GrantRevoked(r) if r.reason == portico_core::domain::grant::RevokeReason::AccessLost)
    });
    assert!(revoked, "the grant was revoked for lost access");
    // Even with a policy back, the grant stays ended.
    s.app.post(
        &s.app.api("/cedar/policies"),
        json!({"id": "example-connects-again", "name": "again", "policy":
            r#"permit(principal is Portico::User, action == Portico::Action::"connect", resource);"#}),
    )
    .await
    .ok();
    let (_, again) = token(&s.app, "team", &form).await;
    assert_eq!(again["error"], "invalid_grant");
}

#[actix_web::test]
async fn an_expired_access_token_is_refused_and_the_grant_ends_with_its_session() {
    let s = setup().await;
    set_access_app(
        &s.app,
        json!({"oauth_configuration": {"grant": {"access_token_lifetime": "5m", "session_duration": "1h"}}}),
    )
    .await;
    let clock = &s.app.state.app.clock;
    let mut browser = Browser::default();
    let (client_id, code) = code_for(&s, &mut browser, "olga@example.com").await;
    let (_, tokens) = redeem(&s.app, &client_id, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(mcp_initialize(&s.app, "team", Some(&access)).await.status(), StatusCode::OK);

    // Past its lifetime the access token is refused the way an unknown one is.
    clock.advance(std::time::Duration::from_secs(5 * 60 + 1));
    let expired = mcp_initialize(&s.app, "team", Some(&access)).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let challenge = expired.headers().get("www-authenticate").unwrap().to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer resource_metadata="), "{challenge}");
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");

    // The refresh token still gets a new access token, which works.
    let refresh = |token: &str| {
        [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
            ("client_id", client_id.clone()),
        ]
    };
    let form = refresh(tokens["refresh_token"].as_str().unwrap());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, fresh) = token(&s.app, "team", &form).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let fresh_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(mcp_initialize(&s.app, "team", Some(fresh_access)).await.status(), StatusCode::OK);

    // Past the grant's session nothing of it works: neither the access token nor a refresh.
    clock.advance(std::time::Duration::from_secs(60 * 60));
    assert_eq!(
        mcp_initialize(&s.app, "team", Some(fresh_access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let form = refresh(fresh["refresh_token"].as_str().unwrap());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, ended) = token(&s.app, "team", &form).await;
    assert_eq!(
        (status, ended["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{ended}"
    );
}
