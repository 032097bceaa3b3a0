"""What one classify run is asked for, as one frozen object handed down to every helper."""

from __future__ import annotations

from dataclasses import dataclass

from ..constants import DEFAULT_WINDOW_S, WINDOW_OVERLAP


@dataclass(frozen=True)
class Settings:
    """The settings of a classify run.

    Parameters
    ----------
    needs : tuple of str
        The features the model takes ("logmel", "summary", "mfcc", ...), computed per window.
    window_s : float
        Window length in seconds; recordings longer than 1.25 windows are cut into windows.
    overlap : float
        Fraction of a window that the next one overlaps (0 <= overlap < 1).
    debug : bool
        Raise unexpected errors of a file instead of giving the file an error row.
    top_k : int or None
        Also report the k best labels of each file.
    segments : bool
        Also report every window's scores.
    """

    needs: tuple[str, ...] = ()
    window_s: float = DEFAULT_WINDOW_S
    overlap: float = WINDOW_OVERLAP
    debug: bool = False
    top_k: int | None = None
    segments: bool = False

    def analyses_alike(self, other: Settings) -> bool:
        """Whether the window features of `other` serve this run (same windows and debug, at
        least the features this run needs)."""
        return (
            self.window_s == other.window_s
            and self.overlap == other.overlap
            and self.debug == other.debug
            and set(self.needs) <= set(other.needs)
        )
