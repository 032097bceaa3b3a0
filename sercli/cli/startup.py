"""classify's start: the workers boot (on a bundled model's features, already analysing) while
this process loads the model; a signal meanwhile ends the run with the report untouched."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click

from .checks import check_group_support
from .messages import die, say
from .plan import Plan
from .runguard import SignalGuard, leave, signal_number, stop_workers

if TYPE_CHECKING:  # numpy and torch only when a type checker reads this
    from ..models import Model
    from ..runtime.workers import StartedAnalysis


def cuda_wanted(device: str, model: str) -> bool:
    """--device: whether the encoder runs on CUDA; a usage error if cuda is asked and absent."""
    from ..models import REGISTRY

    if device == "cpu":
        return False
    if device == "auto" and model in REGISTRY and not model.startswith("whisper"):
        return False  # a bundled model without an encoder: no need to import torch here
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if device == "cuda" and not available:
        raise click.UsageError(
            "--device cuda: torch sees no CUDA GPU (a CPU-only torch build, or no driver); use --device cpu"
        )
    return available


def start_and_load(plan: Plan, guard: SignalGuard) -> tuple[Model, StartedAnalysis | None]:
    """The loaded model, and the analysis already started on its features (or None). An
    interrupt exits here, 128+signal, with no worker left; other failures leave the guard."""
    from ..errors import SercliError, display_path
    from ..models import needs_before_loading
    from ..runtime.classify import resolve_model
    from ..runtime.workers import default_jobs, start_analysis, start_workers

    started = None
    try:
        if plan.backend == "local":
            # a bundled model's features are known before torch is imported: the workers start
            # on them while this process loads the model (about a second)
            hint = needs_before_loading(plan.model) if plan.normalize_by == "none" and not plan.gpu else None
            if hint is not None:
                started = start_analysis(plan.files, hint, jobs=plan.jobs, window_s=plan.window, debug=plan.debug)
            if started is None:
                start_workers(min(plan.jobs or default_jobs(), len(plan.files)))  # they boot while the model loads
        m = resolve_model(plan.model, warn=plan.warn)
        if plan.gpu:
            m.use_device("cuda")
        if plan.normalize_by != "none":
            check_group_support(m)
    except BaseException as exc:
        guard.hold()
        if isinstance(exc, KeyboardInterrupt):  # before any row: the report is untouched
            signum = signal_number(exc)
            say(
                f"interrupted ({signal.Signals(signum).name}) while loading the model: 0 of "
                f"{plan.todo} files done" + (f", {display_path(plan.output)} unchanged" if plan.output else "")
            )
            stop_workers(started.results if started is not None else None, 128 + signum)
            guard.__exit__()
            leave(128 + signum)
        if started is not None:
            started.close()
        guard.__exit__()
        if isinstance(exc, SercliError):
            die(exc, plan.debug)
        raise
    return m, started
