"""Fault scenarios (see reintegration.chaos_report)."""

from __future__ import annotations
