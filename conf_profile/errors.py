"""Errors that users see. Each carries a readable message that names the fix; the CLI prints it without a traceback."""


class ConfProfileError(Exception):
    """Base class: a problem the user can fix. `fix` says how."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} {self.fix}".strip() if self.fix else self.message


class ConfigError(ConfProfileError):
    """The configuration file or environment is wrong."""


class LakeError(ConfProfileError):
    """The lake cannot be reached, or an expected partition is missing."""


class ValidationFailed(ConfProfileError):
    """A critical data expectation failed; the run must stop. `report` holds the summary."""

    exit_code = 3

    def __init__(self, message: str, fix: str | None = None, report: dict | None = None):
        super().__init__(message, fix)
        self.report = report or {}


class TaxonomyError(ConfProfileError):
    """The taxonomy file is malformed."""


def yaml_problem(exc: Exception) -> str:
    """A YAML parser error on one line, with where it is ("line 2, column 9: expected ',' or '}' ..."):
    PyYAML's own text spans several lines with carets, which breaks the one-paragraph error contract."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    started = (f" ({context} at line {cmark.line + 1}, column {cmark.column + 1})"
               if context and cmark is not None else "")
    return " ".join(f"{where}{problem}{started}".split())
