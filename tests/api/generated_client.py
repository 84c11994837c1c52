"""The README's service flow ("Run as a service") through nothing but the
Python client that openapi-python-client generated from weft's served
OpenAPI document; tests/api/client.rs runs it.

    PYTHONPATH=DIR python generated_client.py URL ADMIN_TOKEN HELLO_WASM FLAKY_WASM

with the generated package `weft_client` in DIR. Operations are found by
method and path, so renamed operation ids or tags do not matter; arguments
are given as plain values and made into the enums and models the generated
functions declare. Every call must answer the expected status with a body
the client parsed into one of its models, with no field its schema does not
declare. Prints one JSON object, every answer as the client's models give
it back (`to_dict()`), or exits 1 with what went wrong.
"""

import enum
import importlib
import inspect
import io
import json
import pkgutil
import re
import sys
import time
import traceback
import typing

import attrs
import weft_client.api
from weft_client import AuthenticatedClient
from weft_client.types import File, Unset


def fail(message):
    print(f"generated_client.py: {message}", file=sys.stderr)
    sys.exit(1)


def endpoints():
    """Every generated endpoint module by (METHOD, path template)."""
    found = {}
    for info in pkgutil.walk_packages(weft_client.api.__path__, "weft_client.api."):
        module = importlib.import_module(info.name)
        source = inspect.getsource(module)
        method = re.search(r'"method": "(\w+)"', source)
        url = re.search(r'"url": "([^"]+)"', source)
        if method and url:
            found[(method.group(1).upper(), url.group(1))] = module
    return found


ENDPOINTS = endpoints()
LAST = {}  # the last response, read, for messages about bodies that did not parse


def remember(response):
    response.read()
    LAST["response"] = response


def client(url, token):
    return AuthenticatedClient(
        base_url=url,
        token=token,
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"response": [remember]}},
    )


def alternatives(annotation):
    return typing.get_args(annotation) or (annotation,)


def coerce(annotation, value):
    """`value` as the enum or model the generated function declares, or as is."""
    for kind in alternatives(annotation):
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(value)
        if isinstance(kind, type) and hasattr(kind, "from_dict") and isinstance(value, dict):
            return kind.from_dict(value)
    return value


def accepts(annotation, value):
    return annotation is typing.Any or any(
        isinstance(value, typing.get_origin(kind) or kind)
        for kind in alternatives(annotation)
        if isinstance(typing.get_origin(kind) or kind, type)
    )


def call(method, path, expected, client, **arguments):
    """Calls the generated `sync_detailed` of `method path`; its parsed body."""
    what = f"{method} {path}"
    module = ENDPOINTS.get((method, path))
    if module is None:
        fail(f"the client has no function for {what}; it has {sorted(ENDPOINTS)}")
    parameters = inspect.signature(module.sync_detailed).parameters
    for name, value in list(arguments.items()):
        if name not in parameters:
            fail(f"{what} takes no `{name}`; its parameters: {list(parameters)}")
        annotation = parameters[name].annotation
        try:
            value = arguments[name] = coerce(annotation, value)
        except Exception:
            fail(f"{what}: {value!r} cannot be made a `{name}` ({annotation}):\n{traceback.format_exc()}")
        if not accepts(annotation, value):
            fail(f"{what} declares `{name}` as {annotation}, which cannot take {type(value).__name__} {value!r}")
    LAST.clear()
    try:
        response = module.sync_detailed(client=client, **arguments)
    except Exception:
        answer = LAST.get("response")
        answer = f"{answer.status_code} {answer.content!r}" if answer else "nothing"
        fail(f"{what} failed; the server answered {answer}:\n{traceback.format_exc()}")
    if response.status_code != expected:
        fail(f"{what} answered {int(response.status_code)}, not {expected}: {response.content!r}")
    parsed = response.parsed
    if parsed is None or not type(parsed).__module__.startswith("weft_client.models."):
        fail(f"{what}: the client made {parsed!r} of {response.content!r}, not one of its models")
    extra = list(undocumented(parsed, "answer"))
    if extra:
        fail(f"{what} answered fields its schema does not declare: {extra} in {response.content!r}")
    return parsed


def undocumented(value, where):
    """The fields of a parsed answer that its model does not declare: the
    client keeps them aside in `additional_properties`, which is right only
    for models that declare no fields at all (free-form objects)."""
    if attrs.has(type(value)):
        declared = [field.name for field in attrs.fields(type(value)) if field.name != "additional_properties"]
        extra = getattr(value, "additional_properties", {})
        if declared and extra:
            yield f"{where} ({type(value).__name__}): {sorted(extra)}"
        for name in declared:
            yield from undocumented(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from undocumented(item, f"{where}[{index}]")


def plain(value):
    """A parsed answer as JSON values, through the models' own `to_dict()`."""
    if isinstance(value, Unset):
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def until_ended(tenant, run):
    deadline = time.monotonic() + 60
    while True:
        view = call("GET", "/v1/runs/{id}", 200, tenant, id=run)
        if plain(view.status) != "running":
            return view
        if time.monotonic() > deadline:
            fail(f"run {run} did not end within 60 s: {plain(view)}")
        time.sleep(0.05)


def push_module(tenant, name, path):
    with open(path, "rb") as component:
        body = File(payload=io.BytesIO(component.read()), file_name=f"{name}.wasm", mime_type="application/wasm")
    return call("PUT", "/v1/modules/{name}", 201, tenant, name=name, body=body)


def main():
    url, admin_token, hello, flaky = sys.argv[1:]
    seen = {}

    admin = client(url, admin_token)
    created = call("POST", "/v1/admin/tenants", 201, admin, body={"name": "acme"})
    seen["tenant"] = plain(created)
    tenant = client(url, created.api_key.token)

    seen["module"] = plain(push_module(tenant, "hello", hello))
    workflow = {"name": "hi", "steps": [{"id": "hi", "task": "hello"}]}
    seen["workflow"] = plain(call("PUT", "/v1/workflows/{name}", 200, tenant, name="hi", body=workflow))

    start = {"name": "hi", "body": {"input": {"name": "Ada"}}}
    started = call("POST", "/v1/workflows/{name}/runs", 201, tenant, idempotency_key="first", **start)
    seen["started"] = plain(started)
    again = call("POST", "/v1/workflows/{name}/runs", 200, tenant, idempotency_key="first", **start)
    seen["started_again"] = plain(again)
    seen["run"] = plain(until_ended(tenant, started.id))
    seen["logs"] = plain(call("GET", "/v1/runs/{id}/steps/{step}/logs", 200, tenant, id=started.id, step="hi"))
    seen["events"] = plain(call("GET", "/v1/runs/{id}/events", 200, tenant, id=started.id))
    seen["waited"] = plain(call("POST", "/v1/workflows/{name}/runs", 201, tenant, wait="30s", **start))
    seen["runs"] = plain(call("GET", "/v1/runs", 200, tenant, workflow="hi", status="succeeded"))

    # A failing step: its error, its logs, and a retry from it.
    push_module(tenant, "flaky", flaky)
    step = {"id": "flaky", "task": "flaky", "input": {"fail_times": 1}, "retry": {"max_attempts": 1}}
    once = {"name": "once", "steps": [step]}
    call("PUT", "/v1/workflows/{name}", 200, tenant, name="once", body=once)
    failed = call("POST", "/v1/workflows/{name}/runs", 201, tenant, name="once", body={})
    seen["failed"] = plain(until_ended(tenant, failed.id))
    seen["failed_logs"] = plain(call("GET", "/v1/runs/{id}/steps/{step}/logs", 200, tenant, id=failed.id, step="flaky"))
    call("POST", "/v1/runs/{id}/retry", 200, tenant, id=failed.id)
    seen["retried"] = plain(until_ended(tenant, failed.id))

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
