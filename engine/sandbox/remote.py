"""``wechatpay sandbox pay|confirm-transfer|sign-contract|trigger|advance|...``: drive a served sandbox.

Design decisions:

* The commands find the sandbox the way a client does: ``--state-dir DIR`` (the directory given to
  ``wechatpay sandbox serve``, default the same) holds ``sandbox.json``, whose ``base_url`` names
  the running server; each command is one call of the admin API (``engine.sandbox.admin``).
* Plain ``urllib`` on loopback: these commands need nothing the standard library lacks.
* A refusal (no such object, a state that does not allow the action, an unknown event type, a
  sandbox that is not running, another server on its port answering what is not the admin API's
  JSON) is one ``error:`` line naming what is wrong and exit status 2, as for every other mistake
  on the command line; success prints the admin API's JSON answer.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from engine.serialize import UnreadableJsonError, decode_json

DEFAULT_STATE_DIR = ".wechatpay-sandbox"
TIMEOUT_SECONDS = 120.0  # an advance may walk through many due callbacks
MAX_ANSWER_BYTES = 64 << 20  # the objects or callbacks listing of a full sandbox, with room to spare
ACTIONS = {  # command -> (admin action, its number field, help)
    "pay": ("pay", "out_trade_no", "the user pays an order (or a combined order)"),
    "confirm-transfer": ("confirm-transfer", "out_bill_no", "the user confirms receipt of a transfer"),
    "sign-contract": ("sign-contract", "out_contract_code", "the user signs a pre-entrust-sign contract"),
    "terminate-contract": ("terminate-contract", "out_contract_code", "the user terminates a signed contract"),
    "settle-refund": ("settle-refund", "out_refund_no", "WeChat Pay finishes a refund"),
}


def add_parsers(actions: Any) -> None:
    """Add the commands to ``wechatpay sandbox``'s sub-parsers."""
    for command, (_, number, help_text) in ACTIONS.items():
        parser = actions.add_parser(command, help=help_text)
        parser.add_argument(number, metavar=number.upper())
        if command in ("pay", "confirm-transfer"):
            parser.add_argument("--fail", action="store_true", help="the payment (or transfer) fails instead")
        if command == "settle-refund":
            parser.add_argument("--state", default="SUCCESS", choices=["SUCCESS", "ABNORMAL", "CLOSED"])
        _state_dir(parser)
    trigger = actions.add_parser("trigger", help="send any event type: on an object, or on a throwaway one")
    trigger.add_argument("event_type", metavar="EVENT_TYPE", help="e.g. TRANSACTION.SUCCESS, REFUND.ABNORMAL")
    trigger.add_argument("--object", help="the merchant's number of an existing object (default: a new one)")
    trigger.add_argument("--forward-to", dest="forward_to", help="send the callback here instead of its notify_url")
    _state_dir(trigger)
    advance = actions.add_parser("advance", help="move the test clock ahead (90, 15s, 10m, 2h, 1d)")
    advance.add_argument("duration")
    _state_dir(advance)
    for name, help_text in (("objects", "list the objects and their states"), ("callbacks", "list callbacks")):
        _state_dir(actions.add_parser(name, help=help_text))


def _state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", default=DEFAULT_STATE_DIR, help="the served sandbox's directory (as given to serve)"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out one command against the served sandbox; print its answer."""
    client = AdminClient.from_state_dir(Path(args.state_dir))
    if args.action in ACTIONS:
        action, number, _ = ACTIONS[args.action]
        body: dict[str, Any] = {number: getattr(args, number)}
        if getattr(args, "fail", False):
            body["fail"] = True
        if args.action == "settle-refund":
            body["state"] = args.state
        answer = client.post(f"/sandbox/actions/{action}", body)
    elif args.action == "trigger":
        body = {"event_type": args.event_type}
        body.update({k: v for k, v in (("object", args.object), ("forward_to", args.forward_to)) if v})
        answer = client.post("/sandbox/triggers", body)
    elif args.action == "advance":
        answer = client.post("/sandbox/clock/advance", {"by": args.duration})
    else:
        answer = client.get(f"/sandbox/{args.action}")
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


class AdminClient:
    """The admin API of one served sandbox."""

    def __init__(self, base_url: str, where: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.where = where

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> "AdminClient":
        from engine.cli import CliError
        from engine.sandbox.state import read_manifest

        manifest = state_dir / "sandbox.json"
        content = read_manifest(state_dir)  # None for a FIFO, a binary file or JSON that is not an object
        if content is None:
            hint = "start 'wechatpay sandbox serve --state-dir' first"
            raise CliError(f"no sandbox.json in {str(state_dir)!r}: {hint}")
        base_url = content.get("base_url")
        if not base_url or not isinstance(base_url, str):
            raise CliError(f"{manifest} names no base_url: start 'wechatpay sandbox serve --state-dir {state_dir}'")
        return cls(str(base_url), str(state_dir))

    def get(self, path: str) -> Any:
        return self._send(urllib.request.Request(self.base_url + path, method="GET"))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        return self._send(request)

    def _send(self, request: urllib.request.Request) -> Any:
        from engine.cli import CliError
        from engine.errors import EngineError

        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                content = answer.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as refused:
            message = _error_message(refused.read())
            if refused.code < 500:
                raise CliError(message) from None
            raise EngineError(f"the sandbox failed ({refused.code}): {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            hint = f"start 'wechatpay sandbox serve --state-dir {self.where}'" if self.where else "is it running?"
            raise CliError(f"no sandbox answers at {self.base_url} ({reason}): {hint}") from None
        return self._parsed(content)

    def _parsed(self, content: bytes) -> Any:
        """The admin API's JSON answer; something else listening on the port (a web server, a proxy
        page) answers HTML or worse, which is said in one line, not a decoder's traceback."""
        from engine.cli import CliError

        problem = f"{len(content)} bytes or more, more than an admin answer" if len(content) > MAX_ANSWER_BYTES else ""
        try:
            parsed = None if problem else decode_json(content or b"null")
        except UnreadableJsonError:
            problem = "not JSON"
        if problem:
            hint = f"is {self.where!r} the state dir of a running sandbox?" if self.where else "is it a sandbox?"
            raise CliError(f"what answers at {self.base_url} is not a sandbox's admin API ({problem}): {hint}")
        return parsed


def _error_message(body: bytes) -> str:
    try:
        error: Optional[dict[str, Any]] = decode_json(body).get("error")
    except (UnreadableJsonError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return body.decode("utf-8", errors="replace")[:200] or "no details"
    return f"{error.get('code', 'ERROR')}: {error.get('message', '')}"
