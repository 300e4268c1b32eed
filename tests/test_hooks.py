"""Every hook, exercised by a user plugin through a real call; plus registration rules.

``test_meta.py`` checks that each hookspec has a ``test_hook_<name>`` here and a README entry.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import attrs
import pytest
from conftest import COMBINE_PAPAY, MICROPAY, PATIENCE, REAL_NAME

from engine import (
    ConfigurationError,
    Descriptor,
    Engine,
    Family,
    Field,
    Headers,
    MockTransport,
    RawResponse,
    RequestSpec,
    SignatureError,
    TransportConfig,
    hookimpl,
)
from engine.sandbox.emulator import Exchange

COMBINE_ID = "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post"
SECRET_ANSWER = Descriptor(
    id="test.secret.post",
    method="POST",
    path="/v3/test/secret",
    request=RequestSpec(body={"q": Field()}),
    response={"holder_name": Field(encrypted=True, required=True), "plain": Field(required=True, example="p")},
)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple] = []


def test_hook_wxpay_endpoint_sources(tmp_path: Path, make_engine) -> None:
    (tmp_path / "v3.plugged.post.yaml").write_text(
        "method: POST\npath: /v3/plugged\nresponse: {ok: {type: boolean, required: true}}\n"
    )

    class Endpoints:
        @hookimpl
        def wxpay_endpoint_sources(self):
            return [tmp_path, SECRET_ANSWER]

    engine = make_engine(plugins=[Endpoints()])
    assert engine.call("v3.plugged.post", {}).data == {"ok": False}
    assert "test.secret.post" in engine.endpoints()


def test_hook_wxpay_transport(identity) -> None:
    canned = MockTransport(lambda request: engine.emulator.handle(request))

    class TransportPlugin:
        @hookimpl
        def wxpay_transport(self, config: TransportConfig) -> MockTransport:
            return canned

    engine = Engine.sandbox(identity=identity, plugins=[TransportPlugin()], load_entry_points=False)
    with engine:
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200
    assert [r.target for r in canned.requests] == [engine.emulator.last.request.target]


def test_hook_wxpay_transport_none_serves_the_url(identity) -> None:
    engine = Engine(**identity.engine_settings(), base_url="ftp://nowhere", load_entry_points=False)
    with engine, pytest.raises(ConfigurationError, match="no transport plugin serves base_url 'ftp://nowhere'"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)


def test_hook_wxpay_body_codec(make_engine) -> None:
    from engine.serialize import JSON_CODEC

    class Counting(Recorder):
        """A codec for one endpoint: APIv3's JSON, observed; every other descriptor is left to the built-ins."""

        @hookimpl
        def wxpay_body_codec(self, descriptor):
            self.seen.append(descriptor.id)
            return self if descriptor.id.endswith("mini_program.post") else None

        def encode(self, descriptor, body, query):
            encoded = JSON_CODEC.encode(descriptor, body, query)
            self.seen.append(("encode", len(encoded.data)))
            return encoded

        def decode(self, descriptor, response):
            self.seen.append(("decode", response.status))
            return {**JSON_CODEC.decode(descriptor, response), "decoded_by": "plugin"}

    codec = Counting()
    engine = make_engine(plugins=[codec])
    first = engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.call("v2.micropay", MICROPAY)
    assert first.data["decoded_by"] == "plugin"
    asked = [entry for entry in codec.seen if isinstance(entry, str)]
    assert asked == [first.endpoint_id, "v2.pay.micropay.post"]  # once per descriptor, not per call
    assert [entry[0] for entry in codec.seen if isinstance(entry, tuple)] == ["encode", "decode"] * 2


# -- wxpay_protocol_family: a made-up family "v9", answered by one user plugin -----------------------

V9_ECHO = Descriptor(
    id="v9.echo.post",
    method="POST",
    path="/v9/echo",
    protocol="v9",  # type: ignore[arg-type]  # a family the engine's Literal does not know
    request=RequestSpec(body={"q": Field()}),
    response={"echo": Field(required=True)},
)


class ScreeningTransport(MockTransport):
    """The one mock, recording each request's transport settings and applying the answer screen as
    the aiohttp transport does: on the status and headers, before the body is taken."""

    def __init__(self, handler) -> None:
        super().__init__(handler)
        self.configs: list[TransportConfig] = []

    async def send(self, request, config):
        self.configs.append(config)
        answer = await super().send(request, config)
        if config.screen is not None:
            config.screen(answer.status, answer.headers)
        return answer


def _v9_answer(request, signed: bool = True) -> RawResponse:
    body = json.dumps({"echo": json.loads(request.body)["q"]}).encode()
    return RawResponse(200, Headers({"V9-Signature": "ok"} if signed else {}), body)


def _v9_screen(status: int, headers) -> None:
    if 200 <= status < 300 and "V9-Signature" not in headers:
        raise SignatureError("missing_header", "a v9 answer without V9-Signature")


class V9:
    """Every hook a family answers, for "v9" only: facts, codec, signer, verifier."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.family = Family(refusal=self.refusal, screen=_v9_screen)

    @staticmethod
    def refusal(descriptor, credentials):
        return None if credentials.apiv2_key is not None else f"{descriptor.id} is signed with the APIv2 key"

    @hookimpl
    def wxpay_protocol_family(self, descriptor):
        self.asked.append(descriptor.id)
        return self.family if descriptor.protocol == "v9" else None

    @hookimpl
    def wxpay_body_codec(self, descriptor):
        from engine.serialize import JSON_CODEC

        return JSON_CODEC if descriptor.protocol == "v9" else None

    @hookimpl
    def wxpay_sign_request(self, request, signing, descriptor):
        return f"V9 nonce={signing.nonce}" if descriptor.protocol == "v9" else None

    @hookimpl
    def wxpay_verify_response(self, response, descriptor):
        if descriptor is None or descriptor.protocol != "v9":
            return None
        return "v9-key" if response.headers.get("V9-Signature") == "ok" else None


def _v9_engine(identity, transport, without: tuple[str, ...] = ()) -> Engine:
    settings = {k: v for k, v in identity.engine_settings().items() if k not in without}
    engine = Engine(**settings, transport=transport, plugins=[V9()], load_entry_points=False)
    engine.register(V9_ECHO)
    return engine


def test_hook_wxpay_protocol_family(identity) -> None:
    transport = ScreeningTransport(_v9_answer)
    with _v9_engine(identity, transport) as engine:
        v9 = next(p for p in engine.plugin_manager.get_plugins() if isinstance(p, V9))
        answers = [engine.call("v9.echo.post", {"q": q}) for q in ("a", "b")]
        assert [(a.data, a.verified_with) for a in answers] == [({"echo": "a"}, "v9-key"), ({"echo": "b"}, "v9-key")]
        assert v9.asked == ["v9.echo.post"]  # once per descriptor, not per call
        assert [c.screen for c in transport.configs] == [_v9_screen, _v9_screen]  # the family's, not APIv3's
        assert transport.requests[0].headers["Authorization"].startswith("V9 nonce=")
        transport.handler = lambda request: _v9_answer(request, signed=False)
        with pytest.raises(SignatureError, match="without V9-Signature"):
            engine.call("v9.echo.post", {"q": "c"})
    refused = ScreeningTransport(_v9_answer)
    engine = _v9_engine(identity, refused, without=("apiv2_key",))
    with engine, pytest.raises(ConfigurationError, match=r"^v9\.echo\.post is signed with the APIv2 key$"):
        engine.call("v9.echo.post", {"q": "a"})
    assert refused.requests == []  # refused before anything was signed or sent


def test_the_stubber_queues_no_answer_to_a_call_the_family_refuses(identity) -> None:
    from engine.testing import Stubber

    engine = _v9_engine(identity, ScreeningTransport(_v9_answer), without=("apiv2_key",))
    with engine, Stubber(engine) as stub, pytest.raises(ConfigurationError) as caught:
        stub.add_response("v9.echo.post", {"echo": "a"})
    assert str(caught.value) == "queuing an answer for v9.echo.post: v9.echo.post is signed with the APIv2 key"


def test_an_unknown_protocol_family_is_a_configuration_error_at_first_use(make_engine) -> None:
    engine = make_engine()
    engine.register(attrs.evolve(V9_ECHO, id="v8.echo.post", protocol="v8"))
    with pytest.raises(ConfigurationError, match=r"no plugin answers for the protocol family 'v8' of v8\.echo\.post"):
        engine.call("v8.echo.post", {"q": "a"})

    class Wrong:
        @hookimpl
        def wxpay_protocol_family(self, descriptor):
            return {"screen": None} if descriptor.protocol == "v7" else None

    engine = make_engine(plugins=[Wrong()])
    engine.register(attrs.evolve(V9_ECHO, id="v7.echo.post", protocol="v7"))
    with pytest.raises(ConfigurationError, match=r"answered dict for v7\.echo\.post, not an engine\.Family"):
        engine.call("v7.echo.post", {"q": "a"})
    assert engine.emulator.exchanges == []


def test_family_facts_and_codecs_are_asked_again_after_their_plugins_change(make_engine) -> None:
    class Closed(Recorder):
        @hookimpl
        def wxpay_protocol_family(self, descriptor):
            self.seen.append(descriptor.id)
            return Family(refusal=lambda descriptor, credentials: f"{descriptor.id} is closed today")

    class Codec(Recorder):
        @hookimpl
        def wxpay_body_codec(self, descriptor):
            self.seen.append(descriptor.id)
            return None

    engine = make_engine()
    assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200
    closed, codec = Closed(), Codec()
    engine.plugin_manager.register(closed)
    engine.plugin_manager.register(codec)
    with pytest.raises(ConfigurationError, match=r"^v3\.ecommerce\.combine_papay.* is closed today$"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert len(engine.emulator.exchanges) == 1  # the refusal came before anything was sent
    engine.plugin_manager.unregister(closed)
    assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200  # APIv3's facts again
    assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200
    # both asked together at the first call after each change (registering, unregistering), then not
    # again: answers kept from before a change would never have asked the new plugin
    assert closed.seen == [COMBINE_ID] and codec.seen == [COMBINE_ID, COMBINE_ID]


def test_a_plugin_registered_while_another_thread_asks_is_not_forgotten(make_engine) -> None:
    """A thread asking the old plugins when a new one arrives must not keep the old answer for good:
    it is stamped with the old generation of plugins, so the next call asks again."""
    import threading

    asking, release = threading.Event(), threading.Event()

    class Slow(Recorder):
        @hookimpl
        def wxpay_protocol_family(self, descriptor):
            if descriptor.id == COMBINE_ID and not release.is_set():
                asking.set()
                release.wait(3 * PATIENCE)  # asked, and slow to answer, while the plugins change
            return Family(refusal=lambda descriptor, credentials: "refused by the first plugin")

    class Newer(Recorder):
        @hookimpl(tryfirst=True)
        def wxpay_protocol_family(self, descriptor):
            return Family(refusal=lambda descriptor, credentials: "refused by the newer plugin")

    engine = make_engine(plugins=[Slow()])
    refusals: list[str] = []

    def call_slowly() -> None:
        with pytest.raises(ConfigurationError) as caught:
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
        refusals.append(str(caught.value))

    slow = threading.Thread(target=call_slowly)
    slow.start()
    assert asking.wait(PATIENCE)
    engine.plugin_manager.register(Newer())
    with pytest.raises(ConfigurationError, match="refused by the newer plugin"):
        engine.call("GET /v3/certificates")  # another descriptor, asked under the new plugins
    release.set()
    slow.join(PATIENCE)
    assert refusals == ["refused by the first plugin"]  # it was asked before the change
    for _ in range(2):  # but its answer is not kept: the next calls ask the plugins of now
        with pytest.raises(ConfigurationError, match="refused by the newer plugin"):
            engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.close()


def test_the_stubber_leaves_family_facts_and_codecs_as_they_were_asked(make_engine) -> None:
    """Its plugins answer other hooks: activating and deactivating it asks nothing again."""
    from engine.testing import Stubber

    class Asked(Recorder):
        @hookimpl
        def wxpay_protocol_family(self, descriptor):
            self.seen.append(descriptor.id)

    asked = Asked()
    engine = make_engine(plugins=[asked])
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    with Stubber(engine) as stub:
        answer = {"pre_entrustweb_id": "stubbed", "mchid": "1900000109", "plan_id": 1, "out_contract_code": "c"}
        stub.add_response("combine_papay.mini_program", answer)
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).data == answer
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert asked.seen == [COMBINE_ID]


def test_answers_are_screened_on_headers_by_family_and_trait_only(make_engine) -> None:
    """APIv3's signed answers are screened (``screen_answer``); APIv2's and unsigned ones are not."""
    from engine.protocol import screen_answer

    transport = ScreeningTransport(lambda request: engine.emulator.handle(request))

    class Serving:
        @hookimpl
        def wxpay_transport(self, config):
            return transport

    engine = make_engine(plugins=[Serving()])
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    engine.call("v2.micropay", MICROPAY)
    unsigned = attrs.evolve(engine.endpoint("combine_papay.mini_program"), id="test.unsigned.post", signed_answer=False)
    engine.register(unsigned)
    engine.call("test.unsigned.post", COMBINE_PAPAY)
    assert [config.screen for config in transport.configs] == [screen_answer, None, None]


def test_hook_wxpay_sign_request_for_a_body_signing_family(make_engine) -> None:
    class Observer(Recorder):
        @hookimpl(hookwrapper=True)
        def wxpay_sign_request(self, request, signing, descriptor):
            outcome = yield
            self.seen.append((descriptor.protocol, type(outcome.get_result()).__name__))

    observer = Observer()
    engine = make_engine(plugins=[observer])
    engine.call("v2.micropay", MICROPAY)
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert observer.seen == [("v2", "Request"), ("v3", "str")]  # APIv2 signs inside the body
    assert b"<sign>" in engine.emulator.exchanges[0].request.body


def test_hook_wxpay_sign_request(make_engine) -> None:
    class CountingSigner(Recorder):
        @hookimpl(hookwrapper=True)
        def wxpay_sign_request(self, request, signing):
            outcome = yield
            self.seen.append((request.target, signing.nonce, outcome.get_result()))

    signer = CountingSigner()
    engine = make_engine(plugins=[signer])
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    target, nonce, authorization = signer.seen[0]
    assert target == engine.emulator.last.request.target
    assert f'nonce_str="{nonce}"' in authorization
    assert engine.emulator.last.request.headers["Authorization"] == authorization


def test_hook_wxpay_sign_request_user_signer_overrides_builtin(make_engine) -> None:
    class BrokenSigner:
        @hookimpl
        def wxpay_sign_request(self, request, signing):
            return 'WECHATPAY2-SHA256-RSA2048 mchid="x",nonce_str="n",timestamp="1",serial_no="s",signature="AAAA"'

    engine = make_engine(plugins=[BrokenSigner()])
    with pytest.raises(Exception, match="SIGN_ERROR"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert engine.plugin_manager.is_registered(sys.modules["engine.plugins.signer"])  # built-in still there


def test_hook_wxpay_verify_response(make_engine) -> None:
    class Paranoid(Recorder):
        @hookimpl
        def wxpay_verify_response(self, response, keyring, now):
            self.seen.append(response.status)
            if b"pre_entrustweb_id" in response.body:
                raise SignatureError("mismatch", "this plugin trusts no pre-entrust id")
            return None  # defer to the built-in verifier

    paranoid = Paranoid()
    engine = make_engine(plugins=[paranoid])
    with pytest.raises(SignatureError, match="trusts no pre-entrust id"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert engine.call("password_exempt.ecommerce.pay_redirect_sign", _pay_redirect()).status == 200
    assert paranoid.seen == [200, 200]


def _pay_redirect() -> dict:
    from conftest import PAY_REDIRECT_SIGN

    return PAY_REDIRECT_SIGN


def test_hook_wxpay_verify_response_all_defer_means_rejected(identity) -> None:
    class Lazy:
        @hookimpl
        def wxpay_verify_response(self, response, keyring, now):
            return None

    engine = Engine.sandbox(identity=identity, plugins=[Lazy()], load_entry_points=False)
    engine.plugin_manager.unregister(sys.modules["engine.plugins.verifier"])
    with engine, pytest.raises(SignatureError) as caught:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert caught.value.reason == "unverified"


def test_hook_wxpay_encrypt_field(make_engine) -> None:
    class Tagging(Recorder):
        @hookimpl(hookwrapper=True)
        def wxpay_encrypt_field(self, plaintext, key):
            outcome = yield
            self.seen.append((len(plaintext), key.key_id, len(outcome.get_result())))

    tagging = Tagging()
    engine = make_engine(plugins=[tagging])
    engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    key_id = engine.emulator.identity.platform_public_key_id
    assert [(n, k) for n, k, _ in tagging.seen] == [(len("张三丰"), key_id), (18, key_id)]
    assert all(size == 344 for _, _, size in tagging.seen)  # base64 of a 256-byte RSA block


def test_hook_wxpay_encrypt_field_replacement_reaches_the_wire(make_engine) -> None:
    class Rot:
        @hookimpl
        def wxpay_encrypt_field(self, plaintext, key):
            return "not-really:" + plaintext[::-1]

    engine = make_engine(plugins=[Rot()])
    with pytest.raises(Exception, match="PARAM_ERROR"):  # the sandbox cannot decrypt it, like WeChat Pay
        engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    assert json.loads(engine.emulator.last.request.body)["cred_id"] == "not-really:" + REAL_NAME["cred_id"][::-1]


def test_hook_wxpay_decrypt_field(make_engine) -> None:
    class Watching(Recorder):
        @hookimpl(hookwrapper=True)
        def wxpay_decrypt_field(self, ciphertext, credentials):
            outcome = yield
            self.seen.append((ciphertext, outcome.get_result()))

    watching = Watching()
    engine = make_engine(plugins=[watching])
    engine.register(SECRET_ANSWER)
    data = engine.call("test.secret.post", {"q": "1"}).data
    on_wire = json.loads(engine.emulator.last.response.body)["holder_name"]
    assert watching.seen == [(on_wire, data["holder_name"])]
    assert on_wire != data["holder_name"] and data["plain"] == "p"


def test_hook_wxpay_before_send(make_engine) -> None:
    class Before(Recorder):
        @hookimpl
        def wxpay_before_send(self, call, request):
            self.seen.append((call.endpoint_id, call.attempt, "Authorization" in request.headers))

    before = Before()
    engine = make_engine(plugins=[before])
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    assert before.seen == [("v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post", 1, True)]


def test_hook_wxpay_after_response(make_engine) -> None:
    class After(Recorder):
        @hookimpl
        def wxpay_after_response(self, call, request, response, error, elapsed_ms):
            self.seen.append((response.status if response else None, error, elapsed_ms >= 0))

    after = After()
    engine = make_engine(plugins=[after])
    engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    with pytest.raises(Exception, match="RESOURCE_NOT_EXISTS"):
        engine.call("GET /v3/nothing/here")
    assert after.seen == [(200, None, True), (404, None, True)]


def test_entry_point_plugins_are_loaded(tmp_path: Path, identity, monkeypatch) -> None:
    package = tmp_path / "acme_wxpay_plugin.py"
    package.write_text(
        textwrap.dedent("""
        from engine import hookimpl
        CALLS = []

        @hookimpl
        def wxpay_before_send(call, request):
            CALLS.append(call.endpoint_id)
    """)
    )
    dist = tmp_path / "acme_wxpay_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-wxpay-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[wechatpay.plugins]\nacme = acme_wxpay_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    engine = Engine.sandbox(identity=identity)  # entry points load by default
    with engine:
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)
    import acme_wxpay_plugin

    assert acme_wxpay_plugin.CALLS == ["v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post"]
    without = Engine.sandbox(identity=identity, load_entry_points=False)
    assert not any(getattr(p, "__name__", "") == "acme_wxpay_plugin" for p in without.plugin_manager.get_plugins())


def _dist_info(directory: Path, name: str, entry_points: str | None) -> None:
    info = directory / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def test_entry_point_scan_is_skipped_only_when_no_distribution_can_declare_the_group(
    tmp_path: Path, monkeypatch
) -> None:
    from engine import plugin_manager

    quiet, declaring = tmp_path / "quiet", tmp_path / "declaring"
    quiet.mkdir(), declaring.mkdir()
    _dist_info(quiet, "no_entry_points", None)
    _dist_info(quiet, "other_group", "[console_scripts]\ntool = tool:main\n")
    _dist_info(declaring, "acme", "[console_scripts]\nx = y\n\n[wechatpay.plugins]\nacme = acme\n")
    group = plugin_manager.ENTRY_POINT_GROUP
    monkeypatch.setattr(sys, "path", [str(quiet), str(tmp_path / "missing")])
    assert not plugin_manager._may_declare(group)
    monkeypatch.setattr(sys, "path", [str(quiet), str(declaring)])
    assert plugin_manager._may_declare(group)
    monkeypatch.setattr(sys, "path", [quiet])  # Path entries, as importlib.metadata reads them
    assert not plugin_manager._may_declare(group)
    monkeypatch.setattr(sys, "path", [quiet, declaring])
    assert plugin_manager._may_declare(group)
    monkeypatch.setattr(sys, "path", [quiet, b"/not/text", object()])  # what it cannot read: the full scan decides
    assert plugin_manager._may_declare(group)
    egg = tmp_path / "acme-1.0.egg"
    (egg / "Egg-Info").mkdir(parents=True)  # importlib.metadata takes an unzipped egg's metadata in any case
    (egg / "Egg-Info" / "entry_points.txt").write_text("[wechatpay.plugins]\nacme = acme\n")
    monkeypatch.setattr(sys, "path", [str(quiet), str(egg)])
    assert plugin_manager._may_declare(group)
    # A zip on the path is read only by importlib.metadata: the full scan runs.
    (tmp_path / "bundle.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    monkeypatch.setattr(sys, "path", [str(quiet), str(tmp_path / "bundle.zip")])
    assert plugin_manager._may_declare(group)
    # So does a meta-path finder that supplies distributions of its own.
    monkeypatch.setattr(sys, "path", [str(quiet)])
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, type("Finder", (), {"find_distributions": None})()])
    assert plugin_manager._may_declare(group)


# A fresh process: keys from cryptography, an answer signed by hand, nothing from the sandbox (which
# loads APIv2 for its own emulator).
APIV3_ONLY_PROCESS = """
import json, secrets, sys, time
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from engine import Engine, Headers, MockTransport, RawResponse
from engine.crypto import rsa_sign
from engine.protocol import response_message

def pem(key, public=False):
    if public:
        return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

merchant, platform = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
key_id = "PUB_KEY_ID_0114232135432025080100001234567890"

def answer(request):
    body, timestamp, nonce = b'{"trade_state":"SUCCESS"}', int(time.time()), secrets.token_hex(16)
    signature = rsa_sign(platform, response_message(timestamp, nonce, body))
    headers = {"Wechatpay-Timestamp": str(timestamp), "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
               "Wechatpay-Serial": key_id, "Content-Type": "application/json"}
    return RawResponse(200, Headers(headers), body)

engine = Engine(mchid="1900000109", serial_no="ABCDEF1234", private_key=pem(merchant),
                platform_public_key=pem(platform, public=True), platform_public_key_id=key_id,
                transport=MockTransport(answer))
assert engine.call("GET /v3/pay/transactions/id/4200000001", {"mchid": "1900000109"}).status == 200
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("engine.v2", "xml", "importlib.metadata")))))
"""


def test_an_apiv3_process_loads_neither_apiv2_nor_entry_point_metadata(tmp_path: Path) -> None:
    """The cold-start promises of engine.v2 and engine.plugin_manager, checked where they matter."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", APIV3_ONLY_PROCESS], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_plugin_named_by_import_path(make_engine) -> None:
    engine = make_engine(plugins=["engine.plugins.call_log"])  # already registered: accepted, not doubled
    names = [getattr(p, "__name__", "") for p in engine.plugin_manager.get_plugins()]
    assert names.count("engine.plugins.call_log") == 1
    with pytest.raises(ConfigurationError, match=r"cannot import plugin 'no\.such\.module'"):
        make_engine(plugins=["no.such.module"])


def test_misspelt_hook_is_refused(make_engine) -> None:
    class Typo:
        @hookimpl
        def wxpay_sign_requets(self, request, signing):
            return "x"

    with pytest.raises(ConfigurationError, match="unknown hook"):
        make_engine(plugins=[Typo()])


def test_wrong_hook_arguments_are_refused(make_engine) -> None:
    class WrongArgs:
        @hookimpl
        def wxpay_sign_request(self, request, credentials):
            return "x"

    with pytest.raises(ConfigurationError, match="does not match the hook specifications"):
        make_engine(plugins=[WrongArgs()])


def test_engines_do_not_share_plugins(make_engine) -> None:
    class Marker:
        @hookimpl
        def wxpay_before_send(self, call, request):
            raise AssertionError("must not fire on the other engine")

    make_engine(plugins=[Marker()])
    assert make_engine().call("combine_papay.mini_program", COMBINE_PAPAY).status == 200


def test_exchange_repr_hides_payload(engine: Engine) -> None:
    engine.call("individual_contracts.real_name.mini_program", REAL_NAME)
    exchange: Exchange = engine.emulator.last
    assert REAL_NAME["cred_id"] not in repr(exchange)


def test_direct_caller_fast_path_keeps_pluggy_semantics(make_engine) -> None:
    from engine.pipeline import direct_caller

    engine = make_engine()
    hook = engine.plugin_manager.hook.wxpay_encrypt_field
    assert direct_caller(hook) is not hook  # only the built-in: called directly

    class Narrow:  # an implementation may take fewer arguments than the spec offers
        @hookimpl
        def wxpay_encrypt_field(self, plaintext):
            return "narrow:" + plaintext

    engine.plugin_manager.unregister(sys.modules["engine.plugins.field_crypto"])
    engine.plugin_manager.register(Narrow())
    assert direct_caller(hook)(plaintext="x", key=None) == "narrow:x"

    class Wrapper:
        @hookimpl(hookwrapper=True)
        def wxpay_encrypt_field(self, plaintext, key):
            yield

    engine.plugin_manager.register(Wrapper())
    assert direct_caller(hook) is hook  # a wrapper: pluggy dispatches


@pytest.mark.parametrize("first_result", [True, False])
def test_direct_call_of_several_plain_implementations_answers_as_pluggy_does(first_result: bool) -> None:
    """Order (tryfirst/trylast, latest first), the stop at the first answer, skipped Nones, raised errors."""
    import pluggy

    from engine.pipeline import direct_caller

    spec, impl = pluggy.HookspecMarker("probe"), pluggy.HookimplMarker("probe")

    class Spec:
        @spec(firstresult=first_result)
        def probe(self, value, seen):
            """Probe."""

    def plugin(name, answer, **marks):
        class Plugin:
            @impl(**marks)
            def probe(self, value, seen):
                seen.append(name)
                if answer == "raise":
                    raise LookupError(name)
                return None if answer is None else f"{name}:{value}"

        return Plugin()

    layouts = [
        [("a", "A", {}), ("b", None, {}), ("c", "C", {})],
        [("a", "A", {"tryfirst": True}), ("b", "B", {}), ("c", None, {"trylast": True})],
        [("a", None, {}), ("b", None, {})],
        [("a", "A", {}), ("b", "raise", {}), ("c", None, {})],
    ]
    for layout in layouts:
        manager = pluggy.PluginManager("probe")
        manager.add_hookspecs(Spec)
        for name, answer, marks in layout:
            manager.register(plugin(name, answer, **marks), name=name)
        direct = direct_caller(manager.hook.probe)
        assert direct is not manager.hook.probe
        outcomes = []
        for caller in (manager.hook.probe, direct):
            seen: list[str] = []
            try:
                outcomes.append((caller(value=1, seen=seen), seen))
            except LookupError as exc:
                outcomes.append((f"raised {exc}", seen))
        assert outcomes[0] == outcomes[1], layout


def test_apiv3_built_ins_are_asked_before_apiv2_ones(engine: Engine) -> None:
    """Pluggy calls implementations from the back of this list: an APIv3 call never reaches APIv2's."""
    for hook, v3, v2 in (
        ("wxpay_body_codec", "json_codec", "v2_codec"),
        ("wxpay_sign_request", "signer", "v2_signer"),
        ("wxpay_verify_response", "verifier", "v2_verifier"),
        ("wxpay_protocol_family", "family", "v2_family"),
    ):
        order = [impl.plugin_name for impl in getattr(engine.plugin_manager.hook, hook).get_hookimpls()]
        assert order[-2:] == [f"engine.plugins.{v2}", f"engine.plugins.{v3}"], hook
