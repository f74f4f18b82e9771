"""JSON-RPC framing rules, as properties over arbitrary input."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp_helpers import json_values

from taskmaster.mcp import jsonrpc
from taskmaster.mcp.jsonrpc import Reply, Request, RpcError

ids = st.text(max_size=12) | st.integers(-(2**63), 2**63 - 1)
near_requests = st.fixed_dictionaries(
    {}, optional={"jsonrpc": st.sampled_from(["2.0", "2", 2.0]) | json_values, "id": ids | json_values,
                  "method": st.text(max_size=8) | json_values, "params": json_values,
                  "result": json_values, "error": json_values})


@given(st.binary(max_size=200))
def test_parse_accepts_json_or_says_parse_error(body):
    try:
        value = jsonrpc.parse(body)
    except RpcError as exc:
        assert exc.code == jsonrpc.PARSE_ERROR
    else:
        assert orjson.loads(orjson.dumps(value)) == value


@given(json_values | near_requests)
def test_classify_never_fails_any_other_way(message):
    try:
        msg = jsonrpc.classify(message)
    except RpcError as exc:
        assert exc.code in (jsonrpc.INVALID_REQUEST, jsonrpc.INVALID_PARAMS)
        answer = exc.answer(jsonrpc.request_id_of(message))
        assert answer["error"]["code"] == exc.code and orjson.dumps(answer)
        rid = answer["id"]
        assert rid is None or (isinstance(rid, str | int) and not isinstance(rid, bool))
    else:
        assert isinstance(msg, Request | Reply)


@given(ids, st.text(min_size=1, max_size=20), st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_valid_requests_keep_id_method_and_params(request_id, method, params):
    msg = jsonrpc.classify({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    assert msg == Request(method, params, request_id)
    note = jsonrpc.classify({"jsonrpc": "2.0", "method": method})
    assert note.is_notification and note.params == {}


@given(ids)
def test_replies_from_the_client_are_recognised(request_id):
    assert isinstance(jsonrpc.classify({"jsonrpc": "2.0", "id": request_id, "result": {}}), Reply)
    assert isinstance(jsonrpc.classify({"jsonrpc": "2.0", "id": request_id, "error": {"code": 1}}), Reply)


@pytest.mark.parametrize("bad_id", [None, True, 1.5, [], {}])
def test_ids_are_strings_or_integers(bad_id):
    with pytest.raises(RpcError) as err:
        jsonrpc.classify({"jsonrpc": "2.0", "id": bad_id, "method": "ping"})
    assert err.value.code == jsonrpc.INVALID_REQUEST and "id" in err.value.message
