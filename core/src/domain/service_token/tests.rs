//! Given/when/then tests of the service token rules.

use chrono::TimeZone;

use super::*;
use crate::domain::Aggregate;
use crate::domain::testing::{self, Given};

const ID: &str = "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
const CLIENT_ID: &str = "4d4ea9a30cb4d4d5fc8f77e8a4c21d0c.access";

fn given(events: impl IntoIterator<Item = Event>) -> Given<ServiceTokenState> {
    testing::given(events)
}

fn given_no_events() -> Given<ServiceTokenState> {
    testing::given_no_events()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn in_a_year() -> Option<DateTime<Utc>> {
    Some(t0() + TimeDelta::hours(8760))
}

fn create() -> CreateServiceToken {
    CreateServiceToken {
        token_id: ID.to_owned(),
        client_id: CLIENT_ID.to_owned(),
        name: "CI".to_owned(),
        secret_hash: "a".repeat(64),
        duration: DEFAULT_DURATION.to_owned(),
        expires_at: in_a_year(),
    }
}

fn created() -> Event {
    Event::ServiceTokenCreated(ServiceTokenCreated {
        token_id: ID.to_owned(),
        client_id: CLIENT_ID.to_owned(),
        name: "CI".to_owned(),
        secret_hash: "a".repeat(64),
        duration: DEFAULT_DURATION.to_owned(),
        expires_at: in_a_year(),
    })
}

fn updated(name: &str, duration: &str, expires_at: Option<DateTime<Utc>>) -> Event {
    Event::ServiceTokenUpdated(ServiceTokenUpdated {
        token_id: ID.to_owned(),
        name: name.to_owned(),
        duration: duration.to_owned(),
        expires_at,
    })
}

fn rotated(hash: &str) -> Event {
    Event::ServiceTokenRotated(ServiceTokenRotated {
        token_id: ID.to_owned(),
        secret_hash: hash.to_owned(),
    })
}

fn deleted() -> Event {
    Event::ServiceTokenDeleted(ServiceTokenDeleted { token_id: ID.to_owned() })
}

fn not_found() -> DomainError {
    DomainError::NotFound { kind: "service token", id: ID.to_owned() }
}

#[test]
fn stream_id() {
    assert_eq!(service_token_stream(ID), format!("service-token-{ID}"));
}

#[test]
fn create_a_token() {
    given_no_events().when(create()).then_expect([created()]);
}

#[test]
fn the_name_is_trimmed() {
    given_no_events()
        .when(CreateServiceToken { name: "  CI \t".to_owned(), ..create() })
        .then_expect([created()]);
}

#[test]
fn a_token_is_created_once_and_its_id_never_reused() {
    let exists = || DomainError::AlreadyExists { kind: "service token", id: ID.to_owned() };
    given([created()]).when(create()).then_expect_error(exists());
    given([created(), deleted()]).when(create()).then_expect_error(exists());
}

#[test]
fn names_are_bounded_and_printable() {
    for bad in ["", "   ", "a\u{7}b", "line\nbreak"] {
        given_no_events()
            .when(CreateServiceToken { name: bad.to_owned(), ..create() })
            .then_expect_invalid("name");
    }
    let long = "x".repeat(256);
    let message = given_no_events()
        .when(CreateServiceToken { name: long, ..create() })
        .then_expect_invalid("name");
    assert_eq!(message, "is longer than 255 characters");
    let longest = "é".repeat(255);
    let events = decide(
        &ServiceTokenState::default(),
        CreateServiceToken { name: longest.clone(), ..create() }.into(),
    )
    .unwrap();
    assert!(matches!(&events[0], Event::ServiceTokenCreated(e) if e.name == longest));
}

#[test]
fn ids_client_ids_and_hashes_have_their_shapes() {
    for bad in [
        "",
        "not-a-uuid",
        "0F8E2D3C-4B5A-4978-8695-A4B3C2D1E0F9",
        "0f8e2d3c4b5a49788695a4b3c2d1e0f9",
    ] {
        given_no_events()
            .when(CreateServiceToken { token_id: bad.to_owned(), ..create() })
            .then_expect_invalid("id");
    }
    for bad in [
        "4d4ea9a30cb4d4d5fc8f77e8a4c21d0c",
        "4D4EA9A30CB4D4D5FC8F77E8A4C21D0C.access",
        "4d4ea9a30cb4d4d5fc8f77e8a4c21d0.access",
        "4d4ea9a30cb4d4d5fc8f77e8a4c21d0c.accesss",
    ] {
        given_no_events()
            .when(CreateServiceToken { client_id: bad.to_owned(), ..create() })
            .then_expect_invalid("client_id");
    }
    for bad in ["".to_owned(), "A".repeat(64), "a".repeat(63), "g".repeat(64)] {
        given_no_events()
            .when(CreateServiceToken { secret_hash: bad, ..create() })
            .then_expect_invalid("secret_hash");
    }
}

#[test]
fn durations_parse_like_cloudflare_s() {
    let finite = |s: &str| match TokenLifetime::parse(s).unwrap() {
        TokenLifetime::Finite(d) => d.num_seconds(),
        TokenLifetime::Forever => panic!("{s} is finite"),
    };
    assert_eq!(finite("8760h"), 8760 * 3600);
    assert_eq!(finite("30m"), 1800);
    assert_eq!(finite("1h30m15s"), 5415);
    assert_eq!(finite("60s"), 60);
    assert_eq!(finite("876600h"), MAX_DURATION_SECONDS);
    assert_eq!(TokenLifetime::parse("forever").unwrap(), TokenLifetime::Forever);
    for (bad, why) in [
        ("", "is empty"),
        ("8760", "a number without a unit"),
        ("h", "a unit without a number"),
        ("1d", "is not a duration"),
        ("-1h", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("59s", "shorter than 1 minute"),
        ("0h", "shorter than 1 minute"),
        ("876601h", "longer than 100 years"),
        ("99999999999999999999h", "too long"),
        ("Forever", "is not a duration"),
    ] {
        let message = TokenLifetime::parse(bad).unwrap_err().to_string();
        assert!(message.starts_with("invalid `duration`"), "{bad}: {message}");
        assert!(message.contains(why), "{bad}: {message}");
    }
}

#[test]
fn expiry_follows_the_duration() {
    assert_eq!(
        TokenLifetime::parse("30m").unwrap().expires_at(t0()),
        Some(t0() + TimeDelta::minutes(30))
    );
    assert_eq!(TokenLifetime::Forever.expires_at(t0()), None);
    given_no_events()
        .when(CreateServiceToken { duration: "1x".to_owned(), ..create() })
        .then_expect_invalid("duration");
    given_no_events()
        .when(CreateServiceToken { duration: FOREVER.to_owned(), ..create() })
        .then_expect_invalid("expires_at");
    given_no_events()
        .when(CreateServiceToken { expires_at: None, ..create() })
        .then_expect_invalid("expires_at");
    let forever = CreateServiceToken { duration: FOREVER.to_owned(), expires_at: None, ..create() };
    let events = decide(&ServiceTokenState::default(), forever.into()).unwrap();
    assert!(matches!(&events[0], Event::ServiceTokenCreated(e) if e.expires_at.is_none()));
}

#[test]
fn update_changes_the_name_and_duration() {
    let later = Some(t0() + TimeDelta::hours(1));
    given([created()])
        .when(UpdateServiceToken {
            token_id: ID.to_owned(),
            name: " Deploy ".to_owned(),
            duration: "1h".to_owned(),
            expires_at: later,
        })
        .then_expect([updated("Deploy", "1h", later)]);
    given([created()])
        .when(UpdateServiceToken {
            token_id: ID.to_owned(),
            name: String::new(),
            duration: "1h".to_owned(),
            expires_at: later,
        })
        .then_expect_invalid("name");
    given([created()])
        .when(UpdateServiceToken {
            token_id: ID.to_owned(),
            name: "CI".to_owned(),
            duration: "10s".to_owned(),
            expires_at: later,
        })
        .then_expect_invalid("duration");
}

#[test]
fn rotate_replaces_the_secret_hash() {
    let b = "b".repeat(64);
    given([created()])
        .when(RotateServiceToken { token_id: ID.to_owned(), secret_hash: b.clone() })
        .then_expect([rotated(&b)]);
    given([created(), rotated(&b)])
        .when(RotateServiceToken { token_id: ID.to_owned(), secret_hash: b.clone() })
        .then_expect_invalid("secret_hash");
    given([created()])
        .when(RotateServiceToken { token_id: ID.to_owned(), secret_hash: "x".to_owned() })
        .then_expect_invalid("secret_hash");
    let state = ServiceTokenState::fold([created(), rotated(&b)]);
    assert_eq!(state.token.unwrap().secret_hash, b);
    assert_eq!(state.stream_version, 2);
}

#[test]
fn refresh_moves_the_expiry_and_keeps_the_rest() {
    let later = Some(t0() + TimeDelta::hours(2 * 8760));
    given([created()])
        .when(RefreshServiceToken { token_id: ID.to_owned(), expires_at: later })
        .then_expect([updated("CI", DEFAULT_DURATION, later)]);
    given([created()])
        .when(RefreshServiceToken { token_id: ID.to_owned(), expires_at: None })
        .then_expect_invalid("expires_at");
    given([created(), updated("CI", FOREVER, None)])
        .when(RefreshServiceToken { token_id: ID.to_owned(), expires_at: None })
        .then_expect([updated("CI", FOREVER, None)]);
}

#[test]
fn commands_on_a_missing_or_deleted_token_are_refused() {
    let id = || ID.to_owned();
    for history in [vec![], vec![created(), deleted()]] {
        let update = UpdateServiceToken {
            token_id: id(),
            name: "x".to_owned(),
            duration: FOREVER.to_owned(),
            expires_at: None,
        };
        given(history.clone()).when(update).then_expect_error(not_found());
        given(history.clone())
            .when(RotateServiceToken { token_id: id(), secret_hash: "b".repeat(64) })
            .then_expect_error(not_found());
        given(history.clone())
            .when(RefreshServiceToken { token_id: id(), expires_at: None })
            .then_expect_error(not_found());
        given(history).when(DeleteServiceToken { token_id: id() }).then_expect_error(not_found());
    }
}

#[test]
fn delete_a_token() {
    given([created(), rotated(&"b".repeat(64))])
        .when(DeleteServiceToken { token_id: ID.to_owned() })
        .then_expect([deleted()]);
    let state = ServiceTokenState::fold([created(), deleted()]);
    assert!(!state.exists());
    assert!(state.deleted);
}

#[test]
fn apply_ignores_other_aggregates() {
    let mut state = ServiceTokenState::default();
    state.apply(&Event::ApiTokenRevoked(crate::domain::account::ApiTokenRevoked {
        token_id: "x".to_owned(),
    }));
    assert_eq!(state, ServiceTokenState::default());
}
