"""``modelyard serve``'s own settings: the log level."""

from __future__ import annotations

import pytest

from modelyard.cli.serve import log_level
from modelyard.errors import ConfigError


def test_the_log_level_is_info_unless_modelyard_log_level_says_otherwise() -> None:
    assert log_level({}) == "INFO"
    assert log_level({"MODELYARD_LOG_LEVEL": ""}) == "INFO"
    assert log_level({"MODELYARD_LOG_LEVEL": " debug "}) == "DEBUG"
    with pytest.raises(ConfigError, match="MODELYARD_LOG_LEVEL must be one of DEBUG, INFO"):
        log_level({"MODELYARD_LOG_LEVEL": "verbose"})
