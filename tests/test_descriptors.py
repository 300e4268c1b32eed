"""Descriptor files, the strict converter, the id rule, aliases, lazy loading and user endpoints."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import COMBINE_PAPAY

from engine import Descriptor, DescriptorError, Engine, Field, RequestSpec, UnknownEndpointError, endpoint_id
from engine.registry import BUILTIN_ENDPOINTS, Registry, _is_parameter, _route_fit

SEED_IDS = {
    "combine_papay.mini_program": "v3.ecommerce.combine_papay.contracts.pre_entrust_sign.mini_program.post",
    "password_exempt.ecommerce.pay_redirect_sign": (
        "v3.password_exempt_contract.contracts.ecommerce.pre_entrust_sign.pay_redirect_sign.post"
    ),
    "individual_contracts.real_name.mini_program": (
        "v3.ecommerce.individual_contracts.pre_entrust_sign_with_real_name_identity.mini_program.post"
    ),
}


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            "POST",
            "/v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program",
            SEED_IDS["combine_papay.mini_program"],
        ),
        ("GET", "/v3/pay/transactions/id/{transaction_id}", "v3.pay.transactions.id._transaction_id_.get"),
        (
            "GET",
            "/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=1",
            "v3.pay.transactions.out_trade_no._out_trade_no_.get",
        ),
        (
            "PATCH",
            "/v3/marketing/busifavor/stocks/{stock_id}/budget",
            "v3.marketing.busifavor.stocks._stock_id_.budget.patch",
        ),
    ],
)
def test_id_rule(method: str, path: str, expected: str) -> None:
    assert endpoint_id(method, path) == expected


def test_builtin_files_follow_the_id_rule() -> None:
    registry = Registry([BUILTIN_ENDPOINTS])
    for known in registry.ids():
        descriptor = registry.get(known)
        assert endpoint_id(descriptor.method, descriptor.path, descriptor.host, descriptor.protocol) == known


@pytest.mark.parametrize(("alias", "canonical"), SEED_IDS.items())
def test_seed_aliases_resolve(engine: Engine, alias: str, canonical: str) -> None:
    assert engine.endpoint(alias) is engine.endpoint(canonical)
    assert engine.endpoint(alias).id == canonical


def test_method_and_path_resolve_to_the_descriptor(engine: Engine) -> None:
    ref = "POST /v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program"
    assert engine.endpoint(ref).id == SEED_IDS["combine_papay.mini_program"]
    with pytest.raises(Exception, match="missing required field"):
        engine.call(ref, {})  # a described path is validated even when called by path


def test_template_paths_match_concrete_paths(engine: Engine) -> None:
    engine.register(
        Descriptor(
            id="my.query",
            method="GET",
            path="/v3/pay/transactions/id/{transaction_id}",
            request=RequestSpec(path={"transaction_id": Field(required=True)}),
        )
    )
    assert engine.endpoint("GET /v3/pay/transactions/id/4200000001").id == "my.query"
    assert engine.endpoint("POST /v3/pay/transactions/id/4200000001").free_form  # other method: not described


def test_the_route_trie_finds_what_a_scan_of_every_template_finds() -> None:
    for key, routes in Registry([BUILTIN_ENDPOINTS])._route_index().items():
        for pattern, _ in routes.entries:
            for segments in _concrete(pattern, routes.entries):
                scanned = sorted((w, c) for p, c in routes.entries if (w := _route_fit(p, segments)) is not None)
                assert routes.fits(segments) == scanned, (key, segments)


def _concrete(pattern: tuple[str, ...], entries: list[tuple[tuple[str, ...], str]]) -> set[tuple[str, ...]]:
    """``pattern`` with each parameter a plain value; and, one parameter at a time, every literal a
    template of the group has in that place, so twin templates (a literal and a parameter) collide."""
    plain = tuple("x" if _is_parameter(segment) else segment for segment in pattern)
    found = {plain}
    for i, segment in enumerate(pattern):
        if _is_parameter(segment):
            found |= {(*plain[:i], other[i], *plain[i + 1 :]) for other, _ in entries if not _is_parameter(other[i])}
    return found


def test_undescribed_path_is_free_form(engine: Engine) -> None:
    descriptor = engine.endpoint("GET /v3/not/described")
    assert descriptor.free_form and descriptor.id == "GET /v3/not/described"


def test_unknown_id_names_the_closest(engine: Engine) -> None:
    with pytest.raises(UnknownEndpointError) as caught:
        engine.call("combine_papay.mini_programme", COMBINE_PAPAY)
    assert caught.value.suggestions[0] == "combine_papay.mini_program"
    assert "did you mean 'combine_papay.mini_program'" in str(caught.value)


def test_unknown_id_with_nothing_close(engine: Engine) -> None:
    with pytest.raises(UnknownEndpointError, match=r"^unknown endpoint 'zzz'$"):
        engine.call("zzz")


def test_loading_is_lazy(tmp_path: Path, identity) -> None:
    _write(tmp_path, "v3.broken.post.yaml", "method: POST\npath: /v3/broken\nencrpyted: true\n")
    engine = Engine.sandbox(identity=identity, endpoint_dirs=[tmp_path], load_entry_points=False)
    with engine:
        assert engine.call("combine_papay.mini_program", COMBINE_PAPAY).status == 200  # broken file never parsed
        assert set(engine.registry._loaded) == set()  # the engine's own layer: only its directory
        assert SEED_IDS["combine_papay.mini_program"] in engine.registry._parent._loaded  # the shared built-ins
        with pytest.raises(DescriptorError, match=r"v3\.broken\.post\.yaml: unknown key\(s\) encrpyted @ \$"):
            engine.call("v3.broken.post", {})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "method: POST\npath: /v3/x\nrequest:\n  body:\n    a: {type: string, encrpyted: true}\n",
            "unknown key(s) encrpyted @ $.request.body.a",
        ),
        ("method: FETCH\npath: /v3/x\n", "must be one of GET, POST, PUT, PATCH, DELETE @ $.method"),
        ("path: /v3/x\n", "required key missing @ $.method"),
        (
            "method: POST\npath: /v3/x\nrequest:\n  body:\n    a: {required: maybe}\n",
            "expected bool, got str 'maybe' @ $.request.body.a.required",
        ),
        (
            "method: POST\npath: /v3/x\nrequest:\n  body:\n    a: {type: int}\n",
            "must be one of string, integer, number, boolean, object, array, file @ $.request.body.a.type",
        ),
        ("method: GET\npath: /v3/x/{id}\n", "path parameter {id} has no field in request.path @ $.request.path"),
        (
            "method: POST\npath: /v3/x\nrequest:\n  body:\n    a: {type: array}\n",
            "an array field needs 'items' @ $.request.body.a",
        ),
        (
            "method: POST\npath: /v3/x\nrequest:\n  body:\n    a: {type: integer, encrypted: true}\n",
            "only string fields can be encrypted @ $.request.body.a",
        ),
        (
            "method: POST\npath: /v3/x\nrequest:\n  query: {a: {}}\n  body: {a: {}}\n",
            "field 'a' is declared in both query and body @ $.request.body.a",
        ),
        (
            "method: POST\npath: /v3/x\nrequest:\n  body:\n    a: {pattern: '('}\n",
            "pattern is not a valid regular expression",
        ),
        ("method: POST\npath: /v3/x\nresponse:\n  a: {enum: AB}\n", "expected list, got str 'AB' @ $.response.a.enum"),
        ("- just\n- a list\n", "expected a mapping at the top, got list @ $"),
        ("method: POST\npath: [unclosed\n", "not valid YAML at line"),
        ("id: other.id\nmethod: POST\npath: /v3/x\n", "id 'other.id' differs from the file name 'v3.x.post' @ $.id"),
    ],
)
def test_broken_descriptor_names_file_and_key_path(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, "v3.x.post.yaml", text)
    with pytest.raises(DescriptorError) as caught:
        Registry([tmp_path]).get("v3.x.post")
    assert str(path) in str(caught.value)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_user_directory_adds_and_overrides_endpoints(tmp_path: Path, make_engine) -> None:
    _write(
        tmp_path,
        "v3.shop.orders.post.yaml",
        """
        title: my order
        method: POST
        path: /v3/shop/orders
        request:
          body:
            sku: {type: string, required: true}
        response:
          order_id: {type: string, required: true}
          sku: {type: string}
    """,
    )
    _write(tmp_path, "aliases.yaml", "shop.order: v3.shop.orders.post\n")
    canonical = SEED_IDS["combine_papay.mini_program"]
    _write(
        tmp_path,
        f"{canonical}.yaml",
        """
        method: POST
        path: /v3/ecommerce/combine-papay/contracts/pre-entrust-sign/mini-program
        request:
          body:
            only_this: {type: string, required: true}
    """,
    )
    engine = make_engine(endpoint_dirs=[tmp_path])
    answer = engine.call("shop.order", {"sku": "A1"})
    assert answer.data["sku"] == "A1" and answer.data["order_id"]
    with pytest.raises(Exception, match=r"unknown field @ \$\.appid"):
        engine.call("combine_papay.mini_program", COMBINE_PAPAY)  # the user's file replaced the built-in


def test_descriptor_registered_in_python(engine: Engine) -> None:
    engine.register(
        Descriptor(
            id="py.echo",
            method="POST",
            path="/v3/py/echo",
            request=RequestSpec(body={"n": Field(type="integer", required=True)}),
            response={"n": Field(type="integer", required=True)},
        ),
        aliases=["echo"],
    )
    assert engine.call("echo", {"n": 7}).data == {"n": 7}
    assert "py.echo" in engine.endpoints()


@pytest.mark.parametrize("endpoint", ["my custom", "py.echo\tpost"])
def test_a_descriptor_id_with_whitespace_is_refused(engine: Engine, endpoint: str) -> None:
    """A space is what tells an ad-hoc "METHOD /path" call's descriptor apart (engine.descriptor.is_adhoc):
    a registered one with a space got no cached plan, and the sandbox could not queue a fault for it."""
    with pytest.raises(DescriptorError, match="an id holds no whitespace"):
        engine.register(Descriptor(id=endpoint, method="POST", path="/v3/py/echo"))


def test_endpoint_dirs_must_exist(identity) -> None:
    from engine import ConfigurationError

    with pytest.raises(ConfigurationError, match="is not a directory"):
        Engine.sandbox(identity=identity, endpoint_dirs=["/nonexistent/dir"], load_entry_points=False)


def test_bad_aliases_file(tmp_path: Path) -> None:
    _write(tmp_path, "aliases.yaml", "- not a mapping\n")
    with pytest.raises(DescriptorError, match="expected a mapping of alias: canonical id"):
        Registry([tmp_path]).get("anything")


def test_descriptors_are_frozen(engine: Engine) -> None:
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        engine.endpoint("combine_papay.mini_program").path = "/elsewhere"  # type: ignore[misc]


def test_a_descriptor_registered_again_is_validated_by_its_own_fields(engine: Engine) -> None:
    import attrs

    first = Descriptor(
        id="py.again.post", method="POST", path="/v3/again", request=RequestSpec(body={"a": Field(required=True)})
    )
    engine.register(first)
    engine.pipeline.prepare("py.again.post", {"a": "x"})  # compiles and keeps the first validator
    engine.register(attrs.evolve(first, request=RequestSpec(body={"b": Field(type="integer", required=True)})))
    assert engine.pipeline.prepare("py.again.post", {"b": 1}).request.body == b'{"b":1}'


def test_python_descriptors_get_the_same_checks_as_files(engine: Engine) -> None:
    broken = Descriptor(id="py.broken", method="GET", path="/v3/items/{item_id}")
    with pytest.raises(DescriptorError) as caught:
        engine.register(broken)
    assert str(caught.value) == (
        "invalid descriptor 'py.broken' (registered in Python): "
        "path parameter {item_id} has no field in request.path @ $.request.path"
    )


def test_a_descriptor_registered_after_a_lookup_replaces_what_that_lookup_remembered() -> None:
    import attrs

    registry = Registry(parent=Registry([BUILTIN_ENDPOINTS]))
    builtin = registry.get("combine_papay.mini_program")
    assert registry.get("combine_papay.mini_program") is builtin  # remembered: the same object
    replacement = attrs.evolve(builtin, path="/v3/mine")
    registry.register(replacement)  # same id: the engine's own endpoint now wins over the catalogue's
    assert registry.get("combine_papay.mini_program") is replacement
    assert registry.get(builtin.id) is replacement
    other = attrs.evolve(builtin, id="v3.other.post", path="/v3/other")
    registry.register(other, aliases=["combine_papay.mini_program"])  # an alias moved to another id
    assert registry.get("combine_papay.mini_program") is other
