"""Stopping Portico with SIGTERM and starting it again on the same data loses nothing."""

from __future__ import annotations

from conftest import without_sync
from test_portals import make_portal
from test_servers import make_server


def test_everything_survives_a_restart(portico):
    client = portico.client()
    mcp = client.zero_trust.access.ai_controls.mcp
    account_id = portico.account_id
    make_server(
        mcp.servers,
        account_id,
        "kept",
        auth_type="bearer",
        auth_credentials="sk-kept",
        updated_tools=[{"name": "t", "alias": "tool-alias"}],
    )
    make_server(mcp.servers, account_id, "edited")
    mcp.servers.update("edited", account_id=account_id, name="Edited", description="after")
    make_server(mcp.servers, account_id, "removed")
    mcp.servers.delete("removed", account_id=account_id)
    make_portal(
        mcp.portals,
        account_id,
        "main",
        code_mode="enforced",
        servers=[
            {"server_id": "kept", "on_behalf": False, "updated_tools": [{"name": "t", "enabled": False}]},
            {"server_id": "edited", "default_disabled": True},
        ],
    )
    servers_before = [without_sync(s.to_dict()) for s in mcp.servers.list(account_id=account_id)]
    portals_before = [without_sync(p.to_dict()) for p in mcp.portals.list(account_id=account_id)]
    assert [s["id"] for s in servers_before] == ["edited", "kept"]

    assert portico.stop() == 0
    portico.start()
    # No new account or token is made on the second start.
    assert not any(line.startswith("Created account") for line in portico.stdout)

    client = portico.client()
    mcp = client.zero_trust.access.ai_controls.mcp
    assert [without_sync(s.to_dict()) for s in mcp.servers.list(account_id=account_id)] == servers_before
    assert [without_sync(p.to_dict()) for p in mcp.portals.list(account_id=account_id)] == portals_before
    # And it keeps working.
    mcp.portals.update("main", account_id=account_id, name="Main", servers=[{"server_id": "kept"}])
    assert [s.server_id for s in mcp.portals.read("main", account_id=account_id).servers] == [
        "kept"
    ]
