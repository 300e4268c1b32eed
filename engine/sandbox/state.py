"""A sandbox's identity on disk: created once in a state directory, reused on every start.

Design decisions:

* Each key is its own PEM file, so any client in any language can be pointed at them; the
  manifest ``sandbox.json`` names every path (absolute) plus ids, serials and the APIv3 key.
* Private key files and the manifest (which holds the APIv3 key) are written ``0600``: throwaway
  secrets still deserve the habits of real ones.
* Every file is written whole or not at all: to a temporary file in the same directory, then
  renamed over the old one (``os.replace``), so a reader (another process, a restart after a
  crash) sees the old contents or the new ones, never a file cut short. Secret files are ``0600``
  from the first byte; the others get the umask's mode when new and keep theirs when rewritten, and
  a symlinked file has its target replaced, as a plain write would.
* Written durably, too (all but ``world.json``, whose saves are too frequent: ``write_private``):
  the temporary file is fsynced before the rename, so the name never points at
  blocks not yet on disk (after a power cut, a renamed-but-unsynced file can come back empty), and
  the directory after it, so the rename itself survives. Some systems cannot fsync a directory; that
  one step is skipped there, never the file's.
* A temporary file's name carries the writer's pid (``.NAME.tmp-PID-RANDOM``). One left by a process
  that died mid-write is removed when the state directory is taken up again (``load_or_create``,
  ``World.attach``), but only when that pid is not alive (``os.kill(pid, 0)`` says no such process):
  a live writer's file, this process's included, is never touched. Where no pid can be probed that
  way (not POSIX, where ``os.kill`` would end the process), nothing is removed.
* Reuse is all-or-nothing: a directory with a manifest is loaded as it is; anything else is created.
  A manifest written before APIv2 existed gets an APIv2 key and certificates on load, written back,
  and one written before ``pay_bank`` encryption its ``pay_bank`` key pair the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.errors import ConfigurationError
from engine.files import Unread, read_regular_file
from engine.keys import certificate_pem, load_private_key, private_pem, public_pem
from engine.sandbox.identity import SandboxIdentity
from engine.serialize import decode_json

MANIFEST = "sandbox.json"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is about 2 KiB
TEMPORARY = re.compile(r"^\..+\.tmp-(?P<pid>[0-9]+)-[0-9a-f]{12}$")  # _write's temporary files: the writer's pid
FILES = {
    "merchant_private_key_path": "merchant_private_key.pem",
    "merchant_public_key_path": "merchant_public_key.pem",
    "platform_private_key_path": "platform_private_key.pem",
    "platform_public_key_path": "platform_public_key.pem",
    "platform_certificate_path": "platform_certificate.pem",
    "merchant_certificate_path": "merchant_certificate.pem",  # apiclient_cert.pem (APIv2 TLS client certificate)
    "ca_certificate_path": "sandbox_ca.pem",  # trust it (SSL_CERT_FILE) to reach the sandbox over TLS
    "server_certificate_path": "server_certificate.pem",
    "pay_bank_private_key_path": "pay_bank_private_key.pem",  # risk/getpublickey's key pair (APIv2 pay_bank)
    "pay_bank_public_key_path": "pay_bank_public_key.pem",  # PKCS#1 PEM, as getpublickey answers it
}


def load_or_create(state_dir: Path) -> SandboxIdentity:
    """The identity stored in ``state_dir``, or a new one written there."""
    manifest = state_dir / MANIFEST
    remove_stale_temporaries(state_dir)
    if manifest.exists():
        return load(state_dir)
    identity = SandboxIdentity.generate()
    save(identity, state_dir)
    return identity


def load(state_dir: Path) -> SandboxIdentity:
    data = read_manifest(state_dir)
    if data is None:  # a FIFO, a directory, a binary file or JSON that is not an object: say so, not a traceback
        raise ConfigurationError(
            f"{MANIFEST} in {str(state_dir)!r} cannot be read (not a regular file holding a JSON object): "
            "remove it to start afresh"
        )
    try:
        identity = _identity(data)
    except (KeyError, TypeError, ValueError, AttributeError):  # a field missing, of the wrong type, or not PEM
        raise ConfigurationError(
            f"{MANIFEST} in {str(state_dir)!r} does not describe a sandbox (a field is missing or wrong, "
            "or a file it names is not PEM): remove it to start afresh"
        ) from None
    completed = identity.with_apiv2()
    if completed is not identity:  # a state dir from before APIv2: keep what is generated now
        save(completed, state_dir, data.get("base_url"))
    return completed


def _identity(data: dict[str, Any]) -> SandboxIdentity:
    certificate = x509.load_pem_x509_certificate(Path(data["platform_certificate_path"]).read_bytes())
    return SandboxIdentity(
        mchid=data["mchid"],
        merchant_serial_no=data["merchant_serial_no"],
        merchant_key=load_private_key(Path(data["merchant_private_key_path"])),
        platform_key=_own_key(Path(data["platform_private_key_path"])),
        platform_public_key_id=data["platform_public_key_id"],
        platform_certificate=certificate,
        apiv3_key=data["apiv3_key"].encode("ascii"),
        apiv2_key=str(data.get("apiv2_key", "")).encode("ascii"),
        ca_certificate=_certificate(data.get("ca_certificate_path")),
        merchant_certificate=_certificate(data.get("merchant_certificate_path")),
        server_certificate=_certificate(data.get("server_certificate_path")),
        pay_bank_key=_own_key_if_any(data.get("pay_bank_private_key_path")),
    )


def _certificate(path: Optional[str]) -> Optional[x509.Certificate]:
    if not path or not Path(path).exists():
        return None
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def _own_key(path: Path) -> Any:
    """The sandbox's own platform key, which it generated: skip the costly RSA consistency check (~30 ms)."""
    return serialization.load_pem_private_key(path.read_bytes(), None, unsafe_skip_rsa_key_validation=True)


def _own_key_if_any(path: Optional[str]) -> Any:
    """A key the sandbox generated, when a state dir from before it has one (``with_apiv2`` adds it otherwise)."""
    return _own_key(Path(path)) if path and Path(path).exists() else None


def read_manifest(state_dir: Path) -> Optional[dict[str, Any]]:
    """``sandbox.json`` of ``state_dir`` as a JSON object, or ``None`` when there is none to read.

    Bounded and regular-file only (``engine.files``): a state dir named by mistake may hold a FIFO, a
    binary file or JSON that is not an object, and a reader must say so, not block or raise a raw error.
    """
    content = read_regular_file(state_dir / MANIFEST, MAX_MANIFEST_BYTES)
    if isinstance(content, Unread):
        return None
    try:
        manifest = decode_json(content.decode("utf-8"))
    except ValueError:  # not UTF-8 (UnicodeDecodeError), or UnreadableJsonError
        return None
    return manifest if isinstance(manifest, dict) else None


def engine_settings(state_dir: Path) -> dict[str, Any]:
    """``Engine`` keyword arguments for a served sandbox, from its ``sandbox.json`` (both key modes).

    A ``ConfigurationError`` when there is no manifest to read; a ``KeyError`` when it lacks a setting.
    """
    manifest = read_manifest(state_dir)
    if manifest is None:
        raise ConfigurationError(f"no readable {MANIFEST} in {str(state_dir)!r}")
    return {
        "mchid": manifest["mchid"],
        "serial_no": manifest["merchant_serial_no"],
        "private_key": manifest["merchant_private_key_path"],
        "platform_public_key": manifest["platform_public_key_path"],
        "platform_public_key_id": manifest["platform_public_key_id"],
        "platform_certificates": [manifest["platform_certificate_path"]],
        "apiv3_key": manifest["apiv3_key"],
        **_apiv2_settings(manifest),
        "base_url": manifest["base_url"],
    }


def _apiv2_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """APIv2's settings, when the manifest has them (one written before APIv2 has not, until a restart)."""
    if not manifest.get("apiv2_key") or not manifest.get("merchant_certificate_path"):
        return {}
    settings = {
        "apiv2_key": manifest["apiv2_key"],
        "client_certificate": (manifest["merchant_certificate_path"], manifest["merchant_private_key_path"]),
    }
    if manifest.get("pay_bank_public_key_path"):
        settings["pay_bank_public_key"] = manifest["pay_bank_public_key_path"]
    return settings


def save(identity: SandboxIdentity, state_dir: Path, base_url: Optional[str] = None) -> Path:
    """Write the key files and the manifest; return the manifest's path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: (state_dir / filename).resolve() for name, filename in FILES.items()}
    _write(paths["merchant_private_key_path"], identity.merchant_private_pem(), secret=True)
    _write(paths["merchant_public_key_path"], public_pem(identity.merchant_key))
    _write(paths["platform_private_key_path"], private_pem(identity.platform_key), secret=True)
    _write(paths["platform_public_key_path"], identity.platform_public_pem())
    _write(paths["platform_certificate_path"], identity.platform_certificate_pem())
    _write(paths["merchant_certificate_path"], identity.merchant_certificate_pem())
    _write(paths["ca_certificate_path"], identity.ca_pem())
    assert identity.server_certificate is not None
    _write(paths["server_certificate_path"], certificate_pem(identity.server_certificate))
    assert identity.pay_bank_key is not None
    _write(paths["pay_bank_private_key_path"], private_pem(identity.pay_bank_key), secret=True)
    _write(paths["pay_bank_public_key_path"], identity.pay_bank_public_pem())
    return write_manifest(identity, state_dir, base_url)


def write_manifest(identity: SandboxIdentity, state_dir: Path, base_url: Optional[str]) -> Path:
    manifest: dict[str, Any] = {
        "base_url": base_url,
        "mchid": identity.mchid,
        "merchant_serial_no": identity.merchant_serial_no,
        "platform_public_key_id": identity.platform_public_key_id,
        "platform_certificate_serial": identity.platform_certificate_serial,
        "apiv3_key": identity.apiv3_key.decode("ascii"),
        "apiv2_key": identity.apiv2_key.decode("ascii"),
        **{name: str((state_dir / filename).resolve()) for name, filename in FILES.items()},
    }
    path = state_dir / MANIFEST
    _write(path, json.dumps(manifest, indent=2).encode(), secret=True)
    return path


def write_private(path: Path, data: bytes, durable: bool = True) -> None:
    """Write a file only its owner can read (keys, the manifest, the sandbox's objects).

    ``durable=False`` skips the fsyncs and keeps the one rename: ``world.json``, rewritten many times a
    second by the served sandbox's ticker on its event loop, where a sync per save stalled every answer.
    A crash still leaves the old file or the new one, whole; only a power cut can cost the last saves."""
    _write(path, data, secret=True, durable=durable)


def _write(path: Path, data: bytes, secret: bool = False, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` in one rename, durably unless told not to (see the module docstring)."""
    target = Path(os.path.realpath(path))  # a symlinked file stays a symlink: its target is replaced
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
    # Created by the kernel with the umask applied (0600 for secrets whatever the umask), as a
    # plain write of a new file would be; an existing file keeps its mode, a secret one is 0600.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            kept = 0o600 if secret else _existing_mode(target)
            if kept is not None:
                os.fchmod(file.fileno(), kept)
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())  # on disk before the name points at it
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if durable:
        _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; where the system cannot open or fsync a directory, skip it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # e.g. a file system that refuses fsync on directories: the file itself was synced
    finally:
        os.close(descriptor)


def remove_stale_temporaries(state_dir: Path) -> list[Path]:
    """Remove the temporary files in ``state_dir`` that writers which died mid-write left; return them.

    Only files named as ``_write`` names them, and only when their pid is not a live process.
    """
    if os.name != "posix":  # os.kill(pid, 0) elsewhere is not a probe: it would end the process
        return []
    try:
        names = os.listdir(state_dir)
    except OSError:  # no directory yet (load_or_create creates it), or unreadable: nothing to clean
        return []
    removed = []
    for name in names:
        found = TEMPORARY.match(name)
        if found and not _alive(int(found["pid"])):
            # best effort: another process may be cleaning up at the same time, and a file that cannot be
            # removed is no reason to refuse the state directory (what is written next has a name of its own)
            with contextlib.suppress(OSError):
                os.unlink(state_dir / name)
                removed.append(state_dir / name)
    return removed


def _alive(pid: int) -> bool:
    """Whether ``pid`` may be a live process: only "no such process" says it is not."""
    if pid <= 0:  # not a process id (0 and below name process groups): never judged dead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's; anything else: do not guess
        return True
    except OverflowError:  # beyond a C pid_t: no process here has it, so nothing says its writer died
        return True
    return True


def _existing_mode(path: Path) -> Optional[int]:
    """The permission bits of ``path`` when it exists (a rewritten file keeps them), else None."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
