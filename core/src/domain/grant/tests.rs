//! Given/when/then tests of the grant rules: PKCE, single-use codes, rotation, replays.

use chrono::{TimeDelta, TimeZone};

use super::*;
use crate::domain::testing::{self, Given};

const GRANT: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const CLIENT: &str = "client-1";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";
/// A verifier and its S256 challenge (computed independently, with Python's hashlib).
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9E1vYMmy7sCt5m3CSXxQ8hdRg";
const CHALLENGE: &str = "xcbZOoE7jIS1XSoIOS1zV3mk2cyjrFtvRZzOpbiWloA";

fn given(events: impl IntoIterator<Item = Event>) -> Given<GrantState> {
    testing::given(events)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap()
}

fn authorized() -> GrantAuthorized {
    GrantAuthorized {
        grant_id: GRANT.into(),
        portal_id: PortalId::parse("team").unwrap(),
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        code_challenge: CHALLENGE.into(),
        code_hash: "c".repeat(64),
        code_expires_at: t0() + CODE_LIFETIME,
        resource: "https://team.example.com/mcp".into(),
        scope: None,
        user: GrantUser {
            id: "u-1".into(),
            email: "alice@example.com".into(),
            name: "Alice".into(),
            idp: "otp".into(),
            groups: vec!["engineering".into()],
            claims: Default::default(),
        },
        session_expires_at: t0() + TimeDelta::hours(24),
    }
}

fn redeem() -> RedeemCode {
    RedeemCode {
        code_hash: "c".repeat(64),
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        code_verifier: VERIFIER.into(),
        now: t0() + TimeDelta::seconds(5),
        access_token_hash: "a1".into(),
        access_expires_at: t0() + TimeDelta::minutes(15),
        refresh_token_hash: "r1".into(),
    }
}

fn redeemed() -> Event {
    Event::GrantCodeRedeemed(GrantCodeRedeemed {
        grant_id: GRANT.into(),
        access_token_hash: "a1".into(),
        access_expires_at: t0() + TimeDelta::minutes(15),
        refresh_token_hash: "r1".into(),
    })
}

fn refresh(hash: &str) -> RefreshGrant {
    RefreshGrant {
        refresh_token_hash: hash.into(),
        client_id: CLIENT.into(),
        now: t0() + TimeDelta::minutes(20),
        access_token_hash: "a2".into(),
        access_expires_at: t0() + TimeDelta::minutes(35),
        new_refresh_token_hash: "r2".into(),
    }
}

fn refreshed() -> Event {
    Event::GrantRefreshed(GrantRefreshed {
        grant_id: GRANT.into(),
        access_token_hash: "a2".into(),
        access_expires_at: t0() + TimeDelta::minutes(35),
        refresh_token_hash: "r2".into(),
    })
}

fn revoked(reason: RevokeReason) -> Event {
    Event::GrantRevoked(GrantRevoked { grant_id: GRANT.into(), reason })
}

fn invalid(reason: &str) -> DomainError {
    DomainError::InvalidGrant { reason: reason.into() }
}

#[test]
fn a_verifier_matches_its_s256_challenge_and_nothing_else_does() {
    assert!(pkce_matches(VERIFIER, CHALLENGE));
    assert!(!pkce_matches(&VERIFIER.replace('d', "e"), CHALLENGE));
    // `plain` would send the verifier itself as the challenge: it does not match.
    assert!(!pkce_matches(VERIFIER, VERIFIER));
    assert!(!pkce_matches("short", CHALLENGE));
}

#[test]
fn a_grant_starts_only_once_and_only_with_an_s256_challenge() {
    given([])
        .when(AuthorizeGrant(authorized()))
        .then_expect([Event::GrantAuthorized(authorized())]);
    given([Event::GrantAuthorized(authorized())])
        .when(AuthorizeGrant(authorized()))
        .then_expect_error(DomainError::AlreadyExists { kind: "grant", id: GRANT.into() });
    let plain =
        GrantAuthorized { code_challenge: VERIFIER.replace('-', "") + "abc", ..authorized() };
    given([]).when(AuthorizeGrant(plain)).then_expect_invalid("code_challenge");
}

#[test]
fn the_code_redeems_once_with_its_verifier_client_and_redirect_uri() {
    given([Event::GrantAuthorized(authorized())]).when(redeem()).then_expect([redeemed()]);
    let cases = [
        (
            RedeemCode { code_verifier: "x".repeat(43), ..redeem() },
            "`code_verifier` does not match the code challenge",
        ),
        (
            RedeemCode { client_id: "other".into(), ..redeem() },
            "the code was issued to another client",
        ),
        (
            RedeemCode { redirect_uri: format!("{REDIRECT}/"), ..redeem() },
            "`redirect_uri` differs from the authorization request's",
        ),
        (RedeemCode { now: t0() + CODE_LIFETIME, ..redeem() }, "the code expired"),
        (RedeemCode { code_hash: "d".repeat(64), ..redeem() }, "unknown code"),
    ];
    for (command, reason) in cases {
        given([Event::GrantAuthorized(authorized())])
            .when(command)
            .then_expect_error(invalid(reason));
    }
}

#[test]
fn a_second_redemption_of_the_code_revokes_the_grant() {
    given([Event::GrantAuthorized(authorized()), redeemed()])
        .when(redeem())
        .then_expect([revoked(RevokeReason::CodeReplayed)]);
    given([Event::GrantAuthorized(authorized()), redeemed(), revoked(RevokeReason::CodeReplayed)])
        .when(redeem())
        .then_expect_error(invalid("the grant was revoked"));
}

#[test]
fn access_tokens_never_outlive_the_session() {
    let short =
        GrantAuthorized { session_expires_at: t0() + TimeDelta::minutes(5), ..authorized() };
    let events = given([Event::GrantAuthorized(short)]).when(redeem()).then_accept();
    let Event::GrantCodeRedeemed(e) = &events[0] else { panic!("{events:?}") };
    assert_eq!(e.access_expires_at, t0() + TimeDelta::minutes(5));
}

#[test]
fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_grant() {
    let history = [Event::GrantAuthorized(authorized()), redeemed()];
    given(history.clone()).when(refresh("r1")).then_expect([refreshed()]);
    let after = [Event::GrantAuthorized(authorized()), redeemed(), refreshed()];
    given(after.clone()).when(refresh("r1")).then_expect([revoked(RevokeReason::RefreshReplayed)]);
    given(after).when(refresh("nope")).then_expect_error(invalid("unknown refresh token"));
    given(history.clone())
        .when(RefreshGrant { client_id: "other".into(), ..refresh("r1") })
        .then_expect_error(invalid("the refresh token was issued to another client"));
    given(history)
        .when(RefreshGrant { now: t0() + TimeDelta::hours(24), ..refresh("r1") })
        .then_expect_error(invalid("the session ended; sign in again"));
}

#[test]
fn revocation_is_once_and_ends_every_token() {
    let history = [Event::GrantAuthorized(authorized()), redeemed()];
    given(history.clone())
        .when(GrantCommand::Revoke(RevokeReason::SignedOut))
        .then_expect([revoked(RevokeReason::SignedOut)]);
    let mut state = GrantState::fold(&history);
    assert!(state.access_valid(t0() + TimeDelta::minutes(1)));
    assert!(!state.access_valid(t0() + TimeDelta::minutes(16)), "the access token expired");
    state.apply(&revoked(RevokeReason::SignedOut));
    assert!(!state.access_valid(t0() + TimeDelta::minutes(1)));
    given([Event::GrantAuthorized(authorized()), redeemed(), revoked(RevokeReason::SignedOut)])
        .when(GrantCommand::Revoke(RevokeReason::ClientRevoked))
        .then_expect([]);
    given(history).when(refresh("r1")).then_accept();
}
