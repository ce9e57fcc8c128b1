"""The public names of rythmiq, listed once.

Type checkers read this stub; at run time ``rythmiq/__init__.py`` hands it to
``lazy_loader.attach_stub``, which imports each name's module on first access, so
``import rythmiq`` loads no numpy, OpenCV, Paddle or s3fs. Add a public name here.
"""

from ._errors import (
    BatchError as BatchError,
    BundleError as BundleError,
    CryptoError as CryptoError,
    ExitCode as ExitCode,
    InputError as InputError,
    ModelError as ModelError,
    OcrError as OcrError,
    OptionsError as OptionsError,
    PayloadError as PayloadError,
    RythmiqError as RythmiqError,
    StorageError as StorageError,
)
from ._version import (
    __version__ as __version__,
)
from .batch import (
    BatchProgress as BatchProgress,
    BatchResult as BatchResult,
    process_many as process_many,
)
from .crypto import (
    EncryptionContext as EncryptionContext,
)
from .io import (
    LoadedDocument as LoadedDocument,
    LoadedImage as LoadedImage,
    LoadedPage as LoadedPage,
    load_document as load_document,
    load_image as load_image,
)
from .keyring import (
    Keyring as Keyring,
    load_keyring as load_keyring,
)
from .layout import (
    Ids as Ids,
)
from .ocr import (
    EngineConfig as EngineConfig,
    OcrEngine as OcrEngine,
    OcrLine as OcrLine,
    OcrResult as OcrResult,
    OnnxEngine as OnnxEngine,
    PaddleEngine as PaddleEngine,
    clear_engine_cache as clear_engine_cache,
    default_engine as default_engine,
)
from .options import (
    ProcessOptions as ProcessOptions,
)
from .pipeline import (
    process as process,
)
from .quality import (
    QualityReport as QualityReport,
    score_quality as score_quality,
)
from .results import (
    NormalizedImage as NormalizedImage,
    PageResult as PageResult,
    Preview as Preview,
    ProcessResult as ProcessResult,
    StageTiming as StageTiming,
    Timings as Timings,
)
from .storage import (
    Artifact as Artifact,
    Store as Store,
)
