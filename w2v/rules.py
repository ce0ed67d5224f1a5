"""Allowed values of a setting, stated once and checked everywhere the setting is read.

    from w2v.rules import Choice, Integer
    Integer(1).problem(0)          # -> "must be an integer >= 1, got 0"
    Choice(("step", "linear")).problem("cosine")   # -> "must be one of step, linear, got 'cosine'"

A rule's `problem(value)` is None for an allowed value, else the rest of a sentence that starts
with the setting's name ("<name> must be ..."). The library's TrainConfig checks its fields with
these rules (w2v.trainer.TRAIN_RULES); the pipeline's configuration schema reuses the same rule
objects for conf/'s keys, so an allowed value cannot drift between the two.
"""
import math
import re
from numbers import Integral, Real


class SettingError(ValueError):
    """An invalid setting: `name` is the setting, str(error) the whole sentence "<name> must be ..."."""

    def __init__(self, name: str, problem: str):
        self.name, self.problem = name, problem
        super().__init__(f"{name} {problem}")


def _is_integer(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


class Rule:
    """Base of all rules; `nullable`: None (YAML null) is allowed too."""

    def __init__(self, nullable: bool = False):
        self.nullable = nullable

    def problem(self, value) -> str | None:
        if value is None and self.nullable:
            return None
        if not self._allows(value):
            return f"must be {self.describe()}{' or null' if self.nullable else ''}, got {value!r}"
        return None

    def _allows(self, value) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, name: str, value) -> None:
        """Raise SettingError(name, ...) unless `value` is allowed."""
        problem = self.problem(value)
        if problem is not None:
            raise SettingError(name, problem)


class Integer(Rule):
    """An integer (not a bool) >= minimum."""

    def __init__(self, minimum: int = 0, nullable: bool = False):
        super().__init__(nullable)
        self.minimum = minimum

    def _allows(self, value) -> bool:
        return _is_integer(value) and value >= self.minimum

    def describe(self) -> str:
        return f"an integer >= {self.minimum}"


class Positive(Rule):
    """A finite real number (int or float, not a bool) > 0."""

    def _allows(self, value) -> bool:
        return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0

    def describe(self) -> str:
        return "a finite number > 0"


class NonNegative(Rule):
    """A finite real number (int or float, not a bool) >= 0."""

    def _allows(self, value) -> bool:
        return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0

    def describe(self) -> str:
        return "a finite number >= 0"


class Choice(Rule):
    """One of a fixed tuple of names."""

    def __init__(self, names, nullable: bool = False):
        super().__init__(nullable)
        self.names = tuple(names)

    def _allows(self, value) -> bool:
        return isinstance(value, str) and value in self.names

    def describe(self) -> str:
        return f"one of {', '.join(self.names)}"


class Either(Rule):
    """What any of `rules` allows (e.g. "auto" or an integer >= 1)."""

    def __init__(self, *rules, nullable: bool = False):
        super().__init__(nullable)
        self.rules = rules

    def _allows(self, value) -> bool:
        return any(rule.problem(value) is None for rule in self.rules)

    def describe(self) -> str:
        return " or ".join(rule.describe() for rule in self.rules)


class Boolean(Rule):
    def _allows(self, value) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"


class Text(Rule):
    """A non-empty string (names, paths, URLs)."""

    def _allows(self, value) -> bool:
        return isinstance(value, str) and bool(value.strip())

    def describe(self) -> str:
        return "a non-empty text"


_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class Sha256(Rule):
    """A sha256 digest: 64 hex digits."""

    def _allows(self, value) -> bool:
        return isinstance(value, str) and bool(_HEX64.match(value))

    def describe(self) -> str:
        return "64 hex digits (a sha256)"


class ListOf(Rule):
    """A non-empty list whose every entry `rule` allows (e.g. a grid of regularisation strengths)."""

    def __init__(self, rule: Rule, nullable: bool = False):
        super().__init__(nullable)
        self.rule = rule

    def _allows(self, value) -> bool:
        return isinstance(value, (list, tuple)) and len(value) > 0 and all(self.rule.problem(v) is None for v in value)

    def describe(self) -> str:
        return f"a non-empty list, each entry {self.rule.describe()}"
