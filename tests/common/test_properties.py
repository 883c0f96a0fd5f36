"""common.properties: Java-properties lines (comments, continuations) read and edited in place."""

from pathlib import Path

import pytest

from common.cli import UserError
from common.properties import derive_config, logical_lines, read_properties, read_properties_text

TEXT = """# a comment
inference_address=http://127.0.0.1:8080
! another comment
model_snapshot={"a": 1,\\
  "b": 2}
path=C:\\\\dir\\\\
next=value
"""


def test_continuations_join_and_comments_are_skipped():
    assert read_properties_text(TEXT) == {
        "inference_address": "http://127.0.0.1:8080",
        "model_snapshot": '{"a": 1,"b": 2}',
        "path": "C:\\\\dir\\\\",  # an even number of trailing backslashes does not continue
        "next": "value",
    }


def test_logical_lines_keep_their_physical_lines():
    entries = logical_lines(TEXT)
    snapshot = next(physical for line, physical in entries if line.startswith("model_snapshot"))
    assert snapshot == ['model_snapshot={"a": 1,\\', '  "b": 2}']


def test_derive_config_replaces_values_keeps_comments_and_appends_new_keys():
    derived = derive_config(TEXT, {"inference_address": "http://127.0.0.1:9080", "extra": "1"})
    assert "# a comment" in derived and derived.endswith("extra=1\n")
    parsed = read_properties_text(derived)
    assert parsed["inference_address"] == "http://127.0.0.1:9080"
    assert parsed["model_snapshot"] == '{"a": 1,"b": 2}'


def test_missing_file_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        read_properties(tmp_path / "config.properties")
