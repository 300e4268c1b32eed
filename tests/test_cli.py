"""The ``wechatpay`` command: the main job, and one clear line (no traceback) for every mistake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import cli
from engine.cli import main
from engine.sandbox import state
from engine.secret import Secret, reveal

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "combine_papay.json"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_main_job_prints_a_verified_answer(capsys) -> None:
    status, out, err = run(capsys, "call", "combine_papay.mini_program", "--data", f"@{EXAMPLE}", "--sandbox")
    answer = json.loads(out)
    assert status == 0 and err == ""
    assert answer["status"] == 200 and answer["verified_with"].startswith("PUB_KEY_ID_")
    assert answer["data"]["out_contract_code"] == "wxwtdk20200910100000" and answer["data"]["pre_entrustweb_id"]


def test_wire_view_shows_ciphertext_not_plaintext(capsys) -> None:
    status, out, err = run(
        capsys,
        "call",
        "individual_contracts.real_name.mini_program",
        "--data",
        f"@{ROOT / 'examples' / 'real_name.json'}",
        "--sandbox",
        "--wire",
    )
    assert status == 0
    assert "Wechatpay-Serial: PUB_KEY_ID_" in err and '"cred_id":"' in err
    assert "110101199003074477" not in err + out and "张三" not in err + out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["call", "combine_papay.mini_progrm", "--sandbox"],
            "error: unknown endpoint 'combine_papay.mini_progrm'; did you mean",
        ),
        (["call", "combine_papay.mini_program", "--data", "{bad", "--sandbox"], "error: --data is not valid JSON: "),
        (
            ["call", "combine_papay.mini_program", "--data", "@/no/such/file.json", "--sandbox"],
            "error: cannot read --data file '/no/such/file.json'",
        ),
        (
            ["call", "combine_papay.mini_program", "--data", '{"plan_id": "x"}', "--sandbox"],
            "error: invalid payload for v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post: "
            "expected integer, got string @ $.plan_id; missing required field @ $.appid",
        ),
        (
            ["call", "combine_papay.mini_program", "--header", "nocolon", "--sandbox"],
            "error: --header 'nocolon' is not NAME:VALUE",
        ),
        (["call", "combine_papay.mini_program", "--data", "{}"], "error: missing credentials: set WECHATPAY_MCHID"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(capsys, monkeypatch, argv: list[str], message: str) -> None:
    for variable in ("WECHATPAY_MCHID", "WECHATPAY_SERIAL_NO", "WECHATPAY_PRIVATE_KEY"):
        monkeypatch.delenv(variable, raising=False)
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_files_named_on_the_command_line_are_read_bounded_and_as_utf8(capsys, tmp_path: Path, monkeypatch) -> None:
    binary = tmp_path / "payload.json"
    binary.write_bytes(b'{"plan_id": "\xff"}')
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * 64)
    cases = [
        (f"@{binary}", f"error: --data file '{binary}' is not UTF-8 text (byte 13)"),
        ("@/dev/zero", "error: cannot read --data file '/dev/zero': not a regular file"),  # would never end
        (f"@{tmp_path}", f"error: cannot read --data file '{tmp_path}'"),
        (f"@{huge}", f"error: cannot read --data file '{huge}': 64 bytes, more than 32"),
    ]
    monkeypatch.setattr(cli, "MAX_INPUT_BYTES", 32)
    for data, message in cases:
        status, out, err = run(capsys, "call", "combine_papay.mini_program", "--data", data, "--sandbox")
        assert (status, out) == (2, "") and err.startswith(message) and err.count("\n") == 1, err


def test_json_nested_past_the_recursion_limit_is_a_usage_error(capsys, tmp_path: Path) -> None:
    """json.loads raises RecursionError, not JSONDecodeError, for a document nested past the recursion
    limit: --data '[[[...' escaped main as a traceback whose json.decoder frames held the whole text
    (which may be a pay_bank card number); a --headers file the same way."""
    deep = "[" * 100_000
    _unreadable_json_is_one_line(capsys, tmp_path, deep, '{"a": ' + deep, "is nested too deeply to read")


def _unreadable_json_is_one_line(capsys, tmp_path: Path, data: str, headers_text: str, problem: str) -> None:
    """``data`` as --data and as --data @file, and ``headers_text`` as a --headers file: each one error
    line, and the --data refusal carries no decoder error (whose frames hold the text) as its context."""
    payload = tmp_path / "payload.json"
    payload.write_text(data, encoding="utf-8")
    headers = tmp_path / "headers.json"
    headers.write_text(headers_text, encoding="utf-8")
    body = tmp_path / "body.json"
    body.write_text("{}", encoding="utf-8")
    for given, source in ((data, "--data"), (f"@{payload}", f"--data file '{payload}'")):
        status, out, err = run(capsys, "call", "combine_papay.mini_program", "--data", given, "--sandbox")
        assert (status, out) == (2, "") and err == f"error: {source} {problem}\n", err
        with pytest.raises(cli.CliError) as caught:
            cli.read_payload(Secret(given))
        assert caught.value.__context__ is None
    status, out, err = run(capsys, "notify", "verify", "--headers", str(headers), "--body", str(body))
    assert (status, out) == (2, "") and err == f"error: --headers file {str(headers)!r} is not a JSON object\n", err


def test_bad_key_file_from_environment(capsys, monkeypatch, tmp_path: Path) -> None:
    bad = tmp_path / "apiclient_key.pem"
    bad.write_text("not a key")
    monkeypatch.setenv("WECHATPAY_MCHID", "1900000109")
    monkeypatch.setenv("WECHATPAY_SERIAL_NO", "ABC")
    monkeypatch.setenv("WECHATPAY_PRIVATE_KEY", str(bad))
    status, _, err = run(capsys, "call", "combine_papay.mini_program", "--data", "{}")
    assert status == 2 and err == "error: private_key: not an unencrypted PEM private key\n"


def test_refused_answer_exits_1(capsys) -> None:
    status, out, err = run(capsys, "call", "POST /v3/not/served", "--data", "{}", "--sandbox")
    assert status == 1 and out == ""
    assert err.startswith("error: ApiError: WeChat Pay answered 404 RESOURCE_NOT_EXISTS")


def test_endpoints_listing(capsys) -> None:
    status, out, _ = run(capsys, "endpoints", "list", "--grep", "real_name")
    assert status == 0
    header, *lines = out.splitlines()
    assert header.split() == ["name", "method", "path", "title", "id"]
    seed = next(line for line in lines if line.startswith("individual_contracts.real_name.mini_program "))
    path = "/v3/ecommerce/individual-contracts/pre-entrust-sign-with-real-name-identity/mini-program"
    assert seed.split()[1:3] == ["POST", path]
    assert seed.split()[-1].endswith(".pre_entrust_sign_with_real_name_identity.mini_program.post")
    assert all("real_name" in line for line in lines)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("退款", "refund.domestic.refunds"),  # a Chinese title
        ("JSAPI", "pay.transactions.jsapi"),  # any case: ids and paths say jsapi
        ("/v3/pay/transactions/out-trade-no/{out_trade_no}", "pay.transactions.out_trade_no.get"),  # a path
        ("v3.pay.transactions.id._transaction_id_.get", "pay.transactions.id._transaction_id_.get"),  # an id
    ],
)
def test_grep_matches_titles_paths_and_ids_in_any_case(capsys, word: str, expected: str) -> None:
    status, out, _ = run(capsys, "endpoints", "list", "--grep", word)
    assert status == 0 and expected in [line.split()[0] for line in out.splitlines()[1:]]


def test_list_json_and_repeated_grep(capsys) -> None:
    status, out, _ = run(capsys, "endpoints", "list", "--grep", "refund", "--grep", "get", "--json")
    entries = json.loads(out)
    assert status == 0 and entries and all(set(e) >= {"id", "name", "method", "path", "title"} for e in entries)
    assert all("refund" in json.dumps(e).lower() and "get" in json.dumps(e).lower() for e in entries)
    everything = json.loads(run(capsys, "endpoints", "list", "--json")[1])
    assert len(everything) == 1155 and len({e["name"] for e in everything}) == 1155  # 1,019 APIv3, 136 APIv2


def test_list_finding_nothing_prints_nothing(capsys) -> None:
    assert run(capsys, "endpoints", "list", "--grep", "no-such-operation-anywhere") == (0, "", "")


def test_installed_command_has_no_traceback_for_mistakes() -> None:
    script = Path(sys.executable).with_name("wechatpay")
    result = subprocess.run(
        [str(script), "call", "nope", "--sandbox"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown endpoint 'nope'") and "Traceback" not in result.stderr


def test_python_m_engine_cli_has_no_traceback_for_a_remote_command_mistake(tmp_path: Path) -> None:
    """python -m engine.cli runs cli.py as __main__, so engine.sandbox.remote's CliError (imported
    from engine.cli) was a different class from the one main caught: every mistake of a remote
    sandbox command (no sandbox.json, nothing listening) was a traceback, exit 1."""
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "sandbox", "objects", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert (
        result.stderr
        == f"error: no sandbox.json in {str(tmp_path)!r}: start 'wechatpay sandbox serve --state-dir' first\n"
    )


def test_certificates_download_to_a_directory(capsys, tmp_path: Path) -> None:
    status, out, err = run(capsys, "certificates", "download", "--out", str(tmp_path), "--sandbox")
    assert status == 0, err
    serial, path = out.split()
    assert Path(path) == tmp_path / f"{serial}.pem" and Path(path).read_bytes().startswith(
        b"-----BEGIN CERTIFICATE-----"
    )


def _served_callback(tmp_path: Path) -> tuple[Path, Path, Path]:
    from engine.sandbox import Sandbox, state

    identity = state.load_or_create(tmp_path / "state")
    state.write_manifest(identity, tmp_path / "state", "http://127.0.0.1:9")
    notification = Sandbox(identity).payment_succeeded("T-77", 100)
    headers = tmp_path / "headers.txt"
    headers.write_text("".join(f"{k}: {v}\n" for k, v in notification.headers.items()))
    body = tmp_path / "body.json"
    body.write_bytes(notification.body)
    return tmp_path / "state", headers, body


def test_notify_verify_prints_the_event(capsys, tmp_path: Path) -> None:
    state_dir, headers, body = _served_callback(tmp_path)
    status, out, err = run(
        capsys, "notify", "verify", "--headers", str(headers), "--body", str(body), "--sandbox-state", str(state_dir)
    )
    assert status == 0, err
    event = json.loads(out)
    assert event["event_type"] == "TRANSACTION.SUCCESS" and event["resource"]["out_trade_no"] == "T-77"


def test_notify_verify_says_why_it_rejects(capsys, tmp_path: Path) -> None:
    state_dir, headers, body = _served_callback(tmp_path)
    body.write_bytes(body.read_bytes().replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.REFUND"))
    status, out, err = run(
        capsys, "notify", "verify", "--headers", str(headers), "--body", str(body), "--sandbox-state", str(state_dir)
    )
    assert status == 1 and out == ""
    assert err.startswith(
        "error: rejected (NotificationSignatureError): signature does not verify with key PUB_KEY_ID_"
    )
    status, _, err = run(
        capsys,
        "notify",
        "verify",
        "--headers",
        str(tmp_path / "nope"),
        "--body",
        str(body),
        "--sandbox-state",
        str(state_dir),
    )
    assert status == 2 and err.startswith("error: cannot read --headers file")


def test_endpoints_show(capsys) -> None:
    status, out, _ = run(capsys, "endpoints", "show", "individual_contracts.real_name.mini_program")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("individual_contracts.real_name.mini_program  ")
    assert lines[1] == "POST /v3/ecommerce/individual-contracts/pre-entrust-sign-with-real-name-identity/mini-program"
    request = lines[lines.index("Request") + 1 : lines.index("Answer")]
    assert request[0].split() == ["field", "in", "type", "required", "encrypted", "limits", "label", "enum"]
    cred_id = next(line for line in request if line.startswith("cred_id "))
    assert cred_id.split()[:5] == ["cred_id", "body", "string", "yes", "yes"]  # required, encrypted
    assert "ID_CARD" in next(line for line in request if line.startswith("cred_type "))
    assert any(line.startswith("Wechatpay-Serial ") and "set by the engine" in line for line in request)


def test_endpoints_show_nests_and_states_limits(capsys) -> None:
    lines = run(capsys, "endpoints", "show", "pay.transactions.jsapi")[1].splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("amount "))) + 1].startswith("  total ")
    limits = run(capsys, "endpoints", "show", "v3.apply4subject.applyment.get")[1].splitlines()
    assert "length <= 128" in next(line for line in limits if line.startswith("business_code "))


def test_endpoints_show_json(capsys) -> None:
    status, out, _ = run(
        capsys,
        "endpoints",
        "show",
        "v3.ecommerce.individual_contracts.pre_entrust_sign_with_real_name_identity.mini_program.post",
        "--json",
    )
    shown = json.loads(out)
    assert status == 0 and shown["name"] == "individual_contracts.real_name.mini_program"
    assert shown["method"] == "POST" and shown["title"]
    cred_id = next(row for row in shown["request"] if row["field"] == "cred_id")
    assert (cred_id["in"], cred_id["type"], cred_id["required"], cred_id["encrypted"]) == ("body", "string", True, True)
    assert next(row for row in shown["request"] if row["field"] == "cred_type")["enum"] == ["ID_CARD"]
    assert {row["field"] for row in shown["response"]} >= {"pre_entrustweb_id"}
    assert set(shown["example_payload"]) >= {"appid", "real_name", "cred_id", "cred_type"}


def test_the_catalogue_importer_is_a_developer_tool_not_a_command(capsys) -> None:
    with pytest.raises(SystemExit) as caught:  # it lives in tools/ and writes into a checkout
        main(["endpoints", "import", "../shared/catalog/wechatpay-openapi"])
    assert caught.value.code == 2 and "invalid choice: 'import'" in capsys.readouterr().err


def test_an_apiv2_call_from_the_shell(capsys) -> None:
    from conftest import MICROPAY

    status, out, err = run(capsys, "call", "v2.micropay", "--data", json.dumps(MICROPAY), "--sandbox")
    answer = json.loads(out)
    assert status == 0 and err == ""
    assert answer["verified_with"] == "apiv2:HMAC-SHA256" and answer["data"]["result_code"] == "SUCCESS"


def test_apiv2_credentials_come_from_the_environment(monkeypatch, tmp_path) -> None:
    from engine.cli import _credentials, build_parser
    from engine.keys import private_pem
    from engine.sandbox import SandboxIdentity

    identity = SandboxIdentity.generate()
    key, cert = tmp_path / "apiclient_key.pem", tmp_path / "apiclient_cert.pem"
    key.write_bytes(private_pem(identity.merchant_key))
    cert.write_bytes(identity.merchant_certificate_pem())
    monkeypatch.setenv("WECHATPAY_MCHID", identity.mchid)
    monkeypatch.setenv("WECHATPAY_SERIAL_NO", identity.merchant_serial_no)
    monkeypatch.setenv("WECHATPAY_PRIVATE_KEY", str(key))
    monkeypatch.setenv("WECHATPAY_APIV2_KEY", identity.apiv2_key.decode())
    monkeypatch.setenv("WECHATPAY_CLIENT_CERTIFICATE", str(cert))
    settings = _credentials(build_parser().parse_args(["call", "v2.micropay"]))
    assert reveal(settings["apiv2_key"]) == identity.apiv2_key.decode()  # boxed as it is read
    certificate, tls_key = settings["client_certificate"]
    assert (certificate, reveal(tls_key)) == (str(cert), str(key))


# -- flags whose value is key material: --private-key takes PEM text as well as a path ---------------


def _pem_flags(identity, tmp_path: Path) -> list[str]:
    """Credential flags with the merchant private key given as PEM text, not as a file."""
    public = tmp_path / "pub_key.pem"
    public.write_bytes(identity.platform_public_pem())
    return [
        "--mchid", identity.mchid, "--serial-no", identity.merchant_serial_no,
        "--private-key", identity.merchant_private_pem().decode(),
        "--public-key", str(public), "--public-key-id", identity.platform_public_key_id,
    ]  # fmt: skip


def _pem_lines(identity) -> list[str]:
    return [line for line in identity.merchant_private_pem().decode().splitlines() if not line.startswith("-----")]


COMMANDS_WITH_CREDENTIALS = [
    ["call", "combine_papay.mini_program"],
    ["certificates", "download", "--out", "x"],
    ["doctor"],
    ["notify", "verify", "--headers", "h", "--body", "b"],
]


def test_a_key_flag_is_boxed_as_parsed_and_opened_where_used(identity, tmp_path, capsys, monkeypatch) -> None:
    for command in COMMANDS_WITH_CREDENTIALS:
        args = cli.build_parser().parse_args([*command, *_pem_flags(identity, tmp_path)])
        assert "private_key=Secret(<hidden>)" in repr(args)
        assert not any(line in repr(args) for line in _pem_lines(identity))
        assert reveal(args.private_key) == identity.merchant_private_pem().decode()
    for variable in cli.ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    _, out, _ = run(capsys, "doctor", *_pem_flags(identity, tmp_path))  # the base URL check fails: no network
    checks = out.splitlines()
    assert "ok    merchant private key: RSA 2048-bit (--private-key)" in checks, checks


def test_a_refused_engine_from_flags_leaves_no_key_in_frame_locals(identity, tmp_path: Path) -> None:
    from test_secret_locals import engine_frames

    from engine import EngineError

    sandbox_state = tmp_path / "state"
    state.save(identity, sandbox_state, "http://127.0.0.1:1")
    refused = [  # the keys are fine; the timeout is not
        [*_pem_flags(identity, tmp_path), "--timeout", "-1"],
        ["--sandbox-state", str(sandbox_state), "--timeout", "-1"],  # the state's APIv3 and APIv2 keys
    ]
    for flags in refused:
        with pytest.raises(EngineError) as caught:
            cli._engine(cli.build_parser().parse_args(["call", "combine_papay.mini_program", *flags]))
        text = engine_frames(caught.value)
        assert " _engine {" in text, "the traceback should pass through the CLI"
        for secret in [*_pem_lines(identity), identity.apiv3_key.decode(), identity.apiv2_key.decode()]:
            assert secret not in text


@pytest.mark.parametrize(
    ("flag", "setting"),
    [
        ("--private-key", "private_key"),
        ("--public-key", "platform_public_key"),
        ("--platform-certificate", "platform_certificates[0]"),
        ("--pay-bank-public-key", "pay_bank_public_key"),
    ],
)
def test_a_key_flag_naming_a_fifo_or_a_device_is_refused_not_read(
    identity, tmp_path: Path, capsys, monkeypatch, flag: str, setting: str
) -> None:
    """Key files were read with Path.read_bytes: --private-key naming a FIFO waited forever for a
    writer, and /dev/zero (which passes a size check at 0 bytes) was read until memory ran out."""
    import os

    for variable in cli.ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    pem = _pem_flags(identity, tmp_path)
    flags = dict(zip(pem[::2], pem[1::2], strict=True))
    for path in (str(fifo), "/dev/zero"):
        argv = [*(item for pair in {**flags, flag: path}.items() for item in pair), "--base-url", "http://127.0.0.1:9"]
        status, out, err = run(capsys, "call", "combine_papay.mini_program", "--data", "{}", *argv)
        assert (status, out) == (2, "")
        assert err == f"error: {setting}: not PEM and not a readable file (not a regular file)\n", err


def _write_manifest(state_dir: Path, kind: str) -> None:
    import os

    manifest = state_dir / "sandbox.json"
    if kind == "fifo":
        os.mkfifo(manifest)
    elif kind == "directory":
        manifest.mkdir()
    else:
        contents = {"list": b"[1, 2]", "deep": b"[" * 100_000, "binary": b"\xff\xfe", "string": b'"x"'}
        manifest.write_bytes(contents[kind])


@pytest.mark.parametrize("kind", ["list", "deep", "binary", "string", "fifo", "directory"])
def test_a_state_dir_whose_manifest_cannot_be_read_is_one_error_line(capsys, tmp_path: Path, kind: str) -> None:
    """sandbox.json was read with read_text and json.loads, catching only OSError and JSONDecodeError:
    a JSON list was a TypeError, deep nesting a RecursionError and a binary file a UnicodeDecodeError,
    each a traceback, and a FIFO blocked forever waiting for a writer."""
    _write_manifest(tmp_path, kind)
    commands = [
        ["call", "GET /v3/certificates", "--sandbox-state", str(tmp_path)],
        ["doctor", "--sandbox-state", str(tmp_path)],
        ["sandbox", "objects", "--state-dir", str(tmp_path)],
    ]
    for argv in commands:
        status, out, err = run(capsys, *argv)
        assert (status, out) == (2, ""), argv
        assert err.startswith(f"error: no sandbox.json in {str(tmp_path)!r}: start ") and err.count("\n") == 1, err


def test_remote_commands_refuse_a_manifest_whose_base_url_is_not_text(capsys, tmp_path: Path) -> None:
    (tmp_path / "sandbox.json").write_text('{"base_url": 5}', encoding="utf-8")
    status, out, err = run(capsys, "sandbox", "objects", "--state-dir", str(tmp_path))
    assert (status, out) == (2, "") and "names no base_url" in err and err.count("\n") == 1, err


def test_a_number_too_long_for_int_is_a_usage_error(capsys, tmp_path: Path) -> None:
    """json.loads refuses an integer of more than sys.get_int_max_str_digits() digits with a bare
    ValueError (not JSONDecodeError), so --data '99...9' escaped main as a traceback; a --headers file too."""
    digits = "9" * 5000
    _unreadable_json_is_one_line(
        capsys, tmp_path, digits, f'{{"Wechatpay-Timestamp": {digits}}}', "holds a number too long to read"
    )


@pytest.mark.parametrize("host", ["a..b", "a" * 64 + ".example", ".x"])
def test_a_base_url_whose_host_cannot_be_resolved_as_a_name_is_refused(
    identity, tmp_path: Path, capsys, monkeypatch, host: str
) -> None:
    """getaddrinfo encodes the host with the idna codec, whose UnicodeError (an empty label, one of
    over 63 characters) escaped the first call as a traceback: --base-url http://a..b is now refused
    where it is given, as a call and as the doctor's base URL check."""
    for variable in cli.ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    flags = [*_pem_flags(identity, tmp_path), "--base-url", f"http://{host}", "--timeout", "2"]
    status, out, err = run(capsys, "call", "combine_papay.mini_program", "--data", "{}", *flags)
    assert (status, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith("error: base_url must be a URL") and "empty label" in err, err
    status, out, _ = run(capsys, "doctor", *flags)
    assert status == 1 and "FAIL  base URL:" in out and "empty label" in out, out


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Content-Length: 5", "Content-Length"),
        ("transfer-encoding: chunked", "Transfer-Encoding"),
        ("Host: api.evil.example", "Host"),
    ],
)
def test_a_header_that_frames_the_body_is_refused(capsys, header: str, name: str) -> None:
    """--header 'Content-Length: 5' was sent in place of the real length (a 126-byte body framed as 5,
    the rest read by the server as the next request on the kept-alive connection), and
    Transfer-Encoding beside it: the body's framing is the engine's, as Authorization is. So is the
    Host: base_url names it, and a caller's was passed through to the server."""
    status, out, err = run(
        capsys, "call", "combine_papay.mini_program", "--data", f"@{EXAMPLE}", "--header", header, "--sandbox"
    )
    assert (status, out) == (2, "") and err == f"error: the {name} header is set by the engine; do not pass it\n"


def test_sandbox_serve_refuses_bad_flags_and_state_dirs_in_one_line(capsys, tmp_path: Path) -> None:
    """bind() refused a port past 65535 with a bare OverflowError, --host '' bound every interface,
    and a --state-dir that was a file (FileExistsError) or held a broken sandbox.json (JSONDecodeError,
    UnicodeDecodeError, KeyError, a PEM ValueError) escaped main as a traceback."""
    for flags, message in (
        (["--port", "65536"], "argument --port: must be from 0 to 65535"),
        (["--port", "-1"], "argument --port: must be from 0 to 65535"),
        (["--host", ""], "argument --host: empty: give an address"),
        (["--host", "a" * 64], "argument --host: not a host name: "),  # getaddrinfo's idna: a bare UnicodeError
    ):
        with pytest.raises(SystemExit) as exited:
            main(["sandbox", "serve", "--state-dir", str(tmp_path / "unused"), *flags])
        assert exited.value.code == 2 and message in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    status, out, err = run(capsys, "sandbox", "serve", "--state-dir", str(a_file))
    assert (status, out, err) == (2, "", f"error: cannot use --state-dir {str(a_file)!r}: File exists\n")
    for name, manifest in (("json", b"not json"), ("binary", b"\xff\xfe"), ("empty", b"{}")):
        state_dir = tmp_path / name
        state_dir.mkdir()
        (state_dir / "sandbox.json").write_bytes(manifest)
        status, out, err = run(capsys, "sandbox", "serve", "--state-dir", str(state_dir))
        assert (status, out) == (2, "") and err.startswith(f"error: sandbox.json in {str(state_dir)!r} ")
        assert err.endswith(": remove it to start afresh\n") and err.count("\n") == 1, err


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"id": ' + b"9" * 5000 + b"}"], ids=["deep", "long-number"])
def test_a_signed_callback_body_json_cannot_read_is_rejected_in_one_line(capsys, tmp_path: Path, body: bytes) -> None:
    """The callback envelope's json.loads caught UnicodeDecodeError and JSONDecodeError only: a body
    nested past the recursion limit (RecursionError) or holding an integer past int()'s digit limit
    (a bare ValueError) escaped parse_notification once its signature verified."""
    from engine.sandbox import Sandbox
    from engine.wire import Headers

    identity = state.load_or_create(tmp_path / "state")
    state.write_manifest(identity, tmp_path / "state", "http://127.0.0.1:9")
    signed = Sandbox(identity).sign_answer(200, body, Headers({}))
    headers = tmp_path / "headers.txt"
    headers.write_text("".join(f"{k}: {v}\n" for k, v in signed.headers.items()), encoding="utf-8")
    body_file = tmp_path / "body.json"
    body_file.write_bytes(body)
    argv = ["--headers", str(headers), "--body", str(body_file), "--sandbox-state", str(tmp_path / "state")]
    status, out, err = run(capsys, "notify", "verify", *argv)
    assert (status, out) == (1, "")
    assert err == "error: rejected (MalformedNotificationError): callback body is not JSON\n", err


def test_certificates_download_to_a_file_is_one_error_line(capsys, tmp_path: Path) -> None:
    """--out naming a file (or /dev/zero) was the engine's FileExistsError from mkdir, a traceback."""
    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    for out in (str(a_file), str(a_file / "below")):
        status, stdout, err = run(capsys, "certificates", "download", "--out", out, "--sandbox")
        assert (status, stdout) == (2, "") and err.startswith(f"error: cannot use --out {out!r}: "), err
        assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ("endpoints", "list"),
        ("endpoints", "show", "combine_papay.mini_program"),
        ("call", "combine_papay.mini_program", "--data", f"@{EXAMPLE}", "--sandbox"),
    ],
)
def test_an_endpoint_dir_that_is_not_a_directory_is_an_error(capsys, tmp_path: Path, argv: tuple[str, ...]) -> None:
    """A mistyped --endpoint-dir was skipped without a word: the user's descriptors silently absent."""
    missing = tmp_path / "no-such-dir"
    status, out, err = run(capsys, *argv, "--endpoint-dir", str(missing))
    assert (status, out) == (2, "") and err == f"error: --endpoint-dir {str(missing)!r} is not a directory\n"


def test_sandbox_serve_refuses_a_missing_endpoint_dir_before_making_its_state(capsys, tmp_path: Path) -> None:
    state_dir, missing = tmp_path / "state", tmp_path / "no-such-dir"
    argv = ("sandbox", "serve", "--state-dir", str(state_dir), "--port", "0", "--endpoint-dir", str(missing))
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "") and err == f"error: --endpoint-dir {str(missing)!r} is not a directory\n"
    assert not state_dir.exists()
