"""Errors of the SecAgg+ core."""

from __future__ import annotations


class SecAggError(ValueError):
    """A protocol step refused or impossible; the message names the site, round and reason."""


class SignatureError(SecAggError):
    """A signed message whose signature does not verify under the expected key."""


class RefusedRequest(SecAggError):
    """A site refuses an unmasking request (both shares of one site, wrong round, ...)."""
