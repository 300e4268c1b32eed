"""The ``wechatpay`` command: call any endpoint from a shell, against WeChat Pay or the sandbox.

Design decisions:

* ``wechatpay call ENDPOINT --data JSON|@file [--sandbox]`` prints the verified answer as JSON
  (status, Request-ID, the key that verified it, data) on stdout; nothing else goes to stdout.
* Credentials come from flags or ``WECHATPAY_*`` variables; the APIv3 and APIv2 keys only from the
  environment, because command lines are visible to other users of the machine. APIv2's client
  certificate is ``WECHATPAY_CLIENT_CERTIFICATE`` (``apiclient_cert.pem``), with the private key.
* A user mistake prints one ``error: ...`` line on stderr and exits 2; an answer WeChat Pay refused,
  a failed verification or a network failure exits 1. No traceback for either: every expected
  failure is an ``EngineError`` with a message that says what to fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from engine import __version__
from engine.client import DEFAULT_BASE_URL, Engine
from engine.errors import EngineError, NotificationError, UsageError, ValidationError
from engine.registry import BUILTIN_ENDPOINTS, Registry

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

ENVIRONMENT = {
    "mchid": "WECHATPAY_MCHID",
    "serial_no": "WECHATPAY_SERIAL_NO",
    "private_key": "WECHATPAY_PRIVATE_KEY",
    "platform_public_key": "WECHATPAY_PUBLIC_KEY",
    "platform_public_key_id": "WECHATPAY_PUBLIC_KEY_ID",
    "platform_certificates": "WECHATPAY_PLATFORM_CERTIFICATES",
    "apiv3_key": "WECHATPAY_APIV3_KEY",
    "apiv2_key": "WECHATPAY_APIV2_KEY",
    "client_certificate": "WECHATPAY_CLIENT_CERTIFICATE",
    "base_url": "WECHATPAY_BASE_URL",
}


class CliError(Exception):
    """A mistake on the command line; becomes one ``error:`` line and exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wechatpay", description="WeChat Pay APIv3 from the command line.")
    parser.add_argument("--version", action="version", version=f"wechatpay-engine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", help="call an endpoint and print the verified answer")
    call.add_argument("endpoint", help="an endpoint id or alias, or 'METHOD /v3/path'")
    call.add_argument("--data", default=None, help="the payload: JSON text, or @FILE to read it from a file")
    call.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="an extra header")
    call.add_argument("--sandbox", action="store_true", help="answer from the embedded sandbox (no network)")
    call.add_argument("--wire", action="store_true", help="with --sandbox: show the request as sent on stderr")
    _add_credential_flags(call)
    sandbox = commands.add_parser("sandbox", help="the WeChat Pay emulator").add_subparsers(
        dest="action", required=True
    )
    serve = sandbox.add_parser("serve", help="serve the sandbox over HTTP until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one, written to sandbox.json)")
    serve.add_argument("--state-dir", default=".wechatpay-sandbox", help="where keys and sandbox.json live")
    serve.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
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
    endpoints = commands.add_parser("endpoints", help="discover endpoints").add_subparsers(dest="action")
    listing = endpoints.add_parser("list", help="list canonical ids (and aliases)")
    listing.add_argument("--grep", default="", help="only ids, aliases or titles containing WORD")
    listing.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
    show = endpoints.add_parser("show", help="method, path, fields and an example payload of one endpoint")
    show.add_argument("endpoint", help="an id, an alias or 'METHOD /path'")
    show.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
    return parser


def _add_credential_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("credentials (default: WECHATPAY_* environment variables)")
    group.add_argument("--mchid")
    group.add_argument("--serial-no", dest="serial_no", help="merchant API certificate serial")
    group.add_argument("--private-key", dest="private_key", help="merchant private key file (apiclient_key.pem)")
    group.add_argument("--public-key", dest="platform_public_key", help="WeChat Pay public key file")
    group.add_argument("--public-key-id", dest="platform_public_key_id", help="PUB_KEY_ID_...")
    group.add_argument("--platform-certificate", dest="platform_certificates", action="append", help="certificate file")
    group.add_argument("--base-url", dest="base_url")
    group.add_argument("--sandbox-state", help="use the credentials and URL of a served sandbox (its state dir)")
    group.add_argument("--endpoint-dir", action="append", default=[], help="a directory of descriptor files")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer (default 30)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
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
        return _serve_sandbox(args)
    if args.command == "certificates":
        return _download_certificates(args)
    if args.command == "notify":
        return _verify_notification(args)
    payload = read_payload(args.data)
    engine = _engine(args)
    with engine:
        response = engine.call(args.endpoint, payload, headers=_headers(args.header))
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


def read_payload(data: Optional[str]) -> Any:
    """``--data`` as JSON text or ``@file``; ``None`` when absent."""
    if data is None:
        return None
    source = "--data"
    if data.startswith("@"):
        source = f"--data file {data[1:]!r}"
        try:
            data = Path(data[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None


def _headers(pairs: Sequence[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {pair!r} is not NAME:VALUE")
        headers[name.strip()] = value.strip()
    return headers


def _engine(args: argparse.Namespace, **extra: Any) -> Engine:
    dirs = args.endpoint_dir
    if getattr(args, "sandbox", False):
        return Engine.sandbox(endpoint_dirs=dirs, timeout=args.timeout, **extra)
    settings = _credentials(args)
    return Engine(**{**settings, **extra}, endpoint_dirs=dirs, timeout=args.timeout)


def _credentials(args: argparse.Namespace) -> dict[str, Any]:
    if args.sandbox_state:
        return _sandbox_credentials(Path(args.sandbox_state))
    settings: dict[str, Any] = {}
    for name, variable in ENVIRONMENT.items():
        value = getattr(args, name, None) or os.environ.get(variable)
        if value:
            settings[name] = value
    missing = [ENVIRONMENT[n] for n in ("mchid", "serial_no", "private_key") if n not in settings]
    if missing:
        raise CliError(f"missing credentials: set {', '.join(missing)} (or the matching flags), or use --sandbox")
    certificates = settings.get("platform_certificates")
    if isinstance(certificates, str):
        settings["platform_certificates"] = [p for p in certificates.split(os.pathsep) if p]
    if "client_certificate" in settings:  # apiclient_cert.pem goes with the merchant key, apiclient_key.pem
        settings["client_certificate"] = (settings["client_certificate"], settings["private_key"])
    settings.setdefault("base_url", DEFAULT_BASE_URL)
    return settings


def _sandbox_credentials(state_dir: Path) -> dict[str, Any]:
    from engine.sandbox import state

    try:
        return state.engine_settings(state_dir)
    except (OSError, KeyError, json.JSONDecodeError):
        hint = "start 'wechatpay sandbox serve --state-dir' first"
        raise CliError(f"no sandbox.json in {str(state_dir)!r}: {hint}") from None


def _download_certificates(args: argparse.Namespace) -> int:
    out = Path(args.out)
    extra = {"mode": "certificate", "platform_certificates": []} if args.sandbox else {}
    with _engine(args, certificates_dir=out, **extra) as engine:
        serials = engine.download_certificates()
    for serial in serials:
        print(f"{serial}  {out / (serial + '.pem')}")
    return EXIT_OK


def _verify_notification(args: argparse.Namespace) -> int:
    headers = _read_headers(Path(args.headers))
    try:
        body = Path(args.body).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read --body file {args.body!r}: {exc.strerror}") from None
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read --headers file {str(path)!r}: {exc.strerror}") from None
    if text.lstrip().startswith("{"):
        try:
            return {str(k): str(v) for k, v in json.loads(text).items()}
        except (json.JSONDecodeError, AttributeError):
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


def _serve_sandbox(args: argparse.Namespace) -> int:
    from engine.sandbox import Sandbox, state
    from engine.sandbox.server import serve_forever

    state_dir = Path(args.state_dir)
    identity = state.load_or_create(state_dir)
    sandbox = Sandbox(identity, Registry([BUILTIN_ENDPOINTS, *map(Path, args.endpoint_dir)]))

    def ready(server: Any) -> None:
        manifest = state.write_manifest(identity, state_dir, server.base_url)
        print(
            f"WeChat Pay sandbox at {server.base_url} (credentials: {manifest.resolve()}); Ctrl-C stops it", flush=True
        )

    try:
        asyncio.run(serve_forever(sandbox, args.host, args.port, on_ready=ready))
    except OSError as exc:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        print("sandbox stopped", file=sys.stderr)
    return EXIT_OK


def _endpoints(args: argparse.Namespace) -> int:
    registry = Registry([BUILTIN_ENDPOINTS, *map(Path, getattr(args, "endpoint_dir", []))])
    if args.action == "show":
        print(json.dumps(describe(registry.get(args.endpoint)), ensure_ascii=False, indent=2, default=_jsonable))
        return EXIT_OK
    return _list_endpoints(registry, getattr(args, "grep", ""))


def _list_endpoints(registry: Registry, word: str) -> int:
    aliases = {target: alias for alias, target in registry.aliases().items()}
    for endpoint_id in registry.ids():
        alias = aliases.get(endpoint_id, "")
        if word in endpoint_id or (alias and word in alias):
            print(f"{endpoint_id}  ({alias})" if alias else endpoint_id)
    return EXIT_OK


def describe(descriptor: Any) -> dict[str, Any]:
    """What ``endpoints show`` prints: the facts of a descriptor and a payload that validates."""
    from engine.examples import example_payload

    def fields(group: dict) -> dict[str, Any]:
        return {name: _field_summary(field) for name, field in group.items()}

    return {
        "id": descriptor.id,
        "title": descriptor.title,
        "method": descriptor.method,
        "path": descriptor.path,
        "body": descriptor.body_kind,
        "request": {
            loc: fields(getattr(descriptor.request, loc))
            for loc in ("path", "query", "header", "body")
            if getattr(descriptor.request, loc)
        },
        "response": fields(descriptor.response),
        "example_payload": example_payload(descriptor),
    }


def _field_summary(field: Any) -> Any:
    summary = field.type + (" required" if field.required else "") + (" encrypted" if field.encrypted else "")
    if field.enum:
        summary += " one of " + "|".join(str(v) for v in field.enum)
    if field.label:
        summary += f" — {field.label}"
    if field.fields:
        return {"": summary, **{n: _field_summary(f) for n, f in field.fields.items()}}
    if field.items is not None:
        return {"": summary, "[]": _field_summary(field.items)}
    return summary


def _jsonable(value: Any) -> Any:
    return f"<{len(value)} bytes>" if isinstance(value, (bytes, bytearray)) else str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
