"""The one error a people-facing page shows: a status and a message in the reader's language."""

from __future__ import annotations


class PageError(Exception):
    """A search that cannot run: shown on the page with this status, in the reader's language."""

    def __init__(self, status: int, key: str, **values: object) -> None:
        super().__init__(key)
        self.status, self.key, self.values, self.message = status, key, values, ""

    @classmethod
    def plain(cls, status: int, message: str) -> PageError:
        err = cls(status, "")
        err.message = message
        return err
