"""rythmiq.io.limits: every limit checked once, by check_limits, for the loaders and for
ProcessOptions alike."""

from __future__ import annotations

import pytest
from _helpers import sample_png

from rythmiq import InputError, OptionsError, load_document, load_image
from rythmiq.io import Limits, check_limits


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_limits_must_be_positive_integers(bad):
    data, _ = sample_png()
    with pytest.raises(OptionsError):
        load_image(data, max_input_bytes=bad)
    with pytest.raises(OptionsError):
        load_image(data, max_pixels=bad)


def test_process_options_max_input_bytes(engine):
    from rythmiq import ProcessOptions, process

    data, _ = sample_png()
    assert ProcessOptions().max_input_bytes == 200 * 1024 * 1024
    with pytest.raises(InputError) as info:
        process(data, options=ProcessOptions(max_input_bytes=len(data) - 1), engine=engine)
    assert info.value.code == "input.too_large"
    assert process(data, options=ProcessOptions(max_input_bytes=len(data)), engine=engine)
    assert ProcessOptions.from_dict({"max_input_bytes": 1e6}).max_input_bytes == 1_000_000
    for bad in (0, -5, 1.5, True, "big"):
        with pytest.raises(OptionsError):
            ProcessOptions(max_input_bytes=bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_pages": 0},
        {"max_total_pixels": -1},
        {"pdf_dpi": 10},
        {"pdf_dpi": 5000},
        {"pdf_dpi": True},
    ],
)
def test_bad_limits_are_option_errors(kwargs):
    with pytest.raises(OptionsError):
        load_document(b"%PDF-1.7", **kwargs)


def test_check_limits_returns_the_defaults_and_the_values_given():
    assert check_limits() == Limits()
    assert Limits() == Limits(100_000_000, 200 * 1024 * 1024, 200, 2_000_000_000, 300.0)
    limits = check_limits(max_pixels=5, max_input_bytes=6, max_pages=7, max_total_pixels=8)
    assert limits == Limits(5, 6, 7, 8, 300.0)
    # pdf_dpi comes back as given: an int stays an int (ProcessOptions stores it so).
    assert type(check_limits(pdf_dpi=200).pdf_dpi) is int
    assert check_limits(pdf_dpi=72.5).pdf_dpi == 72.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_pixels": 0}, "max_pixels must be an integer >= 1, got 0"),
        ({"max_input_bytes": True}, "max_input_bytes must be an integer >= 1, got True"),
        ({"max_pages": 2.0}, "max_pages must be an integer >= 1, got 2.0"),
        ({"max_total_pixels": "9"}, "max_total_pixels must be an integer >= 1, got '9'"),
        ({"pdf_dpi": 10}, "pdf_dpi must be within 50-600, got 10"),
        ({"pdf_dpi": "300"}, "pdf_dpi must be within 50-600, got '300'"),
        ({"pdf_dpi": False}, "pdf_dpi must be within 50-600, got False"),
        (
            {"max_pages": 10_000, "max_page_number": 9999},
            "max_pages must be at most 9999, got 10000",
        ),
        # In order: the integer limits first, then pdf_dpi, then the page number.
        ({"max_pixels": -1, "pdf_dpi": 1}, "max_pixels must be an integer >= 1, got -1"),
        ({"max_pages": 10_000, "pdf_dpi": 1, "max_page_number": 9999}, "pdf_dpi must be"),
    ],
)
def test_check_limits_messages(kwargs, message):
    with pytest.raises(OptionsError) as info:
        check_limits(**kwargs)
    assert info.value.message.startswith(message)
    assert info.value.code == "options.invalid"


def test_integral_floats_are_accepted_only_when_asked():
    limits = check_limits(max_pixels=1e8, max_pages=50.0, integral_floats=True)
    assert (limits.max_pixels, limits.max_pages) == (100_000_000, 50)
    assert type(limits.max_pixels) is int and type(limits.max_pages) is int
    with pytest.raises(OptionsError):
        check_limits(max_pixels=1e8)
    with pytest.raises(OptionsError):
        check_limits(max_pixels=1.5, integral_floats=True)
    assert check_limits(max_pages=9999, max_page_number=9999).max_pages == 9999


def test_the_loaders_and_process_options_refuse_alike():
    from rythmiq import ProcessOptions

    for kwargs in ({"max_pages": 0}, {"pdf_dpi": 20}, {"max_total_pixels": 1.5}):
        with pytest.raises(OptionsError) as from_loader:
            load_document(b"%PDF-1.7", **kwargs)
        with pytest.raises(OptionsError) as from_options:
            ProcessOptions(**kwargs)
        with pytest.raises(OptionsError) as from_check:
            check_limits(**kwargs)
        assert from_loader.value.message == from_options.value.message
        assert from_check.value.message == from_options.value.message
