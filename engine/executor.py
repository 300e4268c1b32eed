"""The one generic executor: every endpoint, sync or async, runs through here.

Design decisions:

* A straight line: ``await keys.ready()`` -> ``pipeline.prepare`` -> ``sender.send`` (signs and
  sends each attempt) -> ``pipeline.interpret``. The sans-I/O stages live in ``engine.pipeline``,
  the send loop in ``engine.sender``, key freshness behind ``engine.keyprovider``; this module only
  strings them together, and depends on them, never the other way round.
* An answer signed by a key the keyring lacks is verified again after the key provider found that
  key (certificate rotation); the request is not sent again. If the provider itself fails then, the
  unverifiable answer is reported, never a transport failure that would invite a resend.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from engine.errors import EngineError, SignatureError
from engine.keyprovider import KeyProvider
from engine.pipeline import Pipeline, Prepared
from engine.protocol import H_SERIAL
from engine.retry import RetryPolicy
from engine.sender import Sender
from engine.wire import RawResponse, Response


class Executor:
    """Runs calls for one engine."""

    def __init__(self, pipeline: Pipeline, sender: Sender, keys: KeyProvider) -> None:
        self.pipeline = pipeline
        self.sender = sender
        self.keys = keys

    async def run(
        self, ref: str, payload: Any, headers: Optional[Mapping[str, str]], policy: Optional[RetryPolicy] = None
    ) -> Response:
        await self.keys.ready()
        prepared = self.pipeline.prepare(ref, payload, headers)
        raw = await self.sender.send(prepared, policy=policy)
        return await self.interpret(prepared, raw)

    async def interpret(self, prepared: Prepared, raw: RawResponse) -> Response:
        """``pipeline.interpret``, once more after the key provider found an unknown serial's key."""
        try:
            return self.pipeline.interpret(prepared, raw)
        except SignatureError as exc:
            if exc.reason != "unknown_serial" or not self.keys.refreshes:
                raise
            try:
                found = await self.keys.for_serial(raw.headers.get(H_SERIAL, ""))
            except EngineError as refresh_error:
                raise exc from refresh_error
            if found is None:
                raise
        return self.pipeline.interpret(prepared, raw)
