"""Builders and fakes shared by the tests (plain modules: test files import these, never each other)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
