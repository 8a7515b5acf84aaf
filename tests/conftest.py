"""Shared fixtures. ``harness`` (beside this file) builds in-process clusters."""

from __future__ import annotations

import logging

logging.getLogger("quic").setLevel(logging.WARNING)
