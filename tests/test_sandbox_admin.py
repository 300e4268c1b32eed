"""The admin API and the ``wechatpay sandbox`` commands that drive a served sandbox; the state dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import PATIENCE, wait_until
from test_sandbox_objects import JSAPI, TRANSFER, TRANSFER_BILL, order

from engine import Engine
from engine.cli import main
from engine.sandbox import Sandbox, SandboxIdentity, state
from engine.sandbox.clock import TestClock
from engine.sandbox.server import ServerThread


@pytest.fixture
def served(identity: SandboxIdentity, tmp_path: Path) -> Iterator[tuple[ServerThread, Path, Engine]]:
    with ServerThread(Sandbox(identity, clock=TestClock())) as server:
        state.save(identity, tmp_path, server.base_url)
        with Engine(**identity.engine_settings(), base_url=server.base_url, load_entry_points=False) as engine:
            yield server, tmp_path, engine


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, json.loads(out) if out.strip() else None, err


def post(server: ServerThread, path: str, body: Any) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(server.base_url + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_the_commands_act_on_objects_and_refuse_in_one_line(served, capsys) -> None:
    _server, state_dir, engine = served
    engine.call(JSAPI, order("T-1"))
    status, answer, _ = cli(capsys, "sandbox", "pay", "T-1", "--state-dir", str(state_dir))
    assert status == 0 and answer["object"] == "order/T-1" and answer["state"] == "SUCCESS"
    assert answer["callback"]["event_type"] == "TRANSACTION.SUCCESS"
    for args, expected in (
        (("pay", "T-1"), "error: INVALID_STATE: order/T-1 is SUCCESS: it cannot become SUCCESS"),
        (("pay", "NOPE"), "error: RESOURCE_NOT_EXISTS: no order or combine_order with number 'NOPE'"),
        (("trigger", "PAYMENT.DONE"), "error: UNKNOWN_EVENT: the event catalogue lists no event type 'PAYMENT.DONE'"),
        (("trigger", "FAPIAO.ISSUED"), "error: NO_URL: FAPIAO.ISSUED has no object with a notify_url"),
        (("sign-contract", "C-404"), "error: RESOURCE_NOT_EXISTS: no contract with number 'C-404'"),
        (("advance", "soon"), "error: INVALID_INPUT: by: not a duration: 'soon'"),
    ):
        status, out, err = cli(capsys, "sandbox", *args, "--state-dir", str(state_dir))
        assert (status, out) == (2, None) and err.startswith(expected) and err.count("\n") == 1, err


def test_transfers_contracts_and_the_clock_from_the_command_line(served, capsys) -> None:
    _server, state_dir, engine = served
    engine.call(TRANSFER, TRANSFER_BILL)
    status, answer, _ = cli(capsys, "sandbox", "confirm-transfer", "B-1", "--state-dir", str(state_dir))
    assert (
        status == 0 and answer["state"] == "SUCCESS" and answer["callback"]["event_type"] == "MCHTRANSFER.BILL.FINISHED"
    )
    engine.call(JSAPI, order("T-2"))
    status, answer, _ = cli(capsys, "sandbox", "advance", "2h", "--state-dir", str(state_dir))
    assert status == 0 and answer["offset_seconds"] == 7200
    status, objects, _ = cli(capsys, "sandbox", "objects", "--state-dir", str(state_dir))
    assert {o["ref"]: o["state"] for o in objects}["order/T-2"] == "CLOSED"
    assert engine.call(JSAPI, order("T-3")).status == 200  # two hours ahead, requests signed now still pass


def test_a_trigger_on_a_throwaway_object_is_forwarded_and_verifies(served, capsys) -> None:
    _server, state_dir, engine = served
    received: list[Any] = []
    import asyncio
    import threading

    from aiohttp import web

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", engine.notification_handler(received.append))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return runner

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(PATIENCE)
    ready.set()
    try:
        url = f"http://127.0.0.1:{port[0]}/hook"
        # modelled events move a throwaway object; any other type of the event catalogue goes with a sample
        modelled = ("REFUND.ABNORMAL", "PAPAY.TERMINATE", "MCHTRANSFER.BILL.FINISHED")
        for event in (*modelled, "PROFITSHARING.SUCCESS", "FAPIAO.ISSUED"):
            status, _answer, err = cli(
                capsys, "sandbox", "trigger", event, "--forward-to", url, "--state-dir", str(state_dir)
            )
            assert status == 0, err
        wait_until(lambda: len(received) >= 5)  # forwarded by the served sandbox, over HTTP
        assert sorted(n.event_type for n in received) == [
            "FAPIAO.ISSUED",
            "MCHTRANSFER.BILL.FINISHED",
            "PAPAY.TERMINATE",
            "PROFITSHARING.SUCCESS",
            "REFUND.ABNORMAL",
        ]
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(PATIENCE)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(PATIENCE)
        loop.close()


def test_the_commands_say_when_no_sandbox_is_served(tmp_path: Path, identity: SandboxIdentity, capsys) -> None:
    status, _, err = cli(capsys, "sandbox", "pay", "T-1", "--state-dir", str(tmp_path))
    assert status == 2 and "no sandbox.json" in err
    state.save(identity, tmp_path, "http://127.0.0.1:9")
    status, _, err = cli(capsys, "sandbox", "pay", "T-1", "--state-dir", str(tmp_path))
    assert status == 2 and "no sandbox answers at http://127.0.0.1:9" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        (b"[1]", [{"field": "", "issue": "the body must be a JSON object"}]),
        (b"{", [{"field": "", "issue": "the body is not JSON"}]),
        (b'{"times": ' + b"9" * 5000 + b"}", [{"field": "", "issue": "the body is not JSON"}]),
        (
            {"kind": "error", "status": "429", "times": 0, "colour": "red", "endpoint": "combine_papay.mini"},
            [
                {"field": "colour", "issue": "unknown field"},
                {"field": "status", "issue": "must be a whole number"},
                {"field": "times", "issue": "must be >= 1, got 0"},
            ],
        ),
        (
            {"kind": "melt"},
            [
                {
                    "field": "kind",
                    "issue": "must be one of "
                    + ", ".join(__import__("engine.sandbox.faults", fromlist=["KINDS"]).KINDS),
                }
            ],
        ),
    ],
)
def test_the_fault_api_validates_everything_at_once(served, body: Any, problems: list) -> None:
    server, _, _ = served
    status, answer = post(server, "/sandbox/faults", body)
    assert status == 400 and answer["error"]["code"] == "INVALID_INPUT" and answer["error"]["problems"] == problems
    assert len(server.sandbox.faults) == 0


def test_a_fault_by_short_name_over_http_fires_and_an_unknown_one_is_refused(served) -> None:
    server, _, engine = served
    status, answer = post(
        server, "/sandbox/faults", {"kind": "error", "status": 403, "endpoint": "combine_papay.mini_program"}
    )
    assert (
        status == 201
        and answer["endpoint"] == "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post"
    )
    from conftest import COMBINE_PAPAY

    from engine import ApiError

    with pytest.raises(ApiError, match="NO_AUTH"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    status, answer = post(server, "/sandbox/faults", {"kind": "error", "endpoint": "combine_papay.mini"})
    assert status == 400 and answer["error"]["problems"][0]["field"] == "endpoint"
    assert "did you mean 'combine_papay.mini_program'" in answer["error"]["problems"][0]["issue"]


def test_actions_over_http_answer_4xx_json(served) -> None:
    server, _, _engine = served
    assert post(server, "/sandbox/actions/pay", {"out_trade_no": 7}) == (
        400,
        {
            "error": {
                "code": "INVALID_INPUT",
                "message": "out_trade_no: must be a string",
                "problems": [{"field": "out_trade_no", "issue": "must be a string"}],
            }
        },
    )
    status, answer = post(server, "/sandbox/actions/dance", {})
    assert status == 404 and answer["error"]["code"] == "UNKNOWN_ACTION"
    status, answer = post(server, "/sandbox/triggers", {"event_type": "TRANSACTION.SUCCESS", "object": "T-none"})
    assert status == 404 and "T-none" in answer["error"]["message"]
    status, answer = post(server, "/sandbox/clock/advance", {"seconds": -5})
    assert status == 400 and answer["error"]["problems"] == [
        {"field": "seconds", "issue": "a test clock only moves forward"}
    ]


def test_the_world_survives_a_restart_in_its_state_dir(identity: SandboxIdentity, tmp_path: Path) -> None:
    first = Sandbox(identity, clock=TestClock())
    first.world.attach(tmp_path)
    engine = Engine(
        **identity.engine_settings(),
        base_url="sandbox://wechatpay",
        load_entry_points=False,
        plugins=[__import__("engine.plugins.sandbox_transport", fromlist=["x"]).SandboxTransportPlugin(first)],
    )
    with engine:
        engine.call(JSAPI, order("T-9"))
        engine.call(TRANSFER, TRANSFER_BILL)
    first.world.pay("T-9")
    first.time.advance(60)
    saved = tmp_path / "world.json"
    assert oct(saved.stat().st_mode & 0o777) == "0o600" and "张三" in saved.read_text(encoding="utf-8")
    second = Sandbox(identity, clock=TestClock())
    second.world.attach(tmp_path)
    assert {r.ref: r.state for r in second.world.store} == {"order/T-9": "SUCCESS", "transfer/B-1": "WAIT_USER_CONFIRM"}
    assert second.time.offset == 60 and len(second.world.outbox.callbacks) == 1
    assert second.world.store.by_id(
        "transaction_id", first.world.store.find(("order",), "T-9")[0].fields["transaction_id"]
    )
    assert os.path.exists(saved)


def test_every_control_route_is_wired_with_its_own_error_shape(served) -> None:
    import urllib.request

    server, _, engine = served
    assert post(server, "/sandbox/faults", {"kind": "drop"}) == (201, {"queued": 1, "endpoint": None})
    with urllib.request.urlopen(urllib.request.Request(server.base_url + "/sandbox/faults", method="DELETE")) as answer:
        assert answer.status == 204 and server.sandbox.faults.pending() == []
    engine.call(JSAPI, order("T-9"))
    with urllib.request.urlopen(server.base_url + "/sandbox/exchanges") as answer:
        assert [e["endpoint"] for e in json.loads(answer.read())][-1] == engine.endpoint(JSAPI).id
    status, rotated = post(server, "/sandbox/certificates/rotate", {})
    assert status == 200 and len(rotated["serial_no"]) == 40
    # the notify routes answer a bad body with a plain-text error, not the INVALID_INPUT problems
    assert post(server, "/sandbox/notify", b"[1]") == (400, {"error": "bad notification: 'url'"})
    assert post(server, "/sandbox/v2/notify", b"not json") == (400, {"error": "missing or bad 'out_trade_no'"})


# -- reads see whole changes ---------------------------------------------------------------------

DEAD_URL = "http://127.0.0.1:9/notify"  # nothing listens: callbacks stay pending


def get(server: ServerThread, path: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(server.base_url + path, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _half_shown(path: str, answer: Any) -> bool:
    """Whether ``answer`` shows order/HALF created but not yet paid, or paid without its callback."""
    objects = answer["objects"] if path == "/sandbox/state" else answer
    callbacks = answer["callbacks"] if path == "/sandbox/state" else answer
    if path == "/sandbox/callbacks":
        return not any(c["object"] == "order/HALF" for c in callbacks)
    states = [o["state"] for o in objects if o["ref"] == "order/HALF"]
    paid_with_callback = path != "/sandbox/state" or any(c["object"] == "order/HALF" for c in callbacks)
    return states != ["SUCCESS"] or not paid_with_callback


@pytest.mark.parametrize(
    "path", ["/sandbox/objects", "/sandbox/objects/order/HALF", "/sandbox/callbacks", "/sandbox/state"]
)
def test_a_read_waits_for_a_writer_in_another_thread_and_shows_its_whole_change(
    identity: SandboxIdentity, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A writer holds the store's lock across a two-step change (an order created, then paid with its
    callback queued): a read served meanwhile must answer after it, with both steps, never between."""
    import concurrent.futures
    import time

    from engine.sandbox import server as served_module

    monkeypatch.setattr(served_module, "TICK_SECONDS", 3600.0)  # the ticker takes the lock too: keep it out
    with ServerThread(Sandbox(identity, clock=TestClock())) as server, concurrent.futures.ThreadPoolExecutor(1) as pool:
        world = server.sandbox.world
        assert get(server, "/sandbox/clock")[0] == 200  # served, and the first tick is behind us
        with world.store.lock:
            record = world.store.create(
                "order", "direct", "HALF", {"transaction_id": "tx-half"}, world.now, notify_url=DEAD_URL
            )
            reading = pool.submit(get, server, path)
            time.sleep(1.0)
            answered_meanwhile = reading.done()
            world.transition(record, "SUCCESS", world.now)
        status, answer = reading.result(timeout=30)
    assert not answered_meanwhile and status == 200
    assert not _half_shown(path, answer), answer


def test_concurrent_writes_and_reads_on_the_served_sandbox_never_deadlock_or_tear(
    identity: SandboxIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders created and paid over HTTP, a blocking clock advance in another thread, the ticker every
    10 ms and world.json saves, against readers of every listing: all finish, and every snapshot is whole."""
    import concurrent.futures
    import threading

    from engine.sandbox import server as served_module

    monkeypatch.setattr(served_module, "TICK_SECONDS", 0.01)
    sandbox = Sandbox(identity, clock=TestClock(), object_limit=12)
    # The advancing thread moves the clock 20 s per loop, thousands of times a second once saves no
    # longer wait for each other: an order could expire (CLOSED, pay answered 409) between its creation
    # and its payment. Expiry is not what this test is about; retries, pruning and saves still run.
    sandbox.world.order_ttl = 10**9
    sandbox.world.attach(tmp_path)
    done = threading.Event()
    torn: list[Any] = []

    def write(server: ServerThread, prefix: str) -> None:
        with Engine(**identity.engine_settings(), base_url=server.base_url, load_entry_points=False) as engine:
            for n in range(25):
                number = f"{prefix}-{n}"
                engine.call(JSAPI, order(number, notify_url=DEAD_URL))
                status, _ = post(server, "/sandbox/actions/pay", {"out_trade_no": number})
                assert status in (202, 429)

    def advance() -> None:
        while not done.is_set():
            sandbox.time.advance(20)  # its own loop, in this thread: retries, expiries, saves

    def read(server: ServerThread) -> int:
        reads = 0
        while not done.is_set():
            _, snapshot = get(server, "/sandbox/state")
            held = {o["ref"] for o in snapshot["objects"]}
            for o in snapshot["objects"]:
                if o["state"] != o["history"][-1][1]:
                    torn.append(o)
            for c in snapshot["callbacks"]:  # a pending callback pins its object: the object is listed
                if c["state"] == "pending" and c["object"].startswith("order/") and c["object"] not in held:
                    torn.append(c)
            for path in ("/sandbox/objects", "/sandbox/callbacks"):
                assert get(server, path)[0] == 200
            reads += 1
        return reads

    with ServerThread(sandbox) as server, concurrent.futures.ThreadPoolExecutor(5) as pool:
        readers = [pool.submit(read, server) for _ in range(2)]
        ticking = pool.submit(advance)
        writers = [pool.submit(write, server, prefix) for prefix in ("A", "B")]
        try:
            for writer in writers:
                writer.result(timeout=120)
        finally:
            done.set()
        ticking.result(timeout=60)
        assert all(reader.result(timeout=60) > 0 for reader in readers)
        assert len(sandbox.world.store) <= 12 and len(sandbox.world.outbox.callbacks) <= 24
    assert torn == []
    saved = json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))
    assert len(saved["objects"]) <= 12


@pytest.mark.parametrize("answer", [b"<html>not a sandbox</html>", b"[" * 100_000, b"\xff\xfe"])
def test_a_server_that_is_not_a_sandbox_is_one_error_line(capsys, tmp_path: Path, answer: bytes) -> None:
    """The admin client parsed whatever answered with json.loads and caught nothing: a web server on
    the port named by sandbox.json (HTML), or deeply nested JSON, escaped main as a traceback."""
    import http.server
    import threading

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        (tmp_path / "sandbox.json").write_text(json.dumps({"base_url": base_url}), encoding="utf-8")
        status, out, err = cli(capsys, "sandbox", "objects", "--state-dir", str(tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert (status, out) == (2, None), out
    assert err == (
        f"error: what answers at {base_url} is not a sandbox's admin API (not JSON): "
        f"is {str(tmp_path)!r} the state dir of a running sandbox?\n"
    )
