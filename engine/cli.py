"""The ``wechatpay`` command: call any endpoint from a shell, against WeChat Pay or the sandbox.

Design decisions:

* ``wechatpay call ENDPOINT --data JSON|@file [--sandbox]`` prints the verified answer as JSON
  (status, Request-ID, the key that verified it, data) on stdout; nothing else goes to stdout.
* Credentials come from flags or ``WECHATPAY_*`` variables; the APIv3 and APIv2 keys only from the
  environment, because command lines are visible to other users of the machine. APIv2's client
  certificate is ``WECHATPAY_CLIENT_CERTIFICATE`` (``apiclient_cert.pem``), with
  ``WECHATPAY_CLIENT_KEY`` or else the private key; an APIv2-only merchant sets no APIv3 variable.
* ``--private-key`` may be given PEM text rather than a path (the engine takes both), so argparse
  boxes it in ``engine.secret.Secret`` as it parses (``type=Secret``), and the settings of
  ``--sandbox-state`` (which hold the APIv3 and APIv2 keys themselves) are boxed as they are read:
  neither the namespace's repr nor a traceback's frames show a key, and only the engine's
  innermost cryptographic calls open the box.
* ``--data`` is boxed as parsed too, and so are the text of ``--data @file`` and the parsed payload,
  up to ``Engine.call``, which keeps it boxed: a payload may carry the plaintext of encrypted fields
  (pay_bank's card number and name), and a traceback's frames (what error trackers record) must not
  show it. A refused ``--data`` (not JSON, nested too deeply, not UTF-8) is raised outside the
  ``except`` block, so it carries no decoder error whose ``doc`` or frames hold the text. ``main``
  lets go of ``argv`` once parsed. (Inline ``--data`` is still on the command line, which other
  users of the machine can read: ``--data @file`` keeps it off.) No other flag carries a secret
  value.
* A user mistake prints one ``error: ...`` line on stderr and exits 2; an answer WeChat Pay refused,
  a failed verification or a network failure exits 1. No traceback for either: every expected
  failure is an ``EngineError`` with a message that says what to fix.
* ``sandbox serve`` judges its flags before binding: a port outside 0-65535 (a bare OverflowError
  from bind), an empty ``--host`` (every interface, the opposite of the loopback default), a
  ``--state-dir`` that is a file or holds a manifest that cannot be read are each one line.
* A file named on the command line (``--data @file``, ``--headers``, ``--body``) is read only if it
  is a regular file of at most ``MAX_INPUT_BYTES``, and must be UTF-8 where it is text: a FIFO,
  ``/dev/zero`` or a binary file is one ``error:`` line, never a read that blocks or a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from engine import __version__, doctor, environment
from engine.client import Engine
from engine.configuration import DEFAULT_BASE_URL
from engine.errors import ConfigurationError, EngineError, NotificationError, UsageError, ValidationError
from engine.files import Unread, read_regular_file
from engine.registry import BUILTIN_ENDPOINTS, Registry
from engine.sandbox import remote
from engine.sandbox.objects import DEFAULT_OBJECT_LIMIT
from engine.sandbox.tasks import DEFAULT_DELIVERY_LIMIT
from engine.secret import Secret, hide_settings
from engine.serialize import UnreadableJsonError, decode_json
from engine.untyped import Untyped

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_INPUT_BYTES = 16 << 20  # a payload, headers or callback body file; far above any real one

ENVIRONMENT = environment.ENVIRONMENT  # setting -> variable, read by the same reader as Engine.from_env

FLAGS = {
    "platform_public_key": "--public-key",
    "platform_public_key_id": "--public-key-id",
    "platform_certificates": "--platform-certificate",
}


class CliError(Exception):
    """A mistake on the command line; becomes one ``error:`` line and exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wechatpay", description="WeChat Pay APIv3 from the command line.")
    parser.add_argument("--version", action="version", version=f"wechatpay-engine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", help="call an endpoint and print the verified answer")
    call.add_argument("endpoint", help="an endpoint id or alias, or 'METHOD /v3/path'")
    call.add_argument(  # boxed as parsed: a payload may hold plaintext of encrypted fields
        "--data", type=Secret, default=None, help="the payload: JSON text, or @FILE to read it from a file"
    )
    call.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="an extra header")
    call.add_argument("--sandbox", action="store_true", help="answer from the embedded sandbox (no network)")
    call.add_argument("--wire", action="store_true", help="with --sandbox: show the request as sent on stderr")
    _add_credential_flags(call)
    sandbox = commands.add_parser("sandbox", help="the WeChat Pay emulator").add_subparsers(
        dest="action", required=True
    )
    serve = sandbox.add_parser("serve", help="serve the sandbox over HTTP until Ctrl-C")
    serve.add_argument(
        "--host", type=_host, default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)"
    )
    serve.add_argument("--port", type=_port, default=0, help="port (default: a free one, written to sandbox.json)")
    serve.add_argument("--state-dir", default=".wechatpay-sandbox", help="where keys and sandbox.json live")
    serve.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
    serve.add_argument(
        "--record-limit",
        type=_positive_int,
        default=1000,
        help="how many of the newest exchanges and deliveries to keep (default 1000: memory stays flat)",
    )
    serve.add_argument(
        "--object-limit",
        type=_positive_int,
        default=DEFAULT_OBJECT_LIMIT,
        help=(
            f"how many objects (orders, refunds ...) to keep (default {DEFAULT_OBJECT_LIMIT}): "
            "past it the oldest settled ones are forgotten and answer as unknown"
        ),
    )
    serve.add_argument(
        "--callback-limit",
        type=_positive_int,
        default=None,
        help=(
            "how many callbacks to keep (default: twice --object-limit): past it finished ones are "
            "forgotten, and an action whose callback would not fit is refused 429"
        ),
    )
    serve.add_argument(
        "--delivery-limit",
        type=_positive_int,
        default=DEFAULT_DELIVERY_LIMIT,
        help=(
            f"how many callbacks from /sandbox/notify may be in flight at once (default {DEFAULT_DELIVERY_LIMIT}): "
            "past it those routes answer 429"
        ),
    )
    remote.add_parsers(sandbox)  # pay, confirm-transfer, sign-contract, trigger, advance ... on a served sandbox
    certificates = commands.add_parser("certificates", help="platform certificates").add_subparsers(
        dest="action", required=True
    )
    download = certificates.add_parser("download", help="download, verify and save the platform certificates")
    download.add_argument("--out", required=True, help="directory for <serial>.pem files")
    download.add_argument("--sandbox", action="store_true", help="download from the embedded sandbox")
    _add_credential_flags(download)
    notify = commands.add_parser("notify", help="callbacks").add_subparsers(dest="action", required=True)
    verify = notify.add_parser("verify", help="verify and decrypt a callback; print the event or why it was rejected")
    verify.add_argument("--headers", required=True, help="a file: a JSON object, or 'Name: value' lines")
    verify.add_argument("--body", required=True, help="a file with the raw body as received")
    _add_credential_flags(verify)
    doctor.add_parser(commands, _add_credential_flags)
    endpoints = commands.add_parser("endpoints", help="discover endpoints").add_subparsers(dest="action")
    listing = endpoints.add_parser("list", help="list operations: short name, method, path, title, canonical id")
    listing.add_argument(
        "--grep",
        action="append",
        default=[],
        metavar="WORD",
        help="only operations whose id, short name, method, path or title contains WORD (any case; repeat: all)",
    )
    listing.add_argument("--json", action="store_true", help="a JSON array of {id, name, aliases, method, path, ...}")
    listing.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
    show = endpoints.add_parser("show", help="method, path, request and answer fields, an example payload")
    show.add_argument("endpoint", help="an id, a short name or alias, or 'METHOD /path'")
    show.add_argument("--json", action="store_true", help="the same as one JSON object")
    show.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
    return parser


def _add_credential_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("credentials (default: WECHATPAY_* environment variables)")
    group.add_argument("--mchid")
    group.add_argument("--serial-no", dest="serial_no", help="merchant API certificate serial")
    group.add_argument(  # boxed as parsed: the engine takes PEM text as well as a path
        "--private-key", dest="private_key", type=Secret, help="merchant private key file (apiclient_key.pem)"
    )
    group.add_argument("--public-key", dest="platform_public_key", help="WeChat Pay public key file")
    group.add_argument("--public-key-id", dest="platform_public_key_id", help="PUB_KEY_ID_...")
    group.add_argument("--platform-certificate", dest="platform_certificates", action="append", help="certificate file")
    group.add_argument(
        "--pay-bank-public-key", dest="pay_bank_public_key", help="APIv2 pay_bank's RSA key file (risk/getpublickey)"
    )
    group.add_argument("--base-url", dest="base_url")
    group.add_argument("--sandbox-state", help="use the credentials and URL of a served sandbox (its state dir)")
    group.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer (default 30)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    argv = None  # parsed (--data boxed in args): this frame, shown by a traceback, no longer holds the raw text
    try:
        return _run(args)
    except CliError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ValidationError as exc:
        return _fail(f"invalid payload for {exc.endpoint_id}: " + "; ".join(exc.errors), EXIT_USAGE)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except NotificationError as exc:
        return _fail(f"rejected ({type(exc).__name__}): {exc}", EXIT_FAILED)
    except EngineError as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _run(args: argparse.Namespace) -> int:
    if args.command == "endpoints":
        return _endpoints(args)
    if args.command == "sandbox":
        return _serve_sandbox(args) if args.action == "serve" else remote.run(args)
    if args.command == "doctor":
        return doctor.run(args, _raw_settings(args))
    if args.command == "certificates":
        return _download_certificates(args)
    if args.command == "notify":
        return _verify_notification(args)
    payload = read_payload(args.data)
    engine = _engine(args)
    with engine:
        response = engine.call(Untyped(args.endpoint), payload, headers=_headers(args.header))
        if args.wire and engine.emulator is not None:
            _show_wire(engine)
    answer = {
        "status": response.status,
        "request_id": response.request_id,
        "verified_with": response.verified_with,
        "data": response.data,
    }
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return EXIT_OK


def read_payload(data: Optional[Secret]) -> Optional[Secret]:
    """``--data`` (boxed as parsed) as JSON text or ``@file``, parsed and boxed; ``None`` when absent.

    The text, the file's content and the payload are only ever held in a ``Secret`` (opened inline,
    never bound to a local name): a payload may hold plaintext of encrypted fields.
    """
    if data is None:
        return None
    source = "--data"
    if data.reveal().startswith("@"):
        source = f"--data file {data.reveal()[1:]!r}"
        data = _text(Secret(_read_input(Path(data.reveal()[1:]), source)), source)
    return _json(data, source)


def _json(text: Secret, source: str) -> Secret:
    """``text`` parsed, boxed. The refusal is raised after the ``except`` block, so it has no context:
    a ``JSONDecodeError`` holds the whole text (``doc``), and so do the decoder's frames in its traceback."""
    try:
        return Secret(decode_json(text.reveal()))
    except UnreadableJsonError as exc:
        problem = f"{source} {exc}"
    raise CliError(problem)


def _read_input(path: Path, source: str) -> bytes:
    """A file named on the command line, read whole if it is a regular file of at most
    ``MAX_INPUT_BYTES``: a FIFO or a device would block or never end (``--data @/dev/zero``)."""
    content = read_regular_file(path, MAX_INPUT_BYTES)
    if isinstance(content, Unread):
        raise CliError(f"cannot read {source}: {content.reason}")
    return content


def _text(data: Secret, source: str) -> Secret:
    """``data`` (boxed bytes) decoded, boxed; refused, as ``_json`` refuses, with no context holding the bytes."""
    try:
        return Secret(data.reveal().decode("utf-8"))
    except UnicodeDecodeError as exc:
        position = exc.start
    raise CliError(f"{source} is not UTF-8 text (byte {position})")


def _headers(pairs: Sequence[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {pair!r} is not NAME:VALUE")
        headers[name.strip()] = value.strip()
    return headers


def _endpoint_dirs(args: argparse.Namespace) -> list[Path]:
    """The ``--endpoint-dir`` directories; one that is not a directory is an error, not a silent skip."""
    dirs = [Path(d) for d in getattr(args, "endpoint_dir", [])]
    for directory in dirs:
        if not directory.is_dir():
            raise CliError(f"--endpoint-dir {str(directory)!r} is not a directory")
    return dirs


def _engine(args: argparse.Namespace, **extra: Any) -> Engine:
    dirs = _endpoint_dirs(args)
    if getattr(args, "sandbox", False):
        return Engine.sandbox(endpoint_dirs=dirs, timeout=args.timeout, **extra)
    settings = _credentials(args)
    return Engine(**{**settings, **extra}, endpoint_dirs=dirs, timeout=args.timeout)


def _credentials(args: argparse.Namespace) -> dict[str, Any]:
    if args.sandbox_state:
        return _sandbox_credentials(Path(args.sandbox_state))
    settings = environment.values(_given(args))
    absent = environment.missing(settings)
    if absent:
        raise CliError(f"missing credentials: set {', '.join(absent)} (or the matching flags), or use --sandbox")
    settings = environment.paired_client_certificate(settings)  # apiclient_cert.pem goes with apiclient_key.pem
    settings.setdefault("base_url", DEFAULT_BASE_URL)
    return settings


def _raw_settings(args: argparse.Namespace) -> environment.Sourced:
    """Each setting given, with where it came from (the flag or variable to name when it is wrong)."""
    if args.sandbox_state:
        settings = _sandbox_credentials(Path(args.sandbox_state))
        return {name: (value, f"--sandbox-state {args.sandbox_state}") for name, value in settings.items()}
    return _given(args)


def _given(args: argparse.Namespace) -> environment.Sourced:
    """What ``Engine.from_env`` reads (``engine.environment``), each with its source; a flag given wins."""
    flags = {name: (value, _flag(name)) for name in ENVIRONMENT if (value := getattr(args, name, None)) is not None}
    environment.refuse_empty(environment.values(flags), "flags", _flag)  # --mchid "" is a mistake, not "unset"
    return {**environment.read_sources(), **flags}


def _flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _sandbox_credentials(state_dir: Path) -> dict[str, Any]:
    from engine.sandbox import state

    try:  # boxed as read: the state holds the APIv3 and APIv2 keys themselves
        return hide_settings(state.engine_settings(state_dir))
    except (ConfigurationError, KeyError):  # no manifest to read (state.read_manifest), or one lacking a setting
        hint = "start 'wechatpay sandbox serve --state-dir' first"
        raise CliError(f"no sandbox.json in {str(state_dir)!r}: {hint}") from None


def _download_certificates(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:  # made here, so a file where the directory should be is one line, not the engine's FileExistsError
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot use --out {args.out!r}: {exc.strerror or exc}") from None
    extra = {"mode": "certificate", "platform_certificates": []} if args.sandbox else {}
    with _engine(args, certificates_dir=out, **extra) as engine:
        serials = engine.download_certificates()
    for serial in serials:
        print(f"{serial}  {out / (serial + '.pem')}")
    return EXIT_OK


def _verify_notification(args: argparse.Namespace) -> int:
    headers = _read_headers(Path(args.headers))
    body = _read_input(Path(args.body), f"--body file {args.body!r}")
    with _engine(args) as engine:
        notification = engine.parse_notification(headers, body)
    event = {
        "id": notification.id,
        "event_type": notification.event_type,
        "create_time": notification.create_time,
        "summary": notification.summary,
        "verified_with": notification.verified_with,
        "resource": notification.resource,
    }
    print(json.dumps(event, ensure_ascii=False, indent=2))
    return EXIT_OK


def _read_headers(path: Path) -> dict[str, str]:
    source = f"--headers file {str(path)!r}"
    text = _text(Secret(_read_input(path, source)), source).reveal()  # headers hold no secret
    if text.lstrip().startswith("{"):
        try:
            return {str(k): str(v) for k, v in decode_json(text).items()}
        except (UnreadableJsonError, AttributeError):
            raise CliError(f"--headers file {str(path)!r} is not a JSON object") from None
    pairs = [line.partition(":") for line in text.splitlines() if line.strip()]
    return {name.strip(): value.strip() for name, _, value in pairs}


def _show_wire(engine: Engine) -> None:
    """What crossed the (in-process) wire: encrypted fields show as the ciphertext that was sent."""
    exchange = engine.emulator.last
    request, answer = exchange.request, exchange.response
    scheme = request.headers["Authorization"].split(" ", 1)[0]
    lines = [f"> {request.method} {request.target}"]
    shown = [name for name in ("Wechatpay-Serial", "Content-Type") if name in request.headers]
    lines += [f"> {name}: {request.headers[name]}" for name in shown]
    lines.append(f"> Authorization: {scheme} <signature checked by the sandbox>")
    lines.append(f"> {request.body.decode('utf-8')}")
    lines.append(f"< {answer.status}, signed by {answer.headers.get('Wechatpay-Serial', '')}")
    print("\n".join(lines), file=sys.stderr)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:20]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    """A TCP port: bind() refuses one outside 0-65535 with a bare OverflowError."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:20]!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be from 0 to 65535 (0: a free one)")
    return value


def _host(text: str) -> str:
    """An address to bind: not empty, which asyncio takes as every interface, the opposite of the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: give an address (0.0.0.0 for every interface)")
    try:
        text.encode("idna")  # as getaddrinfo encodes it: an empty label or one past 63 characters fails
    except UnicodeError:
        raise argparse.ArgumentTypeError(f"not a host name: {text[:40]!r}") from None
    return text


def _serve_sandbox(args: argparse.Namespace) -> int:
    from engine.sandbox import Sandbox, state
    from engine.sandbox.clock import TestClock
    from engine.sandbox.server import serve_forever

    endpoint_dirs = _endpoint_dirs(args)  # before anything is made on disk
    state_dir = Path(args.state_dir)
    try:
        identity = state.load_or_create(state_dir)
    except OSError as exc:  # a file where the directory should be, a directory that cannot be made
        raise CliError(f"cannot use --state-dir {args.state_dir!r}: {exc.strerror or exc}") from None
    registry = Registry([BUILTIN_ENDPOINTS, *endpoint_dirs])
    sandbox = Sandbox(  # real time until advanced
        identity,
        registry,
        clock=TestClock(),
        record_limit=args.record_limit,
        object_limit=args.object_limit,
        callback_limit=args.callback_limit,
    )
    sandbox.world.attach(state_dir)  # objects, callbacks and the clock's offset survive a restart

    def ready(server: Any) -> None:
        manifest = state.write_manifest(identity, state_dir, server.base_url)
        print(
            f"WeChat Pay sandbox at {server.base_url} (credentials: {manifest.resolve()}; "
            f"inspector: {server.base_url}/sandbox/); Ctrl-C stops it",
            flush=True,
        )

    try:
        asyncio.run(serve_forever(sandbox, args.host, args.port, on_ready=ready, delivery_limit=args.delivery_limit))
    except OSError as exc:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        print("sandbox stopped", file=sys.stderr)
    return EXIT_OK


def _endpoints(args: argparse.Namespace) -> int:
    registry = Registry([BUILTIN_ENDPOINTS, *_endpoint_dirs(args)])
    if args.action == "show":
        return _show_endpoint(registry, args.endpoint, args.json)
    return _list_endpoints(registry, args.grep, args.json)


def _list_endpoints(registry: Registry, words: Sequence[str], as_json: bool) -> int:
    from engine import reference

    names = registry.names()
    entries = []
    for endpoint_id in registry.ids():
        aliases = names.get(endpoint_id, [])
        entry = reference.summary(registry.get(endpoint_id), aliases[0] if aliases else None, aliases)
        if reference.matches(entry, words):
            entries.append(entry)
    if as_json:
        _print_out(json.dumps(entries, ensure_ascii=False, indent=2))
    elif entries:
        rows = ([e["name"] or "", e["method"], e["path"], e["title"], e["id"]] for e in entries)
        _print_out(reference.text_table(("name", "method", "path", "title", "id"), rows))
    return EXIT_OK


def _print_out(text: str) -> None:
    """Print a listing that may be piped into ``head``: a closed pipe ends the output, not in a traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _show_endpoint(registry: Registry, ref: str, as_json: bool) -> int:
    descriptor = registry.get(ref)
    aliases = registry.names().get(descriptor.id, [])
    shown = describe(descriptor, aliases[0] if aliases else None, aliases)
    if as_json:
        _print_out(json.dumps(shown, ensure_ascii=False, indent=2, default=_jsonable))
    else:
        _print_out(_show_text(descriptor, shown))
    return EXIT_OK


def describe(descriptor: Any, name: Optional[str] = None, aliases: Sequence[str] = ()) -> dict[str, Any]:
    """What ``endpoints show --json`` prints: the facts of a descriptor, its fields, a payload that validates."""
    from engine import reference
    from engine.examples import example_headers, example_payload

    return {
        **reference.summary(descriptor, name, aliases),
        "body": descriptor.body_kind,
        "request": [row.as_json() for row in reference.request_rows(descriptor)],
        "response": [row.as_json() for row in reference.answer_rows(descriptor)],
        "example_payload": example_payload(descriptor),
        "example_headers": example_headers(descriptor),
    }


def _show_text(descriptor: Any, shown: dict[str, Any]) -> str:
    from engine import reference

    head = [
        f"{shown['name'] or shown['id']}  {shown['title']}".rstrip(),
        f"{descriptor.method} {descriptor.path}" + (f"  (host {descriptor.host})" if descriptor.host else ""),
        f"id: {descriptor.id}    body: {descriptor.body_kind}",
    ]
    example = json.dumps(shown["example_payload"], ensure_ascii=False, indent=2, default=_jsonable)
    return "\n".join(
        [
            *head,
            "",
            "Request",
            reference.fields_table(reference.request_rows(descriptor)),
            "",
            "Answer",
            reference.fields_table(reference.answer_rows(descriptor)),
            "",
            "Example payload",
            example,
        ]
    )


def _jsonable(value: Any) -> Any:
    return f"<{len(value)} bytes>" if isinstance(value, (bytes, bytearray)) else str(value)


if __name__ == "__main__":  # pragma: no cover
    # python -m engine.cli runs this file as __main__, whose CliError is not engine.cli.CliError, the
    # one engine.sandbox.remote raises: main must be the imported module's, or that error escapes it
    from engine import cli

    sys.exit(cli.main())
