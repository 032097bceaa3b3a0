"""sercli: speech emotion recognition for folders of recordings.

>>> import sercli
>>> r = sercli.classify_file("clip.wav")          # a ClipResult
>>> for r in sercli.classify(["a.wav", "b.wav"]): ...
"""

__version__ = "0.2.0"

__all__ = ["classify", "classify_file", "ClipResult", "Segment", "load_model", "SercliError"]


def __getattr__(name):
    # lazy, so `import sercli` (and `sercli --help`) do not pull in numpy or torch
    if name in ("classify", "classify_file", "ClipResult", "Segment"):
        from .runtime import classify

        return getattr(classify, name)
    if name == "load_model":
        from .models import load_model

        return load_model
    if name == "SercliError":
        from .errors import SercliError

        return SercliError
    raise AttributeError(f"module 'sercli' has no attribute {name!r}")
