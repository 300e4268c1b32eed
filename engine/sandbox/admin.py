"""The served sandbox's admin API under ``/sandbox/``: user actions, triggers, the test clock, faults.

Design decisions:

* This is the one place the control API is wired (``add_routes``) and its bodies are read
  (``_json_object``); ``SandboxServer`` only hands over its app, its sandbox and its ``tasks``
  (``engine.sandbox.tasks``), because the callbacks the notify routes start are tasks the server
  owns, and cancels and waits for on stop.
* ``POST /sandbox/notify`` and ``/sandbox/v2/notify`` start one delivery each, which lives until
  the receiver acknowledges or ``notify_schedule`` runs out (tens of seconds with the quick
  schedule and a receiver that never answers; 24 hours with the real one), holding a client
  session and a socket. At most ``delivery_limit`` are in flight (``SandboxServer``, default 100);
  past it a request is refused 429 ``{"error": {"code": "RATELIMIT_EXCEEDED", "message": ...}}``
  naming the limit, before a notification is built (signing it is the costly part), so a client
  posting in a loop gets refusals, not tasks and memory without bound. The room is asked after the
  body is read, the route's last ``await``: no other request can take it before the delivery
  starts. A delivery leaves the count when it ends.
  The outbox is bounded already, but these are not its callbacks and folding them in would change
  what these routes do: they retry on the wall clock with ``notify_schedule`` (the outbox on the
  business clock, on WeChat Pay's schedule), APIv2's are acknowledged by ``return_code`` SUCCESS
  (the outbox's by 200 or 204), they concern no object the store holds, and they are recorded in
  ``Sandbox.deliveries`` (and ``Sandbox.v2.deliveries``), not listed by ``/sandbox/callbacks``.
* Every route validates its JSON body first and reports every problem at once: a body that is not
  a JSON object, a missing or mistyped field, an unknown field, an unknown endpoint name. Problems
  stay structured (``field``, ``issue``) until they become the 400 answer
  ``{"error": {"code": "INVALID_INPUT", "message": ..., "problems": [...]}}``. The two notify
  routes are older and answer a bad request with 400 ``{"error": "<text>"}``; clients rely on it.
* A refusal from the sandbox (no such object, a state that does not allow the action, an unknown
  event type) is a 404/409/400 with ``{"error": {"code", "message"}}``, the message naming what is
  wrong; the CLI prints it as its one error line.
* Reads and the lock. The store and the outbox are changed under their locks (the store's, then
  the outbox's) by the served loop and by other threads (a blocking ``TestClock.advance``, an
  in-process engine on the same sandbox). The listings of objects and callbacks are built and
  serialised under ``World.consistent()`` (``_consistent``), so they never show half of a change;
  the JSON is written before the lock is let go, because the views share the records' field dicts.
  An action or trigger runs with the answer it gives under the store's lock (``_refusable``), so
  the state it reports is the one it made. Each of these holds a lock in synchronous code only,
  never across an ``await``: the ticker and a blocking advance wait for it at most as long as a
  view takes to build, and nothing waits on the loop while holding it. The other reads need no
  lock: the event types are constants; the clock is one offset read once, and a read of it races
  an advance only as a request sent a moment earlier or later would; the faults are not the
  store's. The exchanges are not the store's either: they are a ring other threads append to
  (``engine.sandbox.ring``), listed from one ``snapshot`` taken under the ring's own lock, so a
  call recorded meanwhile is in the listing or not, never a "deque mutated during iteration".
* Routes (all JSON; the inspector's page and stream live in ``engine.sandbox.inspector``)::

      POST /sandbox/actions/pay               {"out_trade_no", "fail"?}
      POST /sandbox/actions/confirm-transfer  {"out_bill_no", "fail"?}
      POST /sandbox/actions/sign-contract     {"out_contract_code"}
      POST /sandbox/actions/terminate-contract {"out_contract_code"}      (the user terminates)
      POST /sandbox/actions/settle-refund     {"out_refund_no", "state"?}  (SUCCESS, ABNORMAL, CLOSED)
      POST /sandbox/triggers                  {"event_type", "object"?, "forward_to"?}
      GET  /sandbox/events                    the event types triggers accept
      GET  /sandbox/clock                     business and wire time
      POST /sandbox/clock/advance             {"seconds"} or {"by": "2h"}
      GET  /sandbox/objects[/{kind}/{number}]  objects and their states (secrets masked)
      GET  /sandbox/callbacks                 callbacks and their delivery attempts
      POST /sandbox/faults                    {"kind", "endpoint"?, "times"?, "status"?, ...}
      DELETE /sandbox/faults                  every queued fault
      POST /sandbox/certificates/rotate       a new platform certificate; answers its serial_no
      POST /sandbox/notify                    {"out_contract_code"} or {"url", "out_trade_no"} or
                                              {"url", "event_type", "resource"?, ...}: one callback
      POST /sandbox/v2/notify                 {"url", "kind"?, "out_trade_no", ...}: an APIv2 callback
      GET  /sandbox/exchanges                 the calls served so far

  Actions and triggers answer 202 with the object and the callback they queued.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from aiohttp import web

from engine.errors import UnknownEndpointError, UsageError
from engine.sandbox.clock import parse_duration
from engine.sandbox.faults import KINDS, Fault
from engine.sandbox.objects import RefusedError
from engine.sandbox.tasks import Tasks
from engine.sandbox.triggers import event_types
from engine.serialize import UnreadableJsonError, decode_json

if TYPE_CHECKING:
    from engine.sandbox.emulator import Sandbox
    from engine.sandbox.world import World

Problem = dict[str, str]
Spec = dict[str, tuple[type | tuple[type, ...], bool]]  # field -> (types, required)
REFUND_STATES = ("SUCCESS", "ABNORMAL", "CLOSED")


def add_routes(app: web.Application, sandbox: "Sandbox", tasks: Tasks) -> None:
    """Register the admin API for ``sandbox`` on ``app`` (before the catch-all WeChat Pay route)."""
    routes = Routes(sandbox, tasks)
    app.router.add_post("/sandbox/certificates/rotate", routes.rotate)
    app.router.add_post("/sandbox/faults", routes.add_fault)
    app.router.add_delete("/sandbox/faults", routes.clear_faults)
    app.router.add_post("/sandbox/notify", routes.notify)
    app.router.add_post("/sandbox/v2/notify", routes.notify_v2)
    app.router.add_get("/sandbox/exchanges", routes.exchanges)
    app.router.add_post("/sandbox/actions/{action}", routes.action)
    app.router.add_post("/sandbox/triggers", routes.trigger)
    app.router.add_get("/sandbox/events", routes.events)
    app.router.add_get("/sandbox/clock", routes.clock)
    app.router.add_post("/sandbox/clock/advance", routes.advance)
    app.router.add_get("/sandbox/objects", routes.objects)
    app.router.add_get("/sandbox/objects/{kind}/{number}", routes.one_object)
    app.router.add_get("/sandbox/callbacks", routes.callbacks)


class Routes:
    def __init__(self, sandbox: "Sandbox", tasks: Tasks) -> None:
        self.sandbox = sandbox
        self.world = sandbox.world
        self.tasks = tasks
        self._actions: dict[str, tuple[Spec, Callable[[dict[str, Any]], Any]]] = {
            "pay": (
                {"out_trade_no": (str, True), "fail": (bool, False)},
                lambda b: self.world.pay(b["out_trade_no"], fail=b.get("fail", False)),
            ),
            "confirm-transfer": (
                {"out_bill_no": (str, True), "fail": (bool, False)},
                lambda b: self.world.confirm_transfer(b["out_bill_no"], fail=b.get("fail", False)),
            ),
            "sign-contract": (
                {"out_contract_code": (str, True)},
                lambda b: self.world.sign_contract(b["out_contract_code"]),
            ),
            "terminate-contract": ({"out_contract_code": (str, True)}, self._terminate),
            "settle-refund": ({"out_refund_no": (str, True), "state": (str, False)}, self._settle),
        }

    async def action(self, http: web.Request) -> web.Response:
        name = http.match_info["action"]
        if name not in self._actions:
            known = ", ".join(self._actions)
            return _error(404, "UNKNOWN_ACTION", f"no action {name!r}; the actions are: {known}")
        spec, run = self._actions[name]
        body, problems = await _validated(http, spec)
        if problems:
            return _invalid(problems)
        return _refusable(self.world, lambda: self._acted(run(body), body))

    def _acted(self, callback: Any, body: dict[str, Any]) -> web.Response:
        number = next(v for k, v in body.items() if k.startswith("out_"))
        record = next(iter(self.world.store.find(("order", "combine_order", "refund", "transfer", "contract"), number)))
        return web.json_response(_outcome(record, callback), status=202)

    def _terminate(self, body: dict[str, Any]) -> Any:
        record = self.world.find(("contract",), body["out_contract_code"])
        return self.world.terminate_contract(record, self.world.now)

    def _settle(self, body: dict[str, Any]) -> Any:
        state = body.get("state", "SUCCESS")
        if state not in REFUND_STATES:
            raise RefusedError(400, "INVALID_INPUT", f"state must be one of {', '.join(REFUND_STATES)}, got {state!r}")
        return self.world.settle_refund(body["out_refund_no"], state)

    async def trigger(self, http: web.Request) -> web.Response:
        spec: Spec = {"event_type": (str, True), "object": (str, False), "forward_to": (str, False)}
        body, problems = await _validated(http, spec)
        url = body.get("forward_to")
        if url is not None and not url.startswith(("http://", "https://")):
            problems.append({"field": "forward_to", "issue": "must be an http:// or https:// URL"})
        if problems:
            return _invalid(problems)

        def run() -> web.Response:
            record, callback = self.world.trigger(body["event_type"], body.get("object"), url)
            return web.json_response(_outcome(record, callback), status=202)

        return _refusable(self.world, run)

    async def events(self, http: web.Request) -> web.Response:
        listing = [
            {"event_type": e.name, "kinds": list(e.kinds), "states": list(e.states), "original_type": e.original_type}
            for e in event_types().values()
        ]
        return web.json_response(listing)

    async def clock(self, http: web.Request) -> web.Response:
        return web.json_response(clock_view(self.sandbox))

    async def advance(self, http: web.Request) -> web.Response:
        body, problems = await _validated(http, {"seconds": ((int, float), False), "by": (str, False)})
        seconds: Optional[float] = body.get("seconds")
        if "by" in body:
            try:
                seconds = parse_duration(body["by"])
            except UsageError as exc:
                problems.append({"field": "by", "issue": str(exc)})
        if seconds is None and not problems:
            problems.append({"field": "seconds", "issue": "give seconds (a number) or by (a duration such as 2h)"})
        elif seconds is not None and seconds < 0:
            problems.append({"field": "seconds", "issue": "a test clock only moves forward"})
        if problems:
            return _invalid(problems)
        assert seconds is not None
        await self.sandbox.time.aadvance(seconds)
        return web.json_response(clock_view(self.sandbox))

    async def objects(self, http: web.Request) -> web.Response:
        from engine.sandbox.inspector import object_view

        _, text = self._consistent(lambda: [object_view(record) for record in self.world.store])
        return web.json_response(text=text)

    async def one_object(self, http: web.Request) -> web.Response:
        from engine.sandbox.inspector import object_view

        kind, number = http.match_info["kind"], http.match_info["number"]
        found, text = self._consistent(lambda: [object_view(r) for r in self.world.store.find((kind,), number)])
        if not found:
            return _error(404, "RESOURCE_NOT_EXISTS", f"no {kind} with number {number!r} in this sandbox")
        return web.json_response(text=text)

    async def callbacks(self, http: web.Request) -> web.Response:
        from engine.sandbox.inspector import callback_view

        _, text = self._consistent(lambda: [callback_view(c) for c in self.world.outbox.callbacks])
        return web.json_response(text=text)

    def _consistent(self, build: Callable[[], Any]) -> tuple[Any, str]:
        """What ``build`` returns and its JSON, both made while no writer acts (see the module docstring)."""
        with self.world.consistent():
            built = build()
            return built, json.dumps(built)

    async def rotate(self, http: web.Request) -> web.Response:
        return web.json_response({"serial_no": self.sandbox.rotate_certificate()})

    async def add_fault(self, http: web.Request) -> web.Response:
        """``POST /sandbox/faults``: queue a fault, after checking every field of the request."""
        spec: Spec = {
            "kind": (str, True),
            "endpoint": (str, False),
            "times": (int, False),
            "status": (int, False),
            "code": (str, False),
            "message": (str, False),
            "seconds": ((int, float), False),
            "retry_after": (int, False),
        }
        body, problems = await _validated(http, spec)
        problems += _fault_problems(body)
        endpoint_id = ""
        if not problems and "endpoint" in body:
            try:
                endpoint_id = self.sandbox.faults.endpoint_id(body["endpoint"])
            except UnknownEndpointError as exc:
                problems.append({"field": "endpoint", "issue": str(exc)})
        if problems:
            return _invalid(problems)
        if body["kind"] == "error":
            fault = Fault.error(
                body.get("status", 500), body.get("code", ""), body.get("message", ""), body.get("retry_after")
            )
        else:
            fault = Fault(body["kind"], seconds=float(body.get("seconds", 0.0)))
        self.sandbox.faults.add(fault, endpoint=endpoint_id or None, times=body.get("times", 1))
        return web.json_response({"queued": len(self.sandbox.faults), "endpoint": endpoint_id or None}, status=201)

    async def clear_faults(self, http: web.Request) -> web.Response:
        self.sandbox.faults.clear()
        return web.Response(status=204)

    async def exchanges(self, http: web.Request) -> web.Response:
        listing = [
            {
                "method": e.request.method,
                "target": e.request.target,
                "status": e.response.status,
                "endpoint": e.endpoint_id,
            }
            for e in self.sandbox.exchanges.snapshot()
        ]
        return web.json_response(listing)

    async def notify(self, http: web.Request) -> web.Response:
        spec, _ = await _json_object(http)  # not an object: {}, and the keys it lacks make the 400
        full = self._no_room()  # after the last await: the room it finds is still there at the start
        if full is not None:
            return full
        try:
            url, notification = self._notification(spec)
        except (LookupError, TypeError, ValueError, AttributeError) as exc:
            return web.json_response({"error": f"bad notification: {exc}"}, status=400)
        self.tasks.start_delivery(self.sandbox.notify(url, notification))
        return web.json_response({"id": json.loads(notification.body)["id"], "url": url}, status=202)

    def _no_room(self) -> Optional[web.Response]:
        """The 429 answer when the deliveries in flight are at their limit; None when one more fits."""
        try:
            self.tasks.check_room()
        except RefusedError as refusal:
            return _refused(refusal)
        return None

    def _notification(self, spec: dict[str, Any]) -> tuple[str, Any]:
        if "out_contract_code" in spec:
            url, notification = self.sandbox.contract_signed(spec["out_contract_code"])
            return spec.get("url", url), notification
        if "out_trade_no" in spec:
            return spec["url"], self.sandbox.payment_succeeded(spec["out_trade_no"], int(spec.get("total", 1)))
        if "resource" not in spec:  # any catalogued event type, its resource shaped from the catalogue
            return spec["url"], self.sandbox.event(spec["event_type"])
        resource = spec["resource"]
        original_type = spec.get("original_type", "transaction")
        event = spec["event_type"]
        return spec["url"], self.sandbox.notification(
            event, resource, summary=spec.get("summary", ""), original_type=original_type
        )

    async def notify_v2(self, http: web.Request) -> web.Response:
        """``{"url", "kind": "payment", "out_trade_no", "total_fee", "sign_type"}`` or
        ``{"url", "kind": "refund", "out_refund_no", "out_trade_no", "refund_fee", "total_fee"}``."""
        spec, _ = await _json_object(http)
        full = self._no_room()  # as in notify
        if full is not None:
            return full
        desk = self.sandbox.v2
        try:
            if spec.get("kind") == "refund":
                notification = desk.refund_notification(
                    spec["out_refund_no"],
                    spec["out_trade_no"],
                    int(spec.get("refund_fee", 1)),
                    int(spec.get("total_fee", 1)),
                )
            else:
                sign_type = spec.get("sign_type", "MD5")
                notification = desk.payment_notification(
                    spec["out_trade_no"], int(spec.get("total_fee", 1)), sign_type=sign_type
                )
            url = spec["url"]
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": f"missing or bad {exc}"}, status=400)
        self.tasks.start_delivery(desk.deliver(url, notification))
        return web.json_response({"url": url, "kind": spec.get("kind", "payment")}, status=202)


def _fault_problems(body: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    if "kind" in body and body["kind"] not in KINDS:
        problems.append({"field": "kind", "issue": f"must be one of {', '.join(KINDS)}"})
    limits = {"times": (1, None), "status": (100, 599), "seconds": (0, 600), "retry_after": (0, 86400)}
    for name, (low, high) in limits.items():
        value = body.get(name)
        if isinstance(value, (int, float)) and (value < low or (high is not None and value > high)):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            problems.append({"field": name, "issue": f"must be {bound}, got {value}"})
    return problems


def clock_view(sandbox: "Sandbox") -> dict[str, Any]:
    from engine.sandbox.objects import rfc3339

    now = sandbox.time.now()
    return {"now": rfc3339(now), "now_unix": now, "wire_unix": sandbox.time(), "offset_seconds": sandbox.time.offset}


def _outcome(record: Any, callback: Any) -> dict[str, Any]:
    queued = None if callback is None else {"id": callback.id, "event_type": callback.event_type, "url": callback.url}
    if record is None:  # a catalogue event with no object behind it
        return {"object": None, "scope": None, "state": None, "callback": queued}
    return {"object": record.ref, "scope": record.scope, "state": record.state, "callback": queued}


async def _json_object(http: web.Request) -> tuple[dict[str, Any], list[Problem]]:
    """The body as a JSON object (an empty body counts as {}), or {} and why it is not one."""
    raw = await http.read()
    try:
        body = decode_json(raw) if raw.strip() else {}
    except UnreadableJsonError:
        return {}, [{"field": "", "issue": "the body is not JSON"}]
    if not isinstance(body, dict):
        return {}, [{"field": "", "issue": "the body must be a JSON object"}]
    return body, []


async def _validated(http: web.Request, spec: Spec) -> tuple[dict[str, Any], list[Problem]]:
    """The JSON body and every problem with it: not an object, or each field against ``spec``."""
    body, problems = await _json_object(http)
    if problems:
        return body, problems
    problems = [{"field": k, "issue": "unknown field"} for k in body if k not in spec]
    for name, (types, required) in spec.items():
        if name not in body:
            if required:
                problems.append({"field": name, "issue": "required"})
        elif not isinstance(body[name], types) or (isinstance(body[name], bool) and bool not in _tuple(types)):
            problems.append({"field": name, "issue": f"must be {_type_names(types)}"})
    return body, problems


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", bool: "true or false", int: "a whole number", float: "a number"}
    return " or ".join(names.get(t, t.__name__) for t in _tuple(types))


def _invalid(problems: list[Problem]) -> web.Response:
    message = "; ".join(f"{p['field'] or 'body'}: {p['issue']}" for p in problems)
    return web.json_response({"error": {"code": "INVALID_INPUT", "message": message, "problems": problems}}, status=400)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _refusable(world: "World", run: Callable[[], web.Response]) -> web.Response:
    """``run`` (an action and the answer saying what it did) under the store's lock; a refusal's answer."""
    try:
        with world.store.lock:
            return run()
    except RefusedError as refusal:
        return _refused(refusal)


def _refused(refusal: RefusedError) -> web.Response:
    return _error(refusal.status, refusal.code, refusal.message)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
