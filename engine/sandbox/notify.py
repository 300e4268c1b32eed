"""Callbacks from the sandbox: build a notification as WeChat Pay does, deliver it, retry it.

Design decisions:

* The envelope is PROTOCOL.md §4's: ``id``, ``create_time``, ``resource_type``, ``event_type``,
  ``summary`` and a ``resource`` AEAD_AES_256_GCM-encrypted under the merchant's APIv3 key with a
  12-character nonce and ``associated_data`` = the resource's ``original_type``. It is signed
  exactly like an answer (same headers), so a receiver verifies it like any answer.
* Delivery treats 200 and 204 as success; anything else, a timeout (5 s) or a refused connection is
  a failure, retried on a schedule. The real schedule spans 24 hours (15 s ... 6 h); the sandbox's
  default is shortened to fractions of a second so tests run quickly, and is configurable.
* Delivery is the only network I/O of the sandbox core and the caller chooses the URL; tests point
  it at 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from typing import TYPE_CHECKING, Any, Optional, Sequence

import aiohttp
import attrs

from engine.crypto import aead_encrypt
from engine.serialize import encode_json
from engine.wire import Headers, RawResponse

if TYPE_CHECKING:
    from engine.sandbox.emulator import Sandbox

REAL_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
QUICK_SCHEDULE = (0.05, 0.1, 0.2)
ATTEMPT_TIMEOUT = 5.0


@attrs.frozen
class Delivery:
    """What happened to one notification: the status of each attempt (0 = no answer)."""

    notification_id: str
    url: str
    statuses: tuple[int, ...]

    @property
    def delivered(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] in (200, 204)


def build(
    sandbox: "Sandbox",
    event_type: str,
    resource: dict[str, Any],
    *,
    summary: str,
    original_type: str,
    create_time: Optional[str] = None,
) -> RawResponse:
    """A signed notification (as a RawResponse-shaped record: headers and body)."""
    nonce = secrets.token_hex(6)
    plaintext = encode_json(resource)
    envelope = {
        "id": str(uuid.uuid4()),
        "create_time": create_time or dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": aead_encrypt(sandbox.identity.apiv3_key, nonce, original_type, plaintext),
            "associated_data": original_type,
            "nonce": nonce,
        },
    }
    return sandbox.sign_answer(200, encode_json(envelope), Headers({}))


def delivery_session(timeout: float = 0.0) -> aiohttp.ClientSession:
    """The client session callbacks are POSTed with: each attempt bounded (``ATTEMPT_TIMEOUT`` unless
    given), and no cookies, as WeChat Pay keeps none from the merchant's answers (a receiver setting
    one on every answer would otherwise grow the session's jar)."""
    attempt = aiohttp.ClientTimeout(total=timeout or ATTEMPT_TIMEOUT)
    return aiohttp.ClientSession(timeout=attempt, cookie_jar=aiohttp.DummyCookieJar())


async def deliver(url: str, notification: RawResponse, schedule: Sequence[float] = QUICK_SCHEDULE) -> Delivery:
    """POST the notification until it is acknowledged or the schedule runs out."""
    notification_id = _notification_id(notification)
    statuses: list[int] = []
    async with delivery_session() as session:
        for wait in (0.0, *schedule):
            await asyncio.sleep(wait)
            statuses.append(await _attempt(session, url, notification))
            if statuses[-1] in (200, 204):
                break
    return Delivery(notification_id, url, tuple(statuses))


async def _attempt(session: aiohttp.ClientSession, url: str, notification: RawResponse) -> int:
    return (await post_once(session, url, notification))[0]


async def post_once(session: aiohttp.ClientSession, url: str, notification: RawResponse) -> tuple[int, str]:
    """One delivery attempt: the receiver's status and "", or 0 and why no answer came."""
    headers = {**dict(notification.headers.items()), "User-Agent": "Mozilla/4.0 (WeChat Pay Sandbox)"}
    try:
        async with session.post(url, data=notification.body, headers=headers) as answer:
            await answer.read()
            return answer.status, ""
    except TimeoutError:
        return 0, f"no answer within {ATTEMPT_TIMEOUT:g} s"
    except aiohttp.ClientError as exc:
        return 0, f"{type(exc).__name__}: {exc}"[:200]


def _notification_id(notification: RawResponse) -> str:
    import json

    return str(json.loads(notification.body)["id"])


def contract_signed_resource(sandbox: "Sandbox", payload: dict[str, Any]) -> dict[str, Any]:
    """The resource of a contract-signed callback, built from the pre-entrust-sign request."""
    resource = {
        "mchid": sandbox.identity.mchid,
        "appid": payload.get("appid"),
        "out_contract_code": payload.get("out_contract_code"),
        "contract_id": secrets.token_hex(12),
        "openid": payload.get("openid") or "o" + secrets.token_hex(13),
        "change_type": "ADD",
        "operate_time": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds"),
    }
    for name in ("plan_id", "service_id", "contract_display_account"):
        if name in payload:
            resource[name] = payload[name]
    return {k: v for k, v in resource.items() if v is not None}


def payment_succeeded_resource(
    sandbox: "Sandbox", out_trade_no: str, total: int, appid: Optional[str]
) -> dict[str, Any]:
    """The resource of a TRANSACTION.SUCCESS callback."""
    return {
        "mchid": sandbox.identity.mchid,
        "appid": appid or "wxd678efh567hg6787",
        "out_trade_no": out_trade_no,
        "transaction_id": "42000" + "".join(secrets.choice("0123456789") for _ in range(23)),
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "success_time": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds"),
        "payer": {"openid": "o" + secrets.token_hex(13)},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
    }
