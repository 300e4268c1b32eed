"""The catalogue importer: coverage of the real catalogue, the id rule, determinism, and its rules in small."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from engine.examples import example_payload
from engine.fills import caller_view
from engine.registry import BUILTIN_ENDPOINTS, Registry, endpoint_id
from engine.validation import compile_validator
from tools.import_catalogue import CHECKOUT_ENDPOINTS, ImportReport, import_catalogue, main_import, short_label
from tools.import_catalogue_v2 import import_catalogue_v2

ROOT = Path(__file__).resolve().parent.parent

OPERATIONS = 1019  # v3/, hk/ and global/ at the commit SOURCE.md names: 568 POST, 403 GET, 30 PATCH, ...
SOURCE_FILES = 936
V2_OPERATIONS = 136  # v2/: one operation per file (130 POST, 6 GET)
# Defects of the catalogue itself, each worked around and listed by `python -m tools.import_catalogue PATH`.
CATALOGUE_REPAIRS = 160


def _catalogue_path() -> Path:
    configured = os.environ.get("WECHATPAY_CATALOGUE")
    return Path(configured) if configured else Path(__file__).parents[2] / "shared" / "catalog" / "wechatpay-openapi"


@pytest.fixture(scope="module")
def catalogue() -> Path:
    path = _catalogue_path()
    if not (path / "v3").is_dir():
        reason = f"the wechatpay-openapi catalogue is not at {path} (set WECHATPAY_CATALOGUE to its folder)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def fresh(catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportReport, Path]:
    out = tmp_path_factory.mktemp("endpoints")
    return import_catalogue(catalogue, out), out


@pytest.fixture(scope="module")
def fresh_v2(catalogue: Path, fresh: tuple[ImportReport, Path]) -> ImportReport:
    """APIv2 into the same folder as APIv3: each importer keeps to its own ids."""
    return import_catalogue_v2(catalogue, fresh[1])


# -- the real catalogue ------------------------------------------------------------------------------


def test_every_operation_is_imported(fresh: tuple[ImportReport, Path], fresh_v2: ImportReport) -> None:
    report, out = fresh
    assert report.source_files == SOURCE_FILES
    assert len(report.written) == OPERATIONS == len([p for p in out.glob("*.yaml") if not p.name.startswith("v2.")])
    assert len({w.id for w in report.written}) == OPERATIONS
    assert fresh_v2.source_files == V2_OPERATIONS == len(fresh_v2.written) == len(list(out.glob("v2.*.yaml")))
    assert fresh_v2.unexpressed == [] and fresh_v2.removed == []


def test_nothing_is_left_unexpressed(fresh: tuple[ImportReport, Path]) -> None:
    report, _ = fresh
    assert report.unexpressed == []
    assert len(report.repaired) == CATALOGUE_REPAIRS, "\n".join(report.lines())


def test_a_fresh_import_equals_the_committed_descriptors(
    fresh: tuple[ImportReport, Path], fresh_v2: ImportReport
) -> None:
    _, out = fresh
    committed = {p.name: p.read_bytes() for p in CHECKOUT_ENDPOINTS.glob("*.yaml") if p.name != "aliases.yaml"}
    imported = {p.name: p.read_bytes() for p in out.glob("*.yaml")}
    assert sorted(committed) == sorted(imported)
    differing = [name for name in imported if imported[name] != committed[name]]
    assert differing == [], f"re-run `python -m tools.import_catalogue(_v2) PATH`: {differing[:5]}"


# -- the committed descriptors (no catalogue needed) ---------------------------------------------------


@pytest.fixture(scope="module")
def builtins() -> Registry:
    return Registry([BUILTIN_ENDPOINTS])


def test_every_committed_operation_loads_under_its_rule_id(builtins: Registry) -> None:
    ids = builtins.ids()
    assert len(ids) == OPERATIONS + V2_OPERATIONS
    for known in ids:
        descriptor = builtins.get(known)
        assert endpoint_id(descriptor.method, descriptor.path, descriptor.host, descriptor.protocol) == known


def test_the_example_payload_of_every_descriptor_is_valid(builtins: Registry) -> None:
    invalid = {}
    for known in builtins.ids():
        descriptor = builtins.get(known)
        errors = compile_validator(caller_view(descriptor))(example_payload(descriptor))
        if errors:
            invalid[known] = errors
    assert invalid == {}


def test_the_seeds_keep_their_aliases_and_encryption(builtins: Registry) -> None:
    assert set(builtins.aliases()) >= {
        "combine_papay.mini_program",
        "password_exempt.ecommerce.pay_redirect_sign",
        "individual_contracts.real_name.mini_program",
    }
    for alias in builtins.aliases():
        assert builtins.get(alias).id == builtins.aliases()[alias]
    body = builtins.get("individual_contracts.real_name.mini_program").request.body
    assert body["real_name"].encrypted and body["cred_id"].encrypted and not body["openid"].encrypted


def test_uploads_hosts_and_trailing_slashes(builtins: Registry) -> None:
    upload = builtins.get("v3.merchant.media.upload.post")
    assert upload.body_kind == "multipart"
    assert upload.request.body["file"].type == "file" and upload.request.body["meta"].type == "object"
    assert list(upload.request.body["meta"].fields) == ["filename", "sha256"]
    hk = builtins.get("hk.v3.refunds.post")
    assert (hk.path, hk.host) == ("/hk/v3/refunds", None)
    assert builtins.get("hk.v3.global.certificates.get").host == "hk"  # x-baseuri: apihk
    assert builtins.get("v3.applyment4sub.applyment.post").path == "/v3/applyment4sub/applyment/"
    assert builtins.get("v3.global.profit_sharing.receivers.delete").body_kind == "json"


# -- the importer's rules, on a catalogue written here -------------------------------------------------


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "catalogue"
    for top in ("v3", "hk", "global", "v2"):
        (root / top).mkdir(parents=True)
    _write(
        root,
        "definitions/Parameters.yaml",
        """
        HTTP_WECHATPAY_SERIAL:
          in: header
          required: true
          name: Wechatpay-Serial
          description: 微信支付公钥ID/平台证书序列号
        """,
    )
    _write(
        root,
        "definitions/Shapes.yaml",
        """
        Kind:
          type: string
          description: 种类（说明）
          enum: [A, B]
        Node:
          type: object
          properties:
            next:
              $ref: '#/Node'
        """,
    )
    _write(
        root,
        "v3/things/{thing_id}.yaml",
        """
        post:
          summary: 新建物品
          parameters:
            - $ref: '../../definitions/Parameters.yaml#/HTTP_WECHATPAY_SERIAL'
            - name: thing_id
              in: path
              required: true
              type: string
            - name: _
              in: body
              schema:
                type: object
                required: [name, kind]
                properties:
                  name:
                    type: string
                    format: base64
                    description: 姓名。这里是不该复制的长篇说明
                    example: 张三
                  kind:
                    allOf:
                      - $ref: '../../definitions/Shapes.yaml#Kind'
                      - enum: [C]
                  code:
                    type: string
                    pattern: /\\d{8}/
                  tree:
                    $ref: '../../definitions/Shapes.yaml#/Node'
          responses:
            200:
              schema:
                type: object
                properties:
                  secret:
                    type: string
                    format: base64
        """,
    )
    _write(root, "v2/pay/micropay.yaml", "post:\n  summary: v2\n  parameters: []\n  responses: {}\n")
    yield root


def test_tiny_catalogue_maps_every_rule(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = import_catalogue(tiny, out)
    assert [w.id for w in report.written] == ["v3.things._thing_id_.post"]
    text = (out / "v3.things._thing_id_.post.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Facts from the wechatpay-openapi catalogue (MIT): v3/things/{thing_id}.yaml\n")
    assert "这里是不该复制" not in text
    descriptor = Registry([out]).get("v3.things._thing_id_.post")
    body = descriptor.request.body
    assert (body["name"].encrypted, body["name"].label, body["name"].required) == (True, "姓名", True)
    assert body["kind"].enum == ("A", "B", "C") and body["kind"].label == "种类"
    assert body["code"].pattern == r"\d{8}"
    assert descriptor.request.header["Wechatpay-Serial"].required
    assert descriptor.response["secret"].encrypted
    assert any("$ref cycle" in p.reason for p in report.unexpressed)


def test_a_second_import_changes_nothing(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_catalogue(tiny, out)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert import_catalogue(tiny, out).removed == []
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before


def test_stale_descriptors_go_but_aliases_and_package_stay(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("aliases.yaml", "__init__.py", "v3.gone.get.yaml"):
        (out / name).write_text("# kept?\n", encoding="utf-8")
    report = import_catalogue(tiny, out)
    assert report.removed == ["v3.gone.get.yaml"]
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", "aliases.yaml", "v3.things._thing_id_.post.yaml"]


def test_unknown_keys_and_broken_patterns_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "catalogue"
    for top in ("hk", "global"):
        (root / top).mkdir(parents=True)
    _write(
        root,
        "v3/odd.yaml",
        """
        get:
          summary: 奇怪
          parameters:
            - name: q
              in: query
              type: string
              pattern: '[\\|-_]'
              x-brand-new: 1
          responses: {}
        """,
    )
    report = import_catalogue(root, tmp_path / "out")
    assert [str(p) for p in report.unexpressed] == ["v3/odd.yaml GET /v3/odd: unknown key 'x-brand-new' @ $query.q"]
    assert "does not compile" in report.repaired[0].reason


def test_console_entry(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main_import([str(tiny), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out.splitlines()
    assert status == 1  # the tiny catalogue holds a reference cycle on purpose
    assert out[0].startswith("imported 1 operations from 1 files: 0 stale files removed, 1 unexpressed, 0 repaired")
    assert any(line.startswith("unexpressed: v3/things/{thing_id}.yaml POST") for line in out[1:])
    assert main_import([str(tmp_path / "nowhere")]) == 2


def test_the_importer_writes_into_the_checkout_not_the_installed_package() -> None:
    assert CHECKOUT_ENDPOINTS == ROOT / "endpoints"
    assert (ROOT / "engine" / "endpoints").resolve() == CHECKOUT_ENDPOINTS  # the package's link to it
    command = [sys.executable, "-m", "tools.import_catalogue", "--help"]  # as a maintainer runs it
    help_text = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert help_text.startswith("usage: python -m tools.import_catalogue")
    assert "the endpoints/ folder of this checkout" in " ".join(help_text.split())


@pytest.mark.parametrize(
    ("description", "label"),
    [
        ("商户号", "商户号"),
        ("证件类型，取值如下", "证件类型"),
        ("订单金额（单位：分）", "订单金额"),
        ("第一行\n第二行", "第一行"),
        ("超长的说明" * 10, ("超长的说明" * 10)[:24]),
        (None, ""),
    ],
)
def test_short_label(description: object, label: str) -> None:
    assert short_label(description) == label


def test_one_nearest_rule_for_both_importers_lookups() -> None:
    from tools.catalogue_common import nearest

    candidates = [
        ("b.get", "/v3/refund/domestic/refunds/{out_refund_no}"),
        ("a.get", "/v3/refund/domestic/refunds/{out_refund_no}"),  # the same path: the smaller id wins
        ("c.get", "/v3/refund/domestic/refunds/{out_refund_no}/detail"),  # as near, but longer
        ("d.get", "/v3/pay/transactions/{out_trade_no}"),
    ]
    assert nearest("/v3/refund/domestic/refunds", candidates) == "a.get"
    assert nearest("/v3/pay/partner/transactions", candidates, at_least=2) == "d.get"
    assert nearest("/hk/v3/refunds", candidates, at_least=2) is None  # shares no two leading segments
    assert nearest("/hk/v3/refunds", candidates) == "d.get"  # APIv2's rule: nearest at all, then the shortest
