"""Settings: parsing, precedence and error messages."""

from __future__ import annotations

import pytest

from coroscope._config import SETTINGS, Config, ConfigError, is_enabled, parse_switch


class TestSwitch:
    """The COROSCOPE on/off switch."""

    @pytest.mark.parametrize("raw", ["1", "true", "TRUE", " on ", "yes"])
    def test_on(self, raw: str) -> None:
        """Enabling spellings are accepted in any case, with spaces."""
        assert parse_switch(raw) is True

    @pytest.mark.parametrize("raw", ["", "0", "false", "Off", "no"])
    def test_off(self, raw: str) -> None:
        """Disabling spellings (and empty) mean off."""
        assert parse_switch(raw) is False

    def test_bad(self) -> None:
        """Anything else is an error that lists the accepted values."""
        with pytest.raises(ValueError, match="1, true, on, yes"):
            is_enabled({"COROSCOPE": "maybe"})


class TestConfig:
    """Config.from_env: explicit arguments, then the environment, then defaults."""

    def test_defaults(self) -> None:
        """An empty environment gives the documented defaults."""
        config = Config.from_env({})
        assert config == Config(
            output="stderr", locals="safe", buffer_size=65_536, flush_timeout=2.0
        )

    def test_environment(self) -> None:
        """Each variable sets its field."""
        env = {
            "COROSCOPE_OUTPUT": "/tmp/x.log",
            "COROSCOPE_LOCALS": "OFF",
            "COROSCOPE_BUFFER": "10",
            "COROSCOPE_FLUSH_TIMEOUT": "0.5",
        }
        config = Config.from_env(env)
        assert (config.output, config.locals, config.buffer_size, config.flush_timeout) == (
            "/tmp/x.log",
            "off",
            10,
            0.5,
        )

    def test_explicit_beats_environment(self) -> None:
        """An explicit argument overrides the variable."""
        config = Config.from_env({"COROSCOPE_LOCALS": "off"}, locals="safe")
        assert config.locals == "safe"

    def test_every_problem_reported(self) -> None:
        """All bad values are reported together, each naming its variable."""
        with pytest.raises(ConfigError) as info:
            Config.from_env({"COROSCOPE_BUFFER": "0", "COROSCOPE_LOCALS": "x"})
        problems = info.value.problems
        assert len(problems) == 2
        assert any(p.startswith("COROSCOPE_BUFFER='0'") for p in problems)
        assert any(p.startswith("COROSCOPE_LOCALS='x'") and "safe, off" in p for p in problems)

    def test_bad_explicit_argument_names_the_argument(self) -> None:
        """A bad explicit value raises ValueError naming the argument, not the variable."""
        with pytest.raises(ValueError, match=r"buffer_size=-1"):
            Config.from_env({}, buffer_size=-1)

    def test_unknown_argument(self) -> None:
        """A misspelt setting is a TypeError, not silently ignored."""
        with pytest.raises(TypeError, match="bufer"):
            Config.from_env({}, bufer=3)

    def test_every_setting_documented(self) -> None:
        """Every Config field has exactly one Setting with a variable and a doc line."""
        fields = set(Config().as_dict())
        assert {s.field for s in SETTINGS} == fields == set(Config.__slots__)
        assert all(s.env.startswith("COROSCOPE_") and s.doc for s in SETTINGS)
        assert len({s.env for s in SETTINGS}) == len(SETTINGS)


class TestDocumentation:
    """The README's settings table is the settings' documentation."""

    def test_readme_lists_every_setting_with_its_default(self) -> None:
        """Every variable appears in the README's table, next to its default."""
        from pathlib import Path

        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
        defaults = Config()
        for setting in SETTINGS:
            rows = [line for line in readme.splitlines() if line.startswith(f"| `{setting.env}` |")]
            assert len(rows) == 1, setting.env
            default = getattr(defaults, setting.field)
            if isinstance(default, float) and default.is_integer():
                default = int(default)
            if isinstance(default, bool):
                default = "on" if default else "off"
            if isinstance(default, tuple) and setting.field != "redact":
                default = ",".join(default) if default else "(none)"
            if setting.field != "redact":
                assert f"`{default if default != '' else '(empty)'}`" in rows[0], rows[0]
        assert set(Config().as_dict()) == {s.field for s in SETTINGS}
