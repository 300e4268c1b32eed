"""The offline WeChat Pay: an emulator core, its throwaway identity, and its recorded exchanges."""

from engine.sandbox.emulator import Exchange, Sandbox
from engine.sandbox.identity import SandboxIdentity

__all__ = ["Exchange", "Sandbox", "SandboxIdentity"]
