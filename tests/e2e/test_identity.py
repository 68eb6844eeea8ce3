"""Identity providers and the portals' Access applications through the official Cloudflare SDK:
`client.zero_trust.identity_providers` and `client.zero_trust.access.applications`, against the
real `portico serve` on SQLite and PostgreSQL."""

from __future__ import annotations

import cloudflare
import pytest

from test_errors import assert_names_field, error_of
from test_portals import make_portal

SECRET = "e2e-oidc-client-secret-5c81d0a3"
MASKED = "**********"


@pytest.fixture
def idps(client):
    return client.zero_trust.identity_providers


@pytest.fixture
def applications(client):
    return client.zero_trust.access.applications


def oidc_config(**changes):
    config = {
        "client_id": "portico",
        "client_secret": SECRET,
        "auth_url": "https://idp.example.com/authorize",
        "token_url": "https://idp.example.com/token",
        "certs_url": "https://idp.example.com/jwks",
    }
    config.update(changes)
    return config


def as_dict(model) -> dict:
    return model.to_dict()


def test_a_fresh_account_signs_people_in_with_a_one_time_pin(idps, account_id):
    (pin,) = list(idps.list(account_id=account_id))
    pin = as_dict(pin)
    assert pin["type"] == "onetimepin"
    assert pin["name"] == "One-time PIN"
    assert pin["config"] == {}
    assert pin["scim_config"]["enabled"] is False
    assert as_dict(idps.get(pin["id"], account_id=account_id)) == pin
    # One per account: the SDK gets a 409 and does not retry it.
    with pytest.raises(cloudflare.ConflictError) as err:
        idps.create(account_id=account_id, name="PIN", type="onetimepin", config={})
    assert "already exists" in error_of(err)["message"]


def test_oidc_provider_life_with_the_secret_masked(portico, idps, account_id):
    created = as_dict(
        idps.create(
            account_id=account_id,
            name="Company SSO",
            type="oidc",
            config=oidc_config(scopes=["openid", "email", "groups"], pkce_enabled=True),
        )
    )
    assert created["type"] == "oidc"
    assert created["config"]["client_secret"] == MASKED
    assert created["config"]["scopes"] == ["openid", "email", "groups"]
    assert created["config"]["pkce_enabled"] is True
    assert created["config"]["email_claim_name"] == "email"
    assert created["config"]["groups_claim_name"] == "groups"
    pid = created["id"]
    assert as_dict(idps.get(pid, account_id=account_id)) == created
    listed = [as_dict(p) for p in idps.list(account_id=account_id)]
    assert [p["type"] for p in listed] == ["onetimepin", "oidc"]
    assert SECRET not in repr(listed)

    # An update that sends the config back as read keeps the secret.
    updated = as_dict(
        idps.update(
            pid,
            account_id=account_id,
            name="Renamed SSO",
            type="oidc",
            config=dict(created["config"], groups_claim_name="roles"),
        )
    )
    assert updated["name"] == "Renamed SSO"
    assert updated["config"]["groups_claim_name"] == "roles"
    assert updated["config"]["client_secret"] == MASKED

    deleted = idps.delete(pid, account_id=account_id)
    assert deleted.id == pid
    with pytest.raises(cloudflare.NotFoundError):
        idps.get(pid, account_id=account_id)
    # The secret went to no log line of the server either.
    assert SECRET not in portico.log_tail(lines=10_000)


@pytest.mark.parametrize(
    ("kind", "config", "field", "pointer"),
    [
        ("saml", {}, "type", "/type"),
        ("oidc", oidc_config(auth_url="http://idp.example.com/a"), "config.auth_url", "/config/auth_url"),
        ("oidc", oidc_config(scopes=["email"]), "config.scopes", "/config/scopes"),
        ("oidc", {k: v for k, v in oidc_config().items() if k != "client_secret"}, "config.client_secret", "/config/client_secret"),
        ("oidc", oidc_config(client_secret=MASKED), "config.client_secret", "/config/client_secret"),
    ],
)
def test_bad_providers_are_refused_naming_the_field(idps, account_id, kind, config, field, pointer):
    before = [as_dict(p) for p in idps.list(account_id=account_id)]
    with pytest.raises(cloudflare.BadRequestError) as err:
        idps.create(account_id=account_id, name="Bad", type=kind, config=config)
    assert_names_field(err, field, pointer)
    assert SECRET not in error_of(err)["message"]
    if kind == "saml":
        assert "`onetimepin` and `oidc`" in error_of(err)["message"]
    assert [as_dict(p) for p in idps.list(account_id=account_id)] == before


def test_portal_applications_follow_their_portals(portals, applications, account_id):
    assert list(applications.list(account_id=account_id)) == []
    make_portal(portals, account_id, "eng", hostname="eng.mcp.example.com", name="Engineering")
    (app,) = list(applications.list(account_id=account_id))
    app = as_dict(app)
    assert app["type"] == "mcp_portal"
    assert app["name"] == "Engineering"
    assert app["domain"] == "eng.mcp.example.com"
    assert len(app["aud"]) == 64
    assert app["session_duration"] == "24h"
    assert app["custom_deny_message"] == "That account does not have access"
    assert app["allowed_idps"] == []
    oauth = app["oauth_configuration"]
    assert oauth["enabled"] is True
    assert oauth["dynamic_client_registration"] == {
        "enabled": True,
        "allow_any_on_localhost": True,
        "allow_any_on_loopback": True,
        "allowed_uris": [],
    }
    assert oauth["grant"]["access_token_lifetime"] == "15m"
    assert as_dict(applications.get(app["id"], account_id=account_id)) == app

    portals.delete("eng", account_id=account_id)
    assert list(applications.list(account_id=account_id)) == []
    with pytest.raises(cloudflare.NotFoundError):
        applications.get(app["id"], account_id=account_id)


def test_application_settings_through_the_sdk(idps, portals, applications, account_id):
    make_portal(portals, account_id, "eng")
    (app,) = list(applications.list(account_id=account_id))
    sso = as_dict(idps.create(account_id=account_id, name="SSO", type="oidc", config=oidc_config()))
    updated = as_dict(
        applications.update(
            app.id,
            account_id=account_id,
            type="mcp_portal",
            allowed_idps=[sso["id"]],
            auto_redirect_to_identity=True,
            session_duration="8h",
            custom_deny_message="Ask the platform team",
            custom_deny_url="https://intranet.example.com/denied",
            oauth_configuration={
                "dynamic_client_registration": {
                    "allow_any_on_localhost": False,
                    "allowed_uris": ["https://app.example.com/callback/*"],
                },
                "grant": {"access_token_lifetime": "5m", "session_duration": "1h"},
            },
        )
    )
    assert updated["allowed_idps"] == [sso["id"]]
    assert updated["auto_redirect_to_identity"] is True
    assert updated["session_duration"] == "8h"
    assert updated["custom_deny_url"] == "https://intranet.example.com/denied"
    dcr = updated["oauth_configuration"]["dynamic_client_registration"]
    assert dcr["allow_any_on_localhost"] is False
    assert dcr["allow_any_on_loopback"] is True, "an omitted setting keeps its default"
    assert dcr["allowed_uris"] == ["https://app.example.com/callback/*"]
    assert updated["oauth_configuration"]["grant"] == {"access_token_lifetime": "5m", "session_duration": "1h"}
    assert as_dict(applications.get(app.id, account_id=account_id)) == updated

    # The provider is in use: its delete is refused, and not retried.
    with pytest.raises(cloudflare.ConflictError) as err:
        idps.delete(sso["id"], account_id=account_id)
    assert "allowed_idps" in error_of(err)["message"]

    # Bad settings are refused naming the field, and change nothing.
    with pytest.raises(cloudflare.BadRequestError) as err:
        applications.update(app.id, account_id=account_id, type="mcp_portal", auto_redirect_to_identity=True)
    assert_names_field(err, "auto_redirect_to_identity", "/auto_redirect_to_identity")
    with pytest.raises(cloudflare.BadRequestError) as err:
        applications.update(app.id, account_id=account_id, type="mcp_portal", session_duration="1 day")
    assert_names_field(err, "session_duration", "/session_duration")
    assert as_dict(applications.get(app.id, account_id=account_id)) == updated


def test_applications_are_created_and_deleted_with_their_portals(portals, applications, account_id):
    make_portal(portals, account_id, "eng")
    (app,) = list(applications.list(account_id=account_id))
    with pytest.raises(cloudflare.BadRequestError) as err:
        applications.create(account_id=account_id, type="mcp_portal", name="X", domain="x.example.com")
    assert "created with the portal" in error_of(err)["message"]
    with pytest.raises(cloudflare.BadRequestError) as err:
        applications.delete(app.id, account_id=account_id)
    assert "deleted with the portal" in error_of(err)["message"]
    assert [a.id for a in applications.list(account_id=account_id)] == [app.id]
