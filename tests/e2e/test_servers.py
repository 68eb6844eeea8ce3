"""MCP servers through `client.zero_trust.access.ai_controls.mcp.servers`."""

from __future__ import annotations

from datetime import datetime

import pytest

from conftest import without_sync


def make_server(servers, account_id, id, **fields):
    params = dict(
        auth_type="unauthenticated",
        hostname=f"https://{id}.example.com/mcp",
        name=f"Server {id}",
    )
    params.update(fields)
    return servers.create(account_id=account_id, id=id, **params)


def test_create_returns_the_server_with_defaults(servers, account_id):
    created = servers.create(
        account_id=account_id,
        id="weather",
        auth_type="bearer",
        hostname="https://weather.example.com/mcp",
        name="Weather",
        auth_credentials="sk-secret-token",
    )
    assert created.id == "weather"
    assert created.name == "Weather"
    assert created.hostname == "https://weather.example.com/mcp"
    assert created.auth_type == "bearer"
    assert created.description is None
    assert created.is_shared_oauth_callback_enabled is False
    assert created.secure_web_gateway is False
    assert created.updated_tools == []
    assert created.updated_prompts == []
    assert created.tools == []
    assert created.prompts == []
    assert created.status == "waiting"
    assert created.authentication_status == "not_required"
    assert isinstance(created.created_at, datetime)
    assert isinstance(created.modified_at, datetime)
    assert created.created_at.tzinfo is not None
    assert created.created_by and created.modified_by


def test_create_with_every_field_and_read_it_back(servers, account_id):
    make_server(
        servers,
        account_id,
        "docs",
        auth_type="oauth",
        name="Docs",
        description="The documentation server",
        is_shared_oauth_callback_enabled=True,
        secure_web_gateway=True,
        updated_tools=[
            {"name": "search_docs", "alias": "search", "description": "Search", "enabled": True},
            {"name": "delete_docs", "enabled": False},
        ],
        updated_prompts=[{"name": "summarise", "alias": "summary"}],
    )
    read = servers.read("docs", account_id=account_id)
    assert read.id == "docs"
    assert read.auth_type == "oauth"
    assert read.authentication_status == "required"
    assert read.description == "The documentation server"
    assert read.is_shared_oauth_callback_enabled is True
    assert read.secure_web_gateway is True
    tools = [t.to_dict() for t in read.updated_tools]
    assert tools == [
        {"name": "search_docs", "alias": "search", "description": "Search", "enabled": True},
        {"name": "delete_docs", "enabled": False},
    ]
    assert [p.to_dict() for p in read.updated_prompts] == [{"name": "summarise", "alias": "summary"}]


def test_list_pages_automatically(servers, account_id):
    ids = [f"srv-{i:02d}" for i in range(23)]
    for id in ids:
        make_server(servers, account_id, id)
    first = servers.list(account_id=account_id, per_page=5)
    assert [s.id for s in first.result] == ids[:5]
    assert first.result_info.page == 1
    assert first.result_info.per_page == 5
    # Auto-pagination walks every page (the SDK stops at the first empty one).
    assert [s.id for s in servers.list(account_id=account_id, per_page=5)] == ids
    pages = list(servers.list(account_id=account_id, per_page=10).iter_pages())
    assert [len(p.result) for p in pages] == [10, 10, 3, 0]
    third = servers.list(account_id=account_id, per_page=10, page=3)
    assert [s.id for s in third.result] == ids[20:]
    assert servers.list(account_id=account_id, per_page=10, page=4).result == []
    # The default page size holds them all on one page of 20 and the rest on the next.
    assert len(servers.list(account_id=account_id).result) == 20


def test_list_searches_id_and_name(servers, account_id):
    make_server(servers, account_id, "github", name="Code host")
    make_server(servers, account_id, "jira", name="Issue Tracker")
    make_server(servers, account_id, "wiki", name="Team wiki", hostname="https://tracker.example.com/mcp")
    by_id = servers.list(account_id=account_id, search="git")
    assert [s.id for s in by_id] == ["github"]
    by_name = servers.list(account_id=account_id, search="tracker")
    # `search` matches id and name, not the upstream URL.
    assert [s.id for s in by_name] == ["jira"]
    assert [s.id for s in servers.list(account_id=account_id, search="ISSUE")] == ["jira"]
    assert list(servers.list(account_id=account_id, search="nothing-matches")) == []


def test_update_replaces_and_resets_omitted_fields(servers, account_id):
    make_server(
        servers,
        account_id,
        "crm",
        name="CRM",
        description="Customers",
        is_shared_oauth_callback_enabled=True,
        secure_web_gateway=True,
        updated_tools=[{"name": "find", "alias": "lookup"}],
        updated_prompts=[{"name": "greet", "enabled": False}],
    )
    updated = servers.update("crm", account_id=account_id, name="CRM v2")
    assert updated.name == "CRM v2"
    # PUT replaces: what is not sent goes back to its default.
    assert updated.description is None
    assert updated.is_shared_oauth_callback_enabled is False
    assert updated.secure_web_gateway is False
    assert updated.updated_tools == []
    assert updated.updated_prompts == []
    # Fixed at creation.
    assert updated.hostname == "https://crm.example.com/mcp"
    assert updated.auth_type == "unauthenticated"
    read = servers.read("crm", account_id=account_id)
    # The background sync (of a host that does not exist) may land between the two answers.
    assert without_sync(read.to_dict()) == without_sync(updated.to_dict())

    again = servers.update(
        "crm",
        account_id=account_id,
        name="CRM v3",
        description="Back",
        secure_web_gateway=True,
        updated_tools=[{"name": "find", "description": "Find a customer"}],
    )
    assert again.description == "Back"
    assert again.secure_web_gateway is True
    assert [t.to_dict() for t in again.updated_tools] == [
        {"name": "find", "description": "Find a customer"}
    ]
    assert again.modified_at >= again.created_at


def test_update_keeps_name_when_omitted(servers, account_id):
    make_server(servers, account_id, "keep", name="Keep me", description="x")
    updated = servers.update("keep", account_id=account_id)
    assert updated.name == "Keep me"
    assert updated.description is None


def test_delete_returns_the_deleted_server(servers, account_id):
    make_server(servers, account_id, "gone", name="Gone", description="bye")
    deleted = servers.delete("gone", account_id=account_id)
    assert deleted.id == "gone"
    assert deleted.name == "Gone"
    assert deleted.description == "bye"
    assert deleted.hostname == "https://gone.example.com/mcp"
    assert list(servers.list(account_id=account_id)) == []
    # The id may be used again.
    assert make_server(servers, account_id, "gone").name == "Server gone"


@pytest.mark.parametrize("field", ["auth_credentials", "client_secret"])
def test_write_only_credentials_are_never_returned(portico, servers, account_id, field):
    secret = "s3cr3t-value-that-must-not-leak"
    fields = {"auth_type": "bearer", "auth_credentials": secret}
    if field == "client_secret":
        fields = {
            "auth_type": "oauth",
            "auth_credentials": (
                '{"auth_mode":"manual","config":{"authorization_endpoint":"https://idp.example.com/a",'
                '"token_endpoint":"https://idp.example.com/t"},"registration_info":'
                '{"client_id":"portico","redirect_uris":["https://portal.example.com/servers-callback"]}}'
            ),
            "client_secret": secret,
        }
    raw = servers.with_raw_response.create(
        account_id=account_id,
        id="secretive",
        hostname="https://secretive.example.com/mcp",
        name="Secretive",
        **fields,
    )
    assert secret not in raw.http_response.text
    created = raw.parse()
    assert field not in created.to_dict()
    for text in (
        servers.with_raw_response.read("secretive", account_id=account_id).http_response.text,
        servers.with_raw_response.list(account_id=account_id).http_response.text,
        servers.with_raw_response.update(
            "secretive", account_id=account_id, name="Still secret", **{field: secret + "-2"}
        ).http_response.text,
        servers.with_raw_response.delete("secretive", account_id=account_id).http_response.text,
    ):
        assert secret not in text
        assert f'"{field}"' not in text


def test_oauth_servers_summarise_their_configuration(servers, account_id):
    manual_config = (
        '{"auth_mode":"manual","config":{"authorization_endpoint":"https://idp.example.com/a",'
        '"token_endpoint":"https://idp.example.com/t"},"registration_info":{"client_id":"portico"}}'
    )
    dcr = make_server(servers, account_id, "dcr", auth_type="oauth")
    assert dcr.authentication_status == "required"
    assert dcr.auth_config_summary.to_dict() == {"auth_mode": "dcr", "has_client_secret": False}
    manual = make_server(
        servers,
        account_id,
        "manual",
        auth_type="oauth",
        auth_credentials=manual_config,
        client_secret="very-secret",
    )
    # Manual OAuth has no admin flow.
    assert manual.authentication_status == "manual"
    summary = manual.auth_config_summary
    assert summary.auth_mode == "manual"
    assert summary.has_client_secret is True
    first_version = summary.client_secret_version
    assert first_version is not None
    # A new secret rotates the version; an update without one keeps it.
    rotated = servers.update("manual", account_id=account_id, name="m", client_secret="newer")
    assert rotated.auth_config_summary.client_secret_version > first_version
    kept = servers.update("manual", account_id=account_id, name="m")
    assert kept.auth_config_summary.to_dict() == rotated.auth_config_summary.to_dict()
    assert kept.authentication_status == "manual"
    bearer = make_server(servers, account_id, "bearer", auth_type="bearer", auth_credentials="t")
    assert bearer.auth_config_summary is None
    assert bearer.authentication_status == "not_required"
