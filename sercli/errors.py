"""One exception root for everything sercli raises on purpose.

Messages are one line and name the file and the reason, so the CLI can print them as is.
"""


class SercliError(Exception):
    """Root of sercli's own errors."""


class AudioError(SercliError):
    """A file could not be read as audio, or holds nothing to classify."""


class ModelError(SercliError):
    """A model file is missing, corrupt, unsafe or does not match its pinned hash."""


class CorpusError(SercliError):
    """A data folder or manifest cannot be used for training or evaluation."""


class RecipeError(SercliError):
    """A training recipe (file, `extends` chain or `--set` override) names an unknown key or
    gives a key a value of the wrong kind."""


def display_path(path) -> str:
    """`path` as one printable line, for messages: control characters and undecodable bytes
    are shown as escapes (a newline as \\n, byte 0xff as \\xff); other paths are unchanged."""
    import os

    p = os.fsdecode(path)
    if p.isprintable():
        return p
    out = []
    for c in p:
        if c.isprintable():
            out.append(c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            out.append(repr(c)[1:-1])
    return "".join(out)
