"""rythmiq: document image quality scoring, normalization and OCR.

    import rythmiq
    result = rythmiq.process("scan.jpg")
    print(result.quality.score, result.quality.passed, result.ocr.text)

Importing rythmiq is cheap: PaddleOCR, paddle, OpenCV and s3fs load only when first used.
"""

import lazy_loader

# The public names are listed once, in __init__.pyi: type checkers read it, and
# attach_stub makes each name a lazy attribute that imports its module on first use.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
