"""The OpenAI error shape and the mapping of request validation errors to it."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError

from gateway.errors import GatewayError, _validation_error, bad_request


@pytest.mark.parametrize("error,message,param,code", [
    ({"type": "json_invalid", "loc": ("body", 1), "msg": "x"}, "request body is not valid JSON", None, "invalid_json"),
    ({"type": "missing", "loc": ("body",), "msg": "x"}, "request body must be a JSON object", None, "invalid_json"),
    ({"type": "missing", "loc": ("body", "messages"), "msg": "Field required"},
     "missing required field 'messages'", "messages", "missing_field"),
    ({"type": "int_parsing", "loc": ("body", "messages", 0, "role"), "msg": "bad role"},
     "messages.0.role: bad role", "messages.0.role", "invalid_field"),
])
def test_validation_errors_become_400s_naming_the_field(error, message, param, code):
    err = _validation_error(RequestValidationError([error]))
    assert err.status == 400 and err.message.startswith(message) and err.param == param and err.code == code


def test_the_error_body_has_openais_shape():
    assert bad_request("no", param="model").body() == {
        "error": {"message": "no", "type": "invalid_request_error", "param": "model", "code": "invalid_request"}}
    assert GatewayError(504, "slow").body()["error"]["type"] == "timeout_error"
    assert GatewayError(418, "teapot").body()["error"]["type"] == "invalid_request_error"
    response = GatewayError(502, "down", headers={"x-router-attempted": "a"}).response()
    assert response.status_code == 502 and response.headers["x-router-attempted"] == "a"
