"""Argument and output-path checks shared by the command-line tools, and quiet signal handling.

Value checks raise ``ValueError`` with the flag and the bad value; the commands call them from
``__post_init__`` (tyro reports them as parse errors) or at the top of ``execute()`` (reported as
one ``error:`` line). Path checks run before any work, so a bad output path never costs a render
or a training run, and never replaces an input or an existing file without ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from ovseg_core.errors import UsageError

MAX_IMAGE_SIDE = 16384
"""Longest image side accepted."""
MAX_IMAGE_PIXELS = 7680 * 4320
"""Largest image accepted: the 8K UHD pixel count (33.2 MP); a CPU frame needs ~100 bytes a pixel."""
MAX_PROMPT_CHARS = 1000
"""CLIP reads 77 tokens (a few hundred characters); anything longer is a mistake, not a prompt."""
MAX_VIDEO_FRAMES = 3000
"""Most frames a rendered video (an orbit or a viewer camera path) may have: 100 s at 30 fps."""


def check_positive(flag: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a positive number, got {value}")


def check_fov(flag: str, degrees: float) -> None:
    if not (math.isfinite(degrees) and 0 < degrees < 180):
        raise UsageError(f"{flag} must lie strictly between 0 and 180 degrees, got {degrees}")


def check_image_size(width: int, height: int, what: str = "--width/--height") -> None:
    if width <= 0 or height <= 0:
        raise UsageError(f"{what}: image size must be positive, got {width}x{height}")
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise UsageError(
            f"{what}: {width}x{height} is too large (at most {MAX_IMAGE_SIDE} a side and "
            f"{MAX_IMAGE_PIXELS / 1e6:.1f} megapixels)"
        )


def check_cameras(cameras: Sequence, source: str) -> list:
    """``cameras`` unchanged, once each has an image size ``check_image_size`` accepts."""
    for i, cam in enumerate(cameras):
        check_image_size(cam.width, cam.height, f"{source} camera {i}")
    return list(cameras)


def check_prompts(flag: str, prompts: Iterable[str]) -> None:
    for prompt in prompts:
        if not prompt.strip():
            raise UsageError(f"{flag}: empty prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise UsageError(f"{flag}: a prompt of {len(prompt):,} characters; at most {MAX_PROMPT_CHARS} are accepted")


def check_output_file(
    flag: str, path: Path, *, inputs: Iterable[Path | None] = (), overwrite: bool = False, override: str = "--overwrite"
) -> None:
    """Refuse, before any work, an output file that would replace an input, an existing file
    (unless ``overwrite``) or a directory, that has a degenerate name, or whose folder cannot be made."""
    name = path.name
    if not name or name.strip(".") == "" or Path(name).stem.strip(". ") == "":
        raise UsageError(f"{flag} {str(path)!r}: not a usable file name")
    for source in inputs:
        if source is not None and _same_file(path, source):
            raise UsageError(f"{flag} {path} is an input of this command ({source}); write somewhere else")
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise UsageError(f"{flag} {path} already exists; pass {override} to replace it")
    _check_creatable_dir(flag, path.parent)


def check_scene_output(flag: str, path: Path) -> None:
    """Refuse, before any work, a scene file name whose extension names no format ``save_scene`` writes."""
    from ovseg_core.io.scene_file import format_for_name, writable_suffixes

    fmt = format_for_name(path)
    if fmt is None or fmt.write is None:
        raise UsageError(f"{flag} {path}: ovseg writes scenes as {', '.join(writable_suffixes())} (by extension)")


def check_output_dir(flag: str, path: Path) -> None:
    """Refuse an output folder that is a file or cannot be created or written."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a directory")
    _check_creatable_dir(flag, path)


def _check_creatable_dir(flag: str, folder: Path) -> None:
    existing = folder if str(folder) else Path(".")
    while not existing.exists():
        if existing.is_symlink():
            raise UsageError(f"{flag}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        if existing == folder:
            raise UsageError(f"{flag}: {folder} is a file, not a directory")
        raise UsageError(f"{flag}: {existing} is a file, so {folder} cannot be a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: {existing} is not writable")


def check_input_paths(**flags: Path | None) -> None:
    """Refuse inputs that are FIFOs, sockets or devices (reading one blocks or never ends);
    ``flags`` maps a flag's name (``camera`` for ``--camera``) to its path."""
    for flag, path in flags.items():
        if path is not None and path.exists() and not (path.is_file() or path.is_dir()):
            raise UsageError(f"--{flag.replace('_', '-')} {path} is not a regular file (a FIFO, socket or device)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def exit_quietly_on_signals(prog: str) -> None:
    """Make SIGINT and SIGTERM end ``prog`` with one line on stderr and exit code 130/143, no
    traceback; ``finally`` blocks still run on the way out, so temporary files are removed."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        name = signal.Signals(signum).name
        print(f"\n{prog}: stopped by {name}; partial outputs removed", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def signals_held_until_checked() -> Iterator[Callable[[], None]]:
    """Hold SIGINT/SIGTERM while a child process (ffmpeg) writes our output, and yield ``check()``:
    the held signal's own handler runs when the caller calls it, between two frames.

    A handler that raises inside imageio's writer makes it kill ffmpeg without waiting, and an ffmpeg
    still finishing can re-create the temporary file after we removed it; stopping between frames
    lets the writer close ffmpeg normally first. No-op off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    held: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signum)

    def check() -> None:
        if held:
            handler = previous[held[0]]
            if callable(handler):
                handler(held[0], None)
            raise KeyboardInterrupt if held[0] == signal.SIGINT else SystemExit(128 + held[0])

    for s in previous:
        signal.signal(s, hold)
    try:
        yield check
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def sigterm_as_interrupt() -> None:
    """Make SIGTERM stop like Ctrl-C (``KeyboardInterrupt``): a command's own clean-up and its one-line
    "interrupted" message then run for both. No-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def check_render_args(cmd) -> None:  # noqa: ANN001 (ovseg_app.render_cli.RenderCommand)
    """Values of ``ovseg-render``'s flags (parse time)."""
    check_image_size(cmd.width, cmd.height)
    check_fov("--fov-deg", cmd.fov_deg)
    check_positive("--fps", cmd.fps)
    check_positive("--downsample", cmd.downsample)
    check_positive("--radius-scale", cmd.radius_scale)
    if not 1 <= cmd.orbit_frames <= MAX_VIDEO_FRAMES:
        raise UsageError(f"--orbit-frames must lie in 1..{MAX_VIDEO_FRAMES}, got {cmd.orbit_frames}")
    if cmd.view is not None and cmd.view < 0:
        raise UsageError(f"--view must not be negative, got {cmd.view}")
    if not all(math.isfinite(v) for v in (*(cmd.up or ()), *cmd.background, cmd.elevation_deg)):
        raise UsageError("--up, --background and --elevation-deg must be finite numbers")


def prepare_render(cmd) -> None:  # noqa: ANN001
    """Before ``ovseg-render`` works: its output path, and quiet signals."""
    inputs = (cmd.scene, cmd.camera, cmd.dataset)
    check_input_paths(scene=cmd.scene, camera=cmd.camera, dataset=cmd.dataset)
    check_output_file("--output", cmd.output, inputs=inputs, overwrite=getattr(cmd, "overwrite", False))
    exit_quietly_on_signals("ovseg-render")


def check_query_args(cmd) -> None:  # noqa: ANN001 (ovseg_app.query_cli.QueryCommand)
    """Values of ``ovseg-query``'s flags (parse time)."""
    check_prompts("--prompt", cmd.prompt)
    check_prompts("--negatives", cmd.negatives)
    check_positive("--downsample", cmd.downsample)
    if not (math.isfinite(cmd.threshold) and 0.0 <= cmd.threshold <= 1.0):
        raise UsageError(f"--threshold must lie in [0, 1], got {cmd.threshold}")
    if cmd.level is not None and not 0 <= cmd.level <= 3:
        raise UsageError(f"--level must be 0 (default), 1 (small), 2 (medium) or 3 (large), got {cmd.level}")


def prepare_query(cmd) -> None:  # noqa: ANN001
    """Before ``ovseg-query`` works: its output paths, and quiet signals."""
    overwrite = getattr(cmd, "overwrite", False)
    inputs = (cmd.scene, cmd.fields, cmd.instances, cmd.dataset)
    check_input_paths(scene=cmd.scene, fields=cmd.fields, instances=cmd.instances, dataset=cmd.dataset)
    if cmd.export is not None:
        check_output_file("--export", cmd.export, inputs=inputs, overwrite=overwrite)
        check_scene_output("--export", cmd.export)
    if cmd.relevancy_dir is not None:
        check_output_dir("--relevancy-dir", cmd.relevancy_dir)
    if cmd.export_instances is not None:
        check_output_dir("--export-instances", cmd.export_instances)
        if cmd.export_instances.is_dir() and any(cmd.export_instances.glob("*.ply")) and not overwrite:
            raise UsageError(f"--export-instances {cmd.export_instances} already holds PLY files; pass --overwrite")
    if cmd.relevancy_dir is not None and cmd.relevancy_dir.is_dir() and not overwrite:
        if any(cmd.relevancy_dir.glob("*.png")):
            raise UsageError(f"--relevancy-dir {cmd.relevancy_dir} already holds PNG files; pass --overwrite")
    exit_quietly_on_signals("ovseg-query")


def check_train_args(cmd) -> None:  # noqa: ANN001 (ovseg_app.train_cli.TrainCommand)
    """``ovseg-train``'s flags and output folder (parse time, before preprocessing starts)."""
    if cmd.log_path is not None:
        check_output_dir("--log-path", cmd.log_path)
    if cmd.run_name is not None and (not cmd.run_name.strip(". ") or "/" in cmd.run_name or "\0" in cmd.run_name):
        raise UsageError(f"--run-name {cmd.run_name!r} is not a usable folder name")
    if cmd.use_every_n_as_val != -1 and cmd.use_every_n_as_val < 2:
        raise UsageError(f"--use-every-n-as-val must be -1 (no validation) or at least 2, got {cmd.use_every_n_as_val}")
