"""Errors travel: every exception class survives ``pickle`` (Celery, process pools) with its attributes.

Each class of the tree has a real instance here, raised by a real failure (a sandbox fault, a bad
payload, a tampered callback, a malformed descriptor file...), never one built by hand, so a class
whose constructor or attributes change is tested as the engine raises it (a class raised only as its
subclasses, ``NotificationError``, is tested through one of them). The list of classes is
found by walking ``EngineError.__subclasses__()`` after importing every module of the package, so a
new class without a case here fails ``test_every_class_has_a_real_failure``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import multiprocessing
import pickle
import pkgutil
import socket
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import COMBINE_PAPAY, MICROPAY

import engine
from engine import Engine, EngineError, RetryPolicy, errors
from engine.sandbox.faults import Fault
from engine.testing import Stubber
from engine.wire import Headers

QUICK = RetryPolicy(base_delay=0, max_delay=0)

BILL = {"bill_date": "2026-11-21", "bill_type": "ALL"}
PROTOCOLS = sorted({2, pickle.HIGHEST_PROTOCOL})
# Exception classes that stay in their module: neither reaches a caller of the package.
LOCAL_EXCEPTIONS = {
    "engine.cli.CliError": "a command-line mistake, turned into one 'error:' line and exit status 2 by main()",
    "engine.sandbox.emulator._RefusalError": "the emulator's control flow, turned into an error answer",
    "engine.receiver._UnhandledEventError": "a handler-less event type inside the flow, answered with a failure",
    "engine.sandbox.objects.RefusedError": "a sandbox object refuses a call or action: an error answer or admin 4xx",
    "engine.sandbox.v2._FailError": "the APIv2 desk's control flow, turned into a return_code=FAIL answer",
    "engine.v2.xmlcodec.MalformedXmlError": "the XML reader's refusal, turned into MalformedResponseError or "
    "MalformedNotificationError by its callers",
    "engine.serialize.UnreadableJsonError": "decode_json's refusal, turned into each caller's own error "
    "(a CLI line, MalformedNotificationError, a 400 of the sandbox)",
}


def _import_everything() -> list[str]:
    """Import every module of the package (and the catalogue tool), so every error class exists.

    Returns the names of the package's modules.
    """
    names = [info.name for info in pkgutil.walk_packages(engine.__path__, "engine.")]
    for name in [*names, "tools.import_catalogue", "tools.import_catalogue_v2"]:
        importlib.import_module(name)
    return names


def _subclasses(cls: type) -> Iterator[type]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def _error_classes() -> list[type[BaseException]]:
    _import_everything()
    classes = {*_subclasses(EngineError), errors.StubAssertionError}
    return sorted(classes, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


# -- one real failure per class ------------------------------------------------------------------


class World:
    """What the failures need: sandbox engines (sharing the session's identity), a scratch folder."""

    def __init__(self, make_engine: Callable[..., Engine], tmp_path: Path) -> None:
        self.make_engine = make_engine
        self.tmp_path = tmp_path
        self.made: list[Engine] = []

    def raised(self, action: Callable[[], Any]) -> BaseException:
        try:
            action()
        except BaseException as exc:  # any failure is what we came for
            return exc
        raise AssertionError(f"{action} did not fail")

    def faulty_call(self, fault: Fault, **options: Any) -> BaseException:
        engine = self.make_engine(**options)
        engine.emulator.faults.add(fault)
        return self.raised(lambda: engine.call("combine_papay.mini_program", COMBINE_PAPAY))

    def http_engine(self, base_url: str, **options: Any) -> Engine:
        identity = self.make_engine().emulator.identity
        engine = Engine(**identity.engine_settings(), base_url=base_url, load_entry_points=False, **options)
        self.made.append(engine)
        return engine

    def faulty_get(self, fault: Fault, **options: Any) -> BaseException:
        engine = self.make_engine(**options)
        engine.emulator.faults.add(fault, times=3)  # every attempt: a GET is retried
        return self.raised(lambda: engine.call("GET /v3/certificates"))

    def callback(self, engine: Engine) -> tuple[dict[str, str], bytes]:
        notification = engine.emulator.payment_succeeded("T-1001", total=88)
        return dict(notification.headers.items()), notification.body


def _refused(world: World) -> BaseException:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    engine = world.http_engine(f"http://127.0.0.1:{port}", retry=RetryPolicy.never())
    return world.raised(lambda: engine.call("combine_papay.mini_program", COMBINE_PAPAY))


def _connect_timeout(world: World) -> BaseException:
    """A listening socket whose backlog is full drops SYNs: connecting times out, on loopback."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        engine = world.http_engine(f"http://127.0.0.1:{port}", connect_timeout=0.2, retry=RetryPolicy.never())
        try:
            return world.raised(lambda: engine.call("combine_papay.mini_program", COMBINE_PAPAY))
        finally:
            for filler in fillers:
                filler.close()


def _too_large(world: World) -> BaseException:
    """A certificate list is a few KiB: more than a 1 KiB limit allows."""
    from engine.sandbox import Sandbox
    from engine.sandbox.server import ServerThread

    identity = world.make_engine().emulator.identity
    with ServerThread(Sandbox(identity)) as thread:
        engine = world.http_engine(thread.base_url, max_answer_bytes=1024, retry=RetryPolicy.never())
        return world.raised(lambda: engine.call("GET /v3/certificates"))


def _store_unreachable(world: World) -> BaseException:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return world.raised(lambda: world.make_engine(store=f"redis://:pw@127.0.0.1:{port}/0"))


def _usage(world: World) -> BaseException:
    engine = world.make_engine()
    headers = {"Authorization": "WECHATPAY2-SHA256-RSA2048 forged"}
    return world.raised(lambda: engine.call("combine_papay.mini_program", COMBINE_PAPAY, headers=headers))


def _unknown_endpoint(world: World) -> BaseException:
    return world.raised(lambda: world.make_engine().call("combine_papay.mini_programme", COMBINE_PAPAY))


def _descriptor(world: World) -> BaseException:
    folder = world.tmp_path / "endpoints"
    folder.mkdir()
    (folder / "v3.demo.get.yaml").write_text("method: GET\npath: /v3/demo\nrequest:\n  encrpyted: true\n")
    return world.raised(lambda: world.make_engine(endpoint_dirs=[folder]).endpoint("v3.demo.get"))


def _validation(world: World) -> BaseException:
    payload = {**COMBINE_PAPAY, "plan_id": "twelve"}
    del payload["appid"]
    return world.raised(lambda: world.make_engine().call("combine_papay.mini_program", payload))


def _configuration(world: World) -> BaseException:
    return world.raised(lambda: world.make_engine(mchid=" "))


def _credential(world: World) -> BaseException:
    return world.raised(lambda: world.make_engine(private_key=b"-----BEGIN PRIVATE KEY-----\nnot a key\n"))


def _stub_response(world: World) -> BaseException:
    stub = Stubber(world.make_engine())
    return world.raised(lambda: stub.add_response("combine_papay.mini_program", {"unexpected": 1}, status=500))


def _stub_assertion(world: World) -> BaseException:
    engine = world.make_engine()
    with Stubber(engine) as stub:
        stub.add_error("combine_papay.mini_program", status=500, code="SYSTEM_ERROR", message="系统异常")
        return world.raised(stub.assert_no_pending_responses)


def _download_digest(world: World) -> BaseException:
    engine = world.make_engine()
    engine.emulator.faults.add(Fault("corrupt_download"), endpoint="v3.billdownload.file.get")
    return world.raised(lambda: engine.download("v3.bill.tradebill.get", BILL, world.tmp_path / "bill.csv"))


def _tampered_callback(world: World) -> BaseException:
    engine = world.make_engine()
    headers, body = world.callback(engine)
    return world.raised(lambda: engine.parse_notification(headers, body.replace(b"TRANSACTION", b"TRANSACTIONS")))


def _stale_callback(world: World) -> BaseException:
    headers, body = world.callback(world.make_engine())
    later = world.make_engine(clock=lambda: time.time() + 400)
    return world.raised(lambda: later.parse_notification(headers, body))


def _malformed_callback(world: World) -> BaseException:
    engine = world.make_engine()
    body = b'{"id": "EV-1"}'
    answer = engine.emulator.sign_answer(200, body, Headers({}))
    return world.raised(lambda: engine.parse_notification(dict(answer.headers.items()), body))


def _undecryptable_callback(world: World) -> BaseException:
    headers, body = world.callback(world.make_engine())
    return world.raised(lambda: world.make_engine(apiv3_key=b"0" * 32).parse_notification(headers, body))


def _v2_failure(world: World, level: str) -> BaseException:
    engine = world.make_engine()
    engine.emulator.v2.fail_next("SYSTEMERROR", "系统超时", level=level)
    return world.raised(lambda: engine.call("v2.pay.micropay.post", MICROPAY))


def _catalogue(world: World) -> BaseException:
    from tools.import_catalogue import import_catalogue

    return world.raised(lambda: import_catalogue(world.tmp_path / "nowhere", world.tmp_path / "out"))


FAILURES: dict[str, Callable[[World], BaseException]] = {
    "UsageError": _usage,
    "UnknownEndpointError": _unknown_endpoint,
    "DescriptorError": _descriptor,
    "ValidationError": _validation,
    "ConfigurationError": _configuration,
    "CredentialError": _credential,
    "StubResponseError": _stub_response,
    "StubAssertionError": _stub_assertion,
    "TransportError": lambda world: world.faulty_get(Fault("drop"), retry=QUICK),
    "TransportTimeoutError": lambda world: world.faulty_get(Fault.latency(5.0), timeout=0.05, retry=QUICK),
    "ConnectError": _refused,
    "AnswerTooLargeError": _too_large,
    "StoreError": _store_unreachable,
    "ConnectTimeoutError": _connect_timeout,
    "UnconfirmedError": lambda world: world.faulty_call(Fault("drop")),
    "UnconfirmedTimeoutError": lambda world: world.faulty_call(Fault.latency(5.0), timeout=0.05),
    "ApiError": lambda world: world.faulty_call(Fault.error(429)),
    "SignatureError": lambda world: world.faulty_call(Fault("bad_signature")),
    "MalformedResponseError": lambda world: world.faulty_call(Fault("not_json")),
    "DigestMismatchError": _download_digest,
    "NotificationSignatureError": _tampered_callback,
    "StaleNotificationError": _stale_callback,
    "MalformedNotificationError": _malformed_callback,
    "NotificationDecryptionError": _undecryptable_callback,
    "CatalogueError": _catalogue,
    "ReturnCodeError": lambda world: _v2_failure(world, "return"),
    "ResultCodeError": lambda world: _v2_failure(world, "result"),
}
# Raised only as one of their subclasses: the case is a real failure of a subclass.
ONLY_AS_SUBCLASSES = {"NotificationError": "MalformedNotificationError", "V2AnswerError": "ResultCodeError"}


def test_every_class_has_a_real_failure() -> None:
    names = {cls.__name__ for cls in _error_classes()}
    assert names == set(FAILURES) | set(ONLY_AS_SUBCLASSES)


@pytest.fixture
def world(make_engine: Callable[..., Engine], tmp_path: Path) -> Iterator[World]:
    made = World(make_engine, tmp_path)
    yield made
    for built in made.made:
        built.close()


def _same(copy: BaseException, original: BaseException) -> None:
    assert type(copy) is type(original)
    assert str(copy) == str(original)
    assert copy.args == original.args
    assert vars(copy) == vars(original)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_real_error_survives_pickle(world: World, cls: type[BaseException], protocol: int) -> None:
    error = FAILURES[ONLY_AS_SUBCLASSES.get(cls.__name__, cls.__name__)](world)
    assert type(error) is cls or cls.__name__ in ONLY_AS_SUBCLASSES, repr(error)
    assert isinstance(error, cls)
    copy = pickle.loads(pickle.dumps(error, protocol=protocol))
    _same(copy, error)
    _same(pickle.loads(pickle.dumps(copy, protocol=protocol)), error)  # and travels on from there


def test_attributes_set_after_construction_travel_too(world: World) -> None:
    error = FAILURES["ApiError"](world)
    error.add_note("while charging order 42")
    copy = pickle.loads(pickle.dumps(error))
    assert copy.__notes__ == ["while charging order 42"] and copy.request_id == error.request_id


def test_exception_classes_are_defined_in_engine_errors() -> None:
    elsewhere = set()
    for name in set(_import_everything()) - {"engine.errors"}:
        for value in vars(importlib.import_module(name)).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                elsewhere.add(f"{name}.{value.__qualname__}")
    assert elsewhere == set(LOCAL_EXCEPTIONS)
    for cls in _error_classes():
        if cls.__module__ == "engine.errors":
            assert getattr(engine, cls.__name__) is cls, f"{cls.__name__} is not exported from engine"


# -- across a process boundary ---------------------------------------------------------------------


def _refused_call_in_a_worker() -> None:
    """Runs in a worker process: a real call that WeChat Pay (the sandbox) refuses."""
    with Engine.sandbox(load_entry_points=False) as sandboxed:
        sandboxed.emulator.faults.add(Fault.error(503))
        sandboxed.call("combine_papay.mini_program", COMBINE_PAPAY)


def test_an_api_error_crosses_a_process_pool() -> None:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: the class is found by import
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(_refused_call_in_a_worker)
        with pytest.raises(engine.ApiError) as caught:
            future.result(timeout=120)
    error = caught.value
    assert (error.status, error.code, error.verified) == (503, "SERVICE_UNAVAILABLE", True)
    assert error.request_id and str(error).startswith("WeChat Pay answered 503 SERVICE_UNAVAILABLE")


# -- what does not travel --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attempt",
    [lambda live: pickle.dumps(live), lambda live: pickle.dumps(live.call), copy.copy, copy.deepcopy],
    ids=["pickle", "a bound method", "copy", "deepcopy"],
)
def test_an_engine_refuses_to_travel_with_a_usage_error_saying_why(attempt: Callable[[Engine], Any]) -> None:
    # Not Python's TypeError about an RSAPrivateKey deep inside, nor a shallow copy sharing its loops.
    refused = pytest.raises(engine.UsageError, match="an Engine does not pickle or copy: it holds keys")
    with Engine.sandbox(load_entry_points=False) as live, refused:
        attempt(live)


def test_a_response_survives_pickle() -> None:
    with Engine.sandbox(load_entry_points=False) as live:
        response = live.call("combine_papay.mini_program", COMBINE_PAPAY)
    copy_ = pickle.loads(pickle.dumps(response))
    assert (copy_.status, copy_.data, copy_.request_id, copy_.verified_with, copy_.endpoint_id) == (
        response.status,
        response.data,
        response.request_id,
        response.verified_with,
        response.endpoint_id,
    )
    assert copy_.headers["request-id"] == response.request_id
