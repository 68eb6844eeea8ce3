"""Portals and their server mappings through `client.zero_trust.access.ai_controls.mcp.portals`."""

from __future__ import annotations

from datetime import datetime

import cloudflare
import pytest

from conftest import without_sync

from test_servers import make_server


def make_portal(portals, account_id, id, **fields):
    params = dict(hostname=f"{id}.mcp.example.com", name=f"Portal {id}")
    params.update(fields)
    return portals.create(account_id=account_id, id=id, **params)


def test_create_returns_the_portal_with_defaults(portals, account_id):
    created = portals.create(
        account_id=account_id, id="team", hostname="mcp.example.com", name="Team portal"
    )
    assert created.id == "team"
    assert created.hostname == "mcp.example.com"
    assert created.name == "Team portal"
    assert created.description is None
    assert created.code_mode == "opt_in"
    assert created.allow_code_mode is True
    assert created.secure_web_gateway is False
    assert created.servers == []
    assert isinstance(created.created_at, datetime)
    assert isinstance(created.modified_at, datetime)
    assert created.created_by and created.modified_by
    assert without_sync(portals.read("team", account_id=account_id).to_dict()) == without_sync(created.to_dict())


def test_portal_with_server_mappings(servers, portals, account_id):
    make_server(
        servers,
        account_id,
        "github",
        name="GitHub",
        updated_tools=[
            {"name": "create_issue", "alias": "new-issue", "description": "Server-level text"},
            {"name": "delete_repo", "enabled": False},
        ],
        updated_prompts=[{"name": "review", "alias": "code-review"}],
    )
    make_server(servers, account_id, "jira", auth_type="bearer", auth_credentials="tok")
    created = make_portal(
        portals,
        account_id,
        "eng",
        servers=[
            {
                "server_id": "github",
                "default_disabled": True,
                "on_behalf": False,
                "updated_tools": [
                    {"name": "create_issue", "alias": "open-issue", "enabled": True},
                    {"name": "list_prs", "description": "Portal-level text"},
                ],
                "updated_prompts": [{"name": "review", "description": "Review a PR"}],
            },
            {"server_id": "jira"},
        ],
    )
    assert [s.server_id for s in created.servers] == ["github", "jira"]
    github, jira = created.servers
    # Each mapping is the full server object plus the portal's settings for it.
    assert github.id == "github"
    assert github.name == "GitHub"
    assert github.hostname == "https://github.example.com/mcp"
    assert github.auth_type == "unauthenticated"
    # `github.example.com` does not exist: the sync that creation started has either not run
    # yet or failed, and no tools were ever synced.
    assert github.status in ("waiting", "error")
    assert github.tools == [] and github.prompts == []
    assert github.default_disabled is True
    assert github.on_behalf is False
    # Overrides come back split into the portal's and the server's values.
    tools = {t.name: t.to_dict() for t in github.updated_tools}
    assert tools["create_issue"] == {
        "name": "create_issue",
        "enabled": True,
        "portal_alias": "open-issue",
        "server_alias": "new-issue",
        "server_description": "Server-level text",
    }
    assert tools["list_prs"] == {"name": "list_prs", "portal_description": "Portal-level text"}
    assert tools["delete_repo"] == {"name": "delete_repo", "enabled": False}
    for entry in github.updated_tools:
        assert "alias" not in entry.to_dict() and "description" not in entry.to_dict()
    prompts = [p.to_dict() for p in github.updated_prompts]
    assert prompts == [
        {
            "name": "review",
            "portal_description": "Review a PR",
            "server_alias": "code-review",
        }
    ]
    # Defaults of a mapping: enabled by default, each user authenticates on their own.
    assert jira.default_disabled is False
    assert jira.on_behalf is True
    assert jira.updated_tools == [] and jira.updated_prompts == []
    assert jira.auth_type == "bearer"
    assert "auth_credentials" not in jira.to_dict()

    read = portals.read("eng", account_id=account_id)
    assert without_sync(read.to_dict()) == without_sync(created.to_dict())
    listed = list(portals.list(account_id=account_id))
    assert [without_sync(p.to_dict()) for p in listed] == [without_sync(created.to_dict())]


def test_server_changes_show_in_its_portals(servers, portals, account_id):
    make_server(servers, account_id, "kb", name="Knowledge base")
    make_portal(portals, account_id, "p", servers=[{"server_id": "kb"}])
    servers.update("kb", account_id=account_id, name="KB", description="renamed")
    (mapping,) = portals.read("p", account_id=account_id).servers
    assert mapping.name == "KB"
    assert mapping.description == "renamed"


def test_update_replaces_the_portal(servers, portals, account_id):
    make_server(servers, account_id, "a")
    make_server(servers, account_id, "b")
    make_portal(
        portals,
        account_id,
        "ops",
        name="Ops",
        description="Operations",
        code_mode="enforced",
        secure_web_gateway=True,
        servers=[
            {"server_id": "a", "default_disabled": True, "on_behalf": False},
            {"server_id": "b", "updated_tools": [{"name": "x", "alias": "y"}]},
        ],
    )
    updated = portals.update(
        "ops",
        account_id=account_id,
        name="Ops v2",
        servers=[{"server_id": "b"}],
    )
    assert updated.name == "Ops v2"
    assert updated.hostname == "ops.mcp.example.com"
    # Omitted optional fields take their defaults again.
    assert updated.description is None
    assert updated.code_mode == "opt_in"
    assert updated.allow_code_mode is True
    assert updated.secure_web_gateway is False
    (b,) = updated.servers
    assert b.server_id == "b"
    assert b.default_disabled is False
    assert b.on_behalf is True
    assert b.updated_tools == []
    assert without_sync(portals.read("ops", account_id=account_id).to_dict()) == without_sync(updated.to_dict())

    moved = portals.update(
        "ops", account_id=account_id, hostname="ops2.mcp.example.com", name="Ops v3"
    )
    assert moved.hostname == "ops2.mcp.example.com"
    # Without `servers` the portal has none.
    assert moved.servers == []


def test_list_pages_automatically_and_searches(portals, account_id):
    ids = [f"portal-{i:02d}" for i in range(12)]
    for id in ids:
        make_portal(portals, account_id, id)
    make_portal(portals, account_id, "sales", name="Revenue team", hostname="crm.example.org")
    assert [p.id for p in portals.list(account_id=account_id, per_page=5)] == ids + ["sales"]
    pages = list(portals.list(account_id=account_id, per_page=5).iter_pages())
    # `iter_pages` yields the empty page that ends the walk too.
    assert [len(p.result) for p in pages] == [5, 5, 3, 0]
    assert pages[1].result_info.page == 2 and pages[1].result_info.per_page == 5
    # `search` matches id, name and hostname.
    assert [p.id for p in portals.list(account_id=account_id, search="sale")] == ["sales"]
    assert [p.id for p in portals.list(account_id=account_id, search="revenue")] == ["sales"]
    assert [p.id for p in portals.list(account_id=account_id, search="crm.example")] == ["sales"]
    assert len(list(portals.list(account_id=account_id, search="portal-0"))) == 10


def test_delete_returns_the_portal_without_servers(servers, portals, account_id):
    make_server(servers, account_id, "s1")
    make_portal(
        portals, account_id, "temp", description="short-lived", servers=[{"server_id": "s1"}]
    )
    raw = portals.with_raw_response.delete("temp", account_id=account_id)
    assert '"servers"' not in raw.http_response.text
    deleted = raw.parse()
    assert deleted.id == "temp"
    assert deleted.name == "Portal temp"
    assert deleted.hostname == "temp.mcp.example.com"
    assert deleted.description == "short-lived"
    assert deleted.code_mode == "opt_in"
    assert list(portals.list(account_id=account_id)) == []
    with pytest.raises(cloudflare.NotFoundError):
        portals.read("temp", account_id=account_id)
    # The server stays.
    assert servers.read("s1", account_id=account_id).id == "s1"


@pytest.mark.parametrize(
    ("code_mode", "allow_code_mode", "expected_mode", "expected_allow"),
    [
        (None, None, "opt_in", True),
        ("off", None, "off", False),
        ("default_on", None, "default_on", True),
        ("enforced", True, "enforced", True),
        ("off", False, "off", False),
        (None, False, "off", False),
        (None, True, "opt_in", True),
    ],
)
def test_code_mode_and_allow_code_mode(
    portals, account_id, code_mode, allow_code_mode, expected_mode, expected_allow
):
    fields = {}
    if code_mode is not None:
        fields["code_mode"] = code_mode
    if allow_code_mode is not None:
        fields["allow_code_mode"] = allow_code_mode
    created = make_portal(portals, account_id, "cm", **fields)
    assert (created.code_mode, created.allow_code_mode) == (expected_mode, expected_allow)
    updated = portals.update("cm", account_id=account_id, name="cm", **fields)
    assert (updated.code_mode, updated.allow_code_mode) == (expected_mode, expected_allow)


@pytest.mark.parametrize(("code_mode", "allow_code_mode"), [("off", True), ("enforced", False)])
def test_contradicting_code_mode_fields_are_rejected(
    portals, account_id, code_mode, allow_code_mode
):
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_portal(portals, account_id, "cm", code_mode=code_mode, allow_code_mode=allow_code_mode)
    assert "allow_code_mode" in err.value.message
    assert list(portals.list(account_id=account_id)) == []
    make_portal(portals, account_id, "cm", code_mode="default_on")
    with pytest.raises(cloudflare.BadRequestError) as err:
        portals.update(
            "cm", account_id=account_id, code_mode=code_mode, allow_code_mode=allow_code_mode
        )
    assert "allow_code_mode" in err.value.message
    assert portals.read("cm", account_id=account_id).code_mode == "default_on"
