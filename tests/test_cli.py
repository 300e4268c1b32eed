"""The ``wechatpay`` command: the main job, and one clear line (no traceback) for every mistake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

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
    status, out, _ = run(capsys, "endpoints", "--grep", "real_name")
    assert status == 0
    assert out.strip() == (
        "v3.ecommerce.individual_contracts.pre_entrust_sign_with_real_name_identity.mini_program.post"
        "  (individual_contracts.real_name.mini_program)"
    )


def test_installed_command_has_no_traceback_for_mistakes() -> None:
    script = Path(sys.executable).with_name("wechatpay")
    result = subprocess.run(
        [str(script), "call", "nope", "--sandbox"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown endpoint 'nope'") and "Traceback" not in result.stderr
