"""Errors reach SDK users as the SDK's typed exceptions, with messages that name the field."""

from __future__ import annotations

import time

import cloudflare
import httpx
import pytest

from test_portals import make_portal
from test_servers import make_server


def error_of(excinfo) -> dict:
    """The first `{code, message, source?}` of the v4 error envelope."""
    body = excinfo.value.body
    assert isinstance(body, dict), body
    assert body["success"] is False
    assert body["result"] is None
    (first,) = body["errors"]
    assert isinstance(first["code"], int)
    return first


def assert_names_field(excinfo, field: str, pointer: str | None = None) -> None:
    error = error_of(excinfo)
    assert f"`{field}`" in error["message"], error
    if pointer is not None:
        assert error["source"]["pointer"] == pointer, error


def test_server_id_with_underscore(servers, account_id):
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_server(servers, account_id, "my_server")
    assert_names_field(err, "id", "/id")
    assert "my_server" in error_of(err)["message"]
    assert list(servers.list(account_id=account_id)) == []


def test_portal_id_with_underscore(portals, account_id):
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_portal(portals, account_id, "my_portal")
    assert_names_field(err, "id", "/id")


@pytest.mark.parametrize("alias", ["bad alias", "-leading", "a__b", "x" * 41])
def test_bad_alias_on_a_server(servers, account_id, alias):
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_server(
            servers,
            account_id,
            "s",
            updated_tools=[{"name": "ok", "alias": "fine"}, {"name": "t", "alias": alias}],
        )
    assert_names_field(err, "updated_tools[1].alias", "/updated_tools/1/alias")
    assert list(servers.list(account_id=account_id)) == []


def test_bad_alias_in_a_portal_mapping(servers, portals, account_id):
    make_server(servers, account_id, "s")
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_portal(
            portals,
            account_id,
            "p",
            servers=[{"server_id": "s", "updated_prompts": [{"name": "p", "alias": "no spaces"}]}],
        )
    assert_names_field(
        err, "servers[0].updated_prompts[0].alias", "/servers/0/updated_prompts/0/alias"
    )


def test_duplicate_alias_within_a_server(servers, account_id):
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_server(
            servers,
            account_id,
            "s",
            updated_tools=[{"name": "a", "alias": "same"}, {"name": "b", "alias": "same"}],
        )
    assert_names_field(err, "updated_tools[1].alias")


def test_unknown_server_in_a_portal(servers, portals, account_id):
    make_server(servers, account_id, "exists")
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_portal(
            portals,
            account_id,
            "p",
            servers=[{"server_id": "exists"}, {"server_id": "missing"}],
        )
    assert_names_field(err, "servers[1].server_id", "/servers/1/server_id")
    assert "missing" in error_of(err)["message"]
    assert list(portals.list(account_id=account_id)) == []


def test_too_long_name(servers, portals, account_id):
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_server(servers, account_id, "s", name="n" * 10_000)
    assert_names_field(err, "name", "/name")
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_portal(portals, account_id, "p", name="n" * 10_000)
    assert_names_field(err, "name", "/name")


def test_too_many_servers_in_a_portal(servers, portals, account_id):
    make_server(servers, account_id, "only")
    mappings = [{"server_id": "only"}] * 257
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_portal(portals, account_id, "big", servers=mappings)
    assert_names_field(err, "servers", "/servers")
    assert "256" in error_of(err)["message"]


def test_create_only_field_on_update(servers, account_id):
    make_server(servers, account_id, "fixed")
    with pytest.raises(cloudflare.BadRequestError) as err:
        servers.update(
            "fixed",
            account_id=account_id,
            name="x",
            extra_body={"hostname": "https://elsewhere.example.com/mcp"},
        )
    assert_names_field(err, "hostname", "/hostname")


def test_unknown_field_is_rejected(servers, account_id):
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_server(servers, account_id, "s", extra_body={"colour": "blue"})
    assert "colour" in error_of(err)["message"]


def test_wrong_token(portico, account_id):
    client = portico.client(token="x" * 40)
    with pytest.raises(cloudflare.AuthenticationError) as err:
        client.zero_trust.access.ai_controls.mcp.servers.list(account_id=account_id)
    assert err.value.status_code == 401
    assert "token" in error_of(err)["message"]


def read_client(portico):
    token = portico.create_token("reader", "read")
    client = portico.client(token=token)
    # The running server sees the new token once its read model has caught up with the log.
    deadline = time.monotonic() + 10
    while True:
        try:
            client.zero_trust.access.ai_controls.mcp.servers.list(account_id=portico.account_id)
            return client
        except cloudflare.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_read_scope_token_cannot_write(portico, servers, account_id):
    make_server(servers, account_id, "s", name="Original")
    reader = read_client(portico).zero_trust.access.ai_controls.mcp
    assert reader.servers.read("s", account_id=account_id).name == "Original"
    assert [p.id for p in reader.portals.list(account_id=account_id)] == []
    with pytest.raises(cloudflare.PermissionDeniedError) as err:
        make_server(reader.servers, account_id, "t")
    assert "`edit`" in error_of(err)["message"]
    with pytest.raises(cloudflare.PermissionDeniedError):
        reader.servers.update("s", account_id=account_id, name="Changed")
    with pytest.raises(cloudflare.PermissionDeniedError):
        reader.servers.delete("s", account_id=account_id)
    with pytest.raises(cloudflare.PermissionDeniedError):
        make_portal(reader.portals, account_id, "p")
    assert servers.read("s", account_id=account_id).name == "Original"
    assert [s.id for s in servers.list(account_id=account_id)] == ["s"]


def test_unknown_ids(servers, portals, account_id):
    for call in (
        lambda: servers.read("nope", account_id=account_id),
        lambda: servers.update("nope", account_id=account_id, name="x"),
        lambda: servers.delete("nope", account_id=account_id),
        lambda: portals.read("nope", account_id=account_id),
        lambda: portals.update("nope", account_id=account_id, name="x"),
        lambda: portals.delete("nope", account_id=account_id),
    ):
        with pytest.raises(cloudflare.NotFoundError) as err:
            call()
        assert "`nope`" in error_of(err)["message"]


def test_unknown_account(servers, portals, account_id):
    other = "f" * 32 if account_id != "f" * 32 else "e" * 32
    with pytest.raises(cloudflare.NotFoundError) as err:
        servers.list(account_id=other)
    assert f"`{other}`" in error_of(err)["message"]
    with pytest.raises(cloudflare.NotFoundError):
        make_server(servers, other, "s")
    with pytest.raises(cloudflare.NotFoundError):
        portals.read("p", account_id=other)
    assert list(servers.list(account_id=account_id)) == []


def test_create_of_an_existing_id(servers, portals, account_id):
    make_server(servers, account_id, "twice", name="First")
    with pytest.raises(cloudflare.ConflictError) as err:
        make_server(servers, account_id, "twice", name="Second")
    assert "`twice`" in error_of(err)["message"]
    assert servers.read("twice", account_id=account_id).name == "First"
    make_portal(portals, account_id, "twice", name="First")
    with pytest.raises(cloudflare.ConflictError) as err:
        make_portal(portals, account_id, "twice", name="Second")
    assert "`twice`" in error_of(err)["message"]
    assert portals.read("twice", account_id=account_id).name == "First"


def test_bad_paging_parameters(servers, account_id):
    with pytest.raises(cloudflare.BadRequestError) as err:
        servers.list(account_id=account_id, per_page=0).result
    assert "`per_page`" in error_of(err)["message"]


def test_a_missing_required_field_is_named(servers, portals, account_id):
    make_server(servers, account_id, "s")
    with pytest.raises(cloudflare.BadRequestError) as err:
        make_portal(portals, account_id, "p", servers=[{"server_id": "s"}, {"on_behalf": False}])
    assert_names_field(err, "servers[1].server_id", "/servers/1/server_id")
    with pytest.raises(cloudflare.BadRequestError) as err:
        servers.create(
            account_id=account_id,
            id="t",
            auth_type="bearer",
            hostname="https://t.example.com/mcp",
            name=cloudflare.omit,
        )
    assert_names_field(err, "name", "/name")


def test_a_read_token_gets_403_whatever_the_body(portico, account_id):
    reader = read_client(portico).zero_trust.access.ai_controls.mcp
    # A body that would fail validation still answers 403: scope is checked first.
    with pytest.raises(cloudflare.PermissionDeniedError):
        reader.servers.create(
            account_id=account_id, id="bad_id", auth_type="bearer", hostname="x", name=""
        )
    with pytest.raises(cloudflare.PermissionDeniedError):
        reader.portals.update("nope", account_id=account_id, servers=[{"server_id": "a_b"}])


def test_a_conflict_on_create_is_not_retried(portico, account_id):
    requests = []
    http = httpx.Client(event_hooks={"request": [requests.append]})
    client = cloudflare.Cloudflare(
        api_token=portico.admin_token, base_url=portico.base_url, http_client=http
    )
    portico.clients.append(client)
    servers = client.zero_trust.access.ai_controls.mcp.servers
    make_server(servers, account_id, "once")
    requests.clear()
    with pytest.raises(cloudflare.ConflictError) as err:
        make_server(servers, account_id, "once")
    assert err.value.response.headers["x-should-retry"] == "false"
    # The SDK retries a 409 unless told not to; an existing id never goes away by retrying.
    assert len(requests) == 1
