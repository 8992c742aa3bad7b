"""Reading one ``[actions.NAME]`` table: typed keys, one error line per bad key.

Every problem is collected rather than raised at the first one, so a user fixing a config
sees all of them at once, each as ``[actions.webhook] url: must be http(s)://...``.
"""

from __future__ import annotations

from collections.abc import Sequence


class ActionConfigError(ValueError):
    """Bad action configuration; ``errors`` holds one line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


_MISSING = object()


class Section:
    """One config table. Getters return the default (and record an error) on bad values."""

    def __init__(self, name: str, table: object, errors: list[str]) -> None:
        self.name = name
        self.errors = errors
        self._used: set[str] = set()
        if not isinstance(table, dict):
            self.fail("", "must be a table")
            table = {}
        self.table: dict = table

    def fail(self, key: str, message: str) -> None:
        where = f"[{self.name}] {key}: " if key else f"[{self.name}] "
        self.errors.append(where + message)

    def has(self, key: str) -> bool:
        return key in self.table

    def _raw(self, key: str) -> object:
        self._used.add(key)
        return self.table.get(key, _MISSING)

    def str(self, key: str, default: str | None = None, *, required: bool = False,
            choices: Sequence[str] | None = None) -> str | None:  # fmt: skip
        value = self._raw(key)
        if value is _MISSING:
            if required:
                self.fail(key, "is required")
            return default
        if not isinstance(value, str):
            self.fail(key, f"must be a string, not {_kind(value)}")
            return default
        if choices is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
            return default
        return value

    def int(self, key: str, default: int, *, minimum: int | None = None,
            maximum: int | None = None) -> int:  # fmt: skip
        value = self._raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, not {_kind(value)}")
            return default
        return value if self._in_range(key, value, minimum, maximum) else default

    def float(self, key: str, default: float, *, minimum: float | None = None,
              maximum: float | None = None) -> float:  # fmt: skip
        value = self._raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number, not {_kind(value)}")
            return default
        return float(value) if self._in_range(key, value, minimum, maximum) else default

    def bool(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {_kind(value)}")
            return default
        return value

    def str_list(self, key: str, default: Sequence[str] = ()) -> list[str]:
        value = self._raw(key)
        if value is _MISSING:
            return list(default)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            self.fail(key, "must be a list of strings")
            return list(default)
        return list(value)

    def str_dict(self, key: str) -> dict[str, str]:
        value = self._raw(key)
        if value is _MISSING:
            return {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.fail(key, "must be a table of strings")
            return {}
        return dict(value)

    def sub(self, key: str) -> Section | None:
        """A nested table (``[actions.blocklist.nftables]``), or None when absent."""
        value = self._raw(key)
        if value is _MISSING:
            return None
        return Section(f"{self.name}.{key}", value, self.errors)

    def done(self) -> None:
        """Report keys nobody asked for: usually a typo the user wants to hear about."""
        for key in self.table:
            if key not in self._used:
                known = ", ".join(sorted(self._used))
                self.fail(str(key), f"unknown key (known: {known})")

    def _in_range(self, key: str, value: float, lo: float | None, hi: float | None) -> bool:
        if lo is not None and value < lo:
            self.fail(key, f"must be >= {lo}, not {value}")
            return False
        if hi is not None and value > hi:
            self.fail(key, f"must be <= {hi}, not {value}")
            return False
        return True


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip
