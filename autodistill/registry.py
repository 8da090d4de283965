"""A tiny named registry, one per extension point (transforms, losses, weightings, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """A name that is not registered, or a name registered twice."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Maps names to components. A miss lists the valid names; duplicates are refused."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"A {self.kind} named {name!r} is already registered.")
            self._items[name] = obj
            return obj

        return add

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it held. For tests that register a toy component and
        must leave the registry as they found it; a miss lists the valid names, as ``get`` does."""
        obj = self.get(name)
        del self._items[name]
        return obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"Unknown {self.kind} {name!r}. Valid names: {valid}.") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
