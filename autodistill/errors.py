"""User-facing errors. Each names the key, flag or file that is wrong and what is allowed."""

from __future__ import annotations


class AutodistillError(Exception):
    """Base class: the CLI prints these as one clear line, without a traceback."""


class ConfigError(AutodistillError, ValueError):
    """A config key, type or value is wrong (raised before any work is done)."""


class DataError(AutodistillError, ValueError):
    """The data cannot be used: a missing file or column, an empty split, bad labels."""


class TeacherError(AutodistillError):
    """The teacher cannot be loaded or does not fit the task."""


class TrainingError(AutodistillError, RuntimeError):
    """Training stopped: a non-finite loss, a budget broken, ..."""


class BudgetError(AutodistillError, ValueError):
    """A student breaks a hard budget."""


class PickError(AutodistillError, ValueError):
    """The pick rule is malformed, or no trial satisfies it (the message then lists the closest)."""


class TeacherCacheError(TeacherError):
    """A teacher-output cache file is damaged (its files are removed, so the next run rebuilds them)."""


class ModelFolderError(AutodistillError, ValueError):
    """A saved model folder cannot be loaded safely: damaged or pickled weights, code it would run."""


class SearchError(AutodistillError, RuntimeError):
    """The search cannot go on (e.g. the same failure in every trial)."""
