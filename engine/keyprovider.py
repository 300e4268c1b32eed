"""Where WeChat Pay's keys come from: the protocol the pipeline awaits, and its fixed-key form.

Design decisions:

* The executor does not know about certificate downloads. It awaits a ``KeyProvider``: ``ready()``
  before a call (certificate mode fetches the certificates on first contact) and
  ``for_serial(serial)`` when an answer or callback names a key the keyring lacks (rotation). The
  provider owns its keyring; the pipeline only reads it.
* ``StaticKeys`` is public-key mode (and certificate mode without the APIv3 key): the keys given at
  construction, never refreshed. ``engine.certificates.CertificateKeys`` downloads and rotates.
"""

from __future__ import annotations

from typing import Optional, Protocol

from engine.errors import ConfigurationError
from engine.keys import PlatformKey, PlatformKeyring


class KeyProvider(Protocol):
    """WeChat Pay's verifying and encrypting keys, kept current."""

    keyring: PlatformKeyring

    @property
    def refreshes(self) -> bool:
        """True when ``for_serial`` can find keys the keyring does not hold yet."""

    async def ready(self) -> None:
        """Make sure there is a key to call with (may download, on first contact)."""

    async def for_serial(self, serial: str) -> Optional[PlatformKey]:
        """The key named ``serial``, refreshing once if it is unknown; ``None`` if it stays unknown."""

    async def refresh(self) -> list[str]:
        """Fetch the current keys now; return their ids."""


class StaticKeys:
    """The keys given to the engine, and nothing else."""

    refreshes = False

    def __init__(self, keyring: PlatformKeyring) -> None:
        self.keyring = keyring

    async def ready(self) -> None:
        return None

    async def for_serial(self, serial: str) -> Optional[PlatformKey]:
        return self.keyring.find(serial)

    async def refresh(self) -> list[str]:
        raise ConfigurationError("downloading platform certificates needs the apiv3_key")
