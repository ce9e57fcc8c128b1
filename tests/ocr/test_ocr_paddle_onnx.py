"""rythmiq.ocr._paddle_onnx: PaddleX model folders for PP-OCRv6 from the rapidocr wheel."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rapidocr")
ort = pytest.importorskip("onnxruntime")
yaml = pytest.importorskip("yaml")

from rythmiq._errors import ModelError, OptionsError, StorageError  # noqa: E402
from rythmiq.ocr._paddle_onnx import (  # noqa: E402
    PADDLE_ONNX_MODELS,
    build_model_dir,
    default_cache_root,
    is_onnx_model_dir,
)

DET, REC = "PP-OCRv6_small_det", "PP-OCRv6_small_rec"


def _wheel_models() -> Path:
    spec = importlib.util.find_spec("rapidocr")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "models"


def onnx_file(name: str) -> Path:
    path = _wheel_models() / f"{PADDLE_ONNX_MODELS[name]}.onnx"
    if not path.is_file():
        pytest.skip(f"the rapidocr wheel has no {path.name}")
    return path


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("paddle-onnx")
    return root, {name: build_model_dir(name, onnx_file(name), root) for name in (DET, REC)}


def _load_yml(folder: Path) -> dict[str, object]:
    data = yaml.safe_load((folder / "inference.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    paths = [folder, *sorted(folder.iterdir())]
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def test_builds_both_folders_and_nothing_else(built: tuple[Path, dict[str, Path]]) -> None:
    root, dirs = built
    assert dirs == {DET: root / DET, REC: root / REC}
    assert sorted(os.listdir(root)) == [DET, REC]  # no hidden temporary folders left
    for name, folder in dirs.items():
        assert is_onnx_model_dir(folder)
        assert sorted(os.listdir(folder)) == ["inference.onnx", "inference.yml"]
        assert folder.stat().st_mode & 0o777 == 0o755
        assert (folder / "inference.yml").stat().st_mode & 0o777 == 0o644
        onnx = folder / "inference.onnx"
        assert onnx.read_bytes() == onnx_file(name).read_bytes()
        assert _load_yml(folder)["Global"] == {"model_name": name}


def test_det_yml_has_db_postprocess(built: tuple[Path, dict[str, Path]]) -> None:
    data = _load_yml(built[1][DET])
    post = data["PostProcess"]
    assert isinstance(post, dict)
    assert post["name"] == "DBPostProcess"
    for key in ("thresh", "box_thresh", "max_candidates", "unclip_ratio"):
        assert isinstance(post[key], int | float), key
    pre = data["PreProcess"]
    assert isinstance(pre, dict)
    ops = pre["transform_ops"]
    names = [next(iter(op)) for op in ops]
    assert names[:1] == ["DecodeImage"]
    assert {"DetResizeForTest", "NormalizeImage", "ToCHWImage"} <= set(names)


def test_rec_characters_match_output_width(built: tuple[Path, dict[str, Path]]) -> None:
    data = _load_yml(built[1][REC])
    post = data["PostProcess"]
    assert isinstance(post, dict)
    assert post["name"] == "CTCLabelDecode"
    chars = post["character_dict"]
    assert isinstance(chars, list) and all(isinstance(c, str) and c for c in chars)
    session = _session(onnx_file(REC))
    declared = session.get_outputs()[0].shape[-1]
    (out,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 48, 320), "f4")})
    assert out.shape[-1] == len(chars) + 2  # PaddleX adds "blank" and " "
    if isinstance(declared, int):
        assert declared == out.shape[-1]
    # The list is the model's own metadata, line for line.
    meta = session.get_modelmeta().custom_metadata_map["character"]
    assert chars == meta.split("\n")


def test_building_twice_leaves_the_folder_untouched(tmp_path: Path) -> None:
    first = build_model_dir(DET, onnx_file(DET), tmp_path)
    before = _snapshot(first)
    again = build_model_dir(DET, onnx_file(DET), tmp_path)
    assert again == first
    assert _snapshot(again) == before
    assert os.listdir(tmp_path) == [DET]


def test_an_outdated_folder_is_replaced(tmp_path: Path) -> None:
    folder = build_model_dir(DET, onnx_file(DET), tmp_path)
    stale = folder / "inference.onnx"
    stale.unlink()  # never write through it: it may be a hard link to the wheel's file
    stale.write_bytes(b"not the model")
    assert build_model_dir(DET, onnx_file(DET), tmp_path) == folder
    assert stale.read_bytes() == onnx_file(DET).read_bytes()
    assert os.listdir(tmp_path) == [DET]


def test_an_incomplete_folder_is_replaced(tmp_path: Path) -> None:
    (tmp_path / REC).mkdir()
    (tmp_path / REC / "inference.onnx").write_bytes(b"partial")
    folder = build_model_dir(REC, onnx_file(REC), tmp_path)
    assert is_onnx_model_dir(folder)
    assert os.listdir(tmp_path) == [REC]


def test_unknown_name_raises_options_error(tmp_path: Path) -> None:
    with pytest.raises(OptionsError) as info:
        build_model_dir("PP-OCRv6_huge_det", onnx_file(DET), tmp_path)
    assert info.value.code == "options.invalid"
    assert os.listdir(tmp_path) == []


def test_missing_onnx_file_raises_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        build_model_dir(DET, tmp_path / "missing.onnx", tmp_path / "out")
    assert info.value.code == "model.not_found"
    assert not (tmp_path / "out").exists()


def test_recognizer_without_characters_raises_load_failed(tmp_path: Path) -> None:
    # The detector's ONNX file has no "character" metadata.
    with pytest.raises(ModelError) as info:
        build_model_dir(REC, onnx_file(DET), tmp_path)
    assert info.value.code == "model.load_failed"
    assert os.listdir(tmp_path) == []


def test_unwritable_destination_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StorageError) as info:
        build_model_dir(DET, onnx_file(DET), blocker)
    assert info.value.code == "storage.write_failed"


def test_is_onnx_model_dir(tmp_path: Path) -> None:
    assert not is_onnx_model_dir(tmp_path / "missing")
    assert not is_onnx_model_dir(tmp_path)
    (tmp_path / "inference.onnx").write_bytes(b"")
    assert not is_onnx_model_dir(tmp_path)
    (tmp_path / "inference.yml").write_text("")
    assert is_onnx_model_dir(tmp_path)


def test_default_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RYTHMIQ_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "explicit" / "paddle-onnx"
    monkeypatch.delenv("RYTHMIQ_CACHE_DIR")
    assert default_cache_root() == tmp_path / "xdg" / "rythmiq" / "paddle-onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "rythmiq" / "paddle-onnx"


# --------------------------------------------------------------------------- PaddleOCR


def _two_line_page(lines: list[str]) -> np.ndarray:
    """A white 1200x500 page with ``lines`` in DejaVuSans 40 px (Pillow's font if absent)."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 40)
    except OSError:
        from _helpers import render_page

        return render_page(lines, width=1200, height=500, font_size=40, margin=80)
    page = Image.new("RGB", (1200, 500), "white")
    draw = ImageDraw.Draw(page)
    for i, text in enumerate(lines):
        draw.text((80, 100 + 140 * i), text, fill="black", font=font)
    return np.asarray(page)


@pytest.mark.integration
def test_paddleocr_reads_a_page_with_the_built_folders(
    built: tuple[Path, dict[str, Path]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from _helpers import PAGE_LINES

    from rythmiq.metrics import word_f1

    monkeypatch.setenv("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", str(tmp_path / "paddlex"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paddleocr = pytest.importorskip("paddleocr")
        dirs = built[1]
        ocr = paddleocr.PaddleOCR(
            text_detection_model_name=DET,
            text_detection_model_dir=str(dirs[DET]),
            text_recognition_model_name=REC,
            text_recognition_model_dir=str(dirs[REC]),
            use_doc_orientation_classify=False,
            use_doc_unwarping=False,
            use_textline_orientation=False,
            device="cpu",
            engine="onnxruntime",
            engine_config={"intra_op_num_threads": 1, "inter_op_num_threads": 1},
        )
    lines = PAGE_LINES[:2]
    (result,) = ocr.predict(_two_line_page(lines))
    text = " ".join(result["rec_texts"])
    assert word_f1(text, " ".join(lines)) >= 0.9, text
