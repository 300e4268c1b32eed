"""Every descriptor the engine knows, called through the engine over real HTTP to the served sandbox."""

from __future__ import annotations

from typing import Iterator

import pytest
from test_meta import ROUND_TRIP_IDS

from engine import Engine
from engine.examples import example_headers, example_payload
from engine.sandbox import Sandbox, SandboxIdentity
from engine.sandbox.server import ServerThread


@pytest.fixture(scope="module")
def served(identity: SandboxIdentity) -> Iterator[tuple[Engine, Sandbox]]:
    with ServerThread(Sandbox(identity)) as server:
        engine = Engine(**identity.engine_settings(), base_url=server.base_url, load_entry_points=False)
        yield engine, server.sandbox
        engine.close()


@pytest.mark.parametrize("endpoint_id", ROUND_TRIP_IDS)
def test_every_descriptor_over_http(served: tuple[Engine, Sandbox], endpoint_id: str) -> None:
    http_engine, sandbox = served
    sandbox.world.clear()  # example payloads share numbers: each create starts afresh
    descriptor = http_engine.endpoint(endpoint_id)
    response = http_engine.call(endpoint_id, example_payload(descriptor), headers=example_headers(descriptor))
    if descriptor.protocol == "v2":  # verified with the APIv2 key, by the sign type the request used
        assert response.verified_with == (
            f"apiv2:{_sign_type(http_engine, descriptor)}" if descriptor.signed_answer else None
        )
    else:
        assert 200 <= response.status < 300 and response.verified_with == http_engine.keyring.ids()[0]


def _sign_type(engine: Engine, descriptor) -> str:
    from engine.v2.signing import sign_type_for

    return sign_type_for(descriptor, {}, engine.credentials.apiv2_sign_type)
