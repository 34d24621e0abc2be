"""scale_vqa.slides and scale_vqa.zoom on the real CMU slide and real pyramidal TIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curation.errors import ConfigError, SlideError
from scale_vqa.slides import Region, open_slide, otsu_threshold, tissue_mask
from scale_vqa.zoom import extract_zoom_path, field_regions, sample_centres
from tests import slide_factory as factory

MAGS = (5, 10, 20)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CMU slide as a 3-level tiled zlib TIFF with resolution tags."""
    return factory.write_cmu_pyramid(tmp_path_factory.mktemp("pyr") / "cmu-pyramid.tif")


def test_api_also_reachable_from_slides() -> None:
    import scale_vqa.slides as slides
    import scale_vqa.zoom as zoom

    assert slides.extract_zoom_path is zoom.extract_zoom_path
    assert slides.sample_centres is zoom.sample_centres
    with pytest.raises(AttributeError):
        slides.no_such_thing  # noqa: B018


def test_cmu_metadata(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        assert s.slide_id == "CMU-1-Small-Region"
        assert s.dimensions == (2220, 2967)
        assert s.mpp == pytest.approx(0.499)
        assert s.mpp_source == "metadata"
        assert s.objective_power == 20
        assert s.native_magnification == pytest.approx(20.04, abs=0.01)
        assert s.vendor == "aperio"


def test_cmu_zoom_path_physical(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        zp = extract_zoom_path(s, (1100, 1500), MAGS, 256, path_id="p")
        w, h = s.dimensions
    assert [c.magnification for c in zp.crops] == [5.0, 10.0, 20.0]
    assert [c.image.size for c in zp.crops] == [(256, 256)] * 3
    assert [c.mpp for c in zp.crops] == pytest.approx([2.0, 1.0, 0.5], abs=0.005)
    slide_box = Region(0, 0, w, h)
    low, mid, high = (c.region for c in zp.crops)
    assert low.contains(mid) and mid.contains(high)
    assert all(slide_box.contains(c.region) for c in zp.crops)
    assert not any(c.upsampled or c.padded for c in zp.crops)
    # the field is the physical size: 256 px x 2 um = 512 um = 1026 level-0 px
    assert low.width == 1026 and mid.width == 513 and high.width == 256
    # not shifted: centred exactly on the asked centre
    for c in zp.crops:
        assert abs(c.region.centre[0] - 1100) <= 1 and abs(c.region.centre[1] - 1500) <= 1
    rec = zp.to_record(["a.png", "b.png", "c.png"])
    assert rec["centre"] == {"x": 1100, "y": 1500}
    assert rec["crops"][0]["region"] == {"x": 587, "y": 987, "width": 1026, "height": 1026}


def test_low_power_crop_shows_tissue(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        zp = extract_zoom_path(s, (1100, 1500), MAGS, 256)
    for crop in zp.crops:
        arr = np.asarray(crop.image.convert("HSV"))[..., 1]
        assert (arr > 40).mean() > 0.5  # stained tissue, not white glass


def test_40x_refused_naming_native(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s, pytest.raises(SlideError) as err:
        extract_zoom_path(s, (1100, 1500), (10, 40), 256)
    msg = str(err.value)
    assert "40x" in msg and "20.0x native" in msg and "0.499 um/px" in msg
    assert "allow_upsample" in msg and "--allow-upsample" in msg


def test_allow_upsample_records_it(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        zp = extract_zoom_path(s, (1100, 1500), (20, 40), 128, allow_upsample=True)
    assert [c.upsampled for c in zp.crops] == [False, True]
    assert zp.crops[1].image.size == (128, 128)
    assert zp.crops[1].region.width == 64
    assert zp.crops[1].mpp == pytest.approx(0.2495)
    assert zp.crops[1].to_record("x.png")["upsampled"] is True


def test_caller_mpp_overrides(cmu_slide: Path) -> None:
    with open_slide(cmu_slide, mpp=0.25) as s:
        assert s.mpp == 0.25 and s.mpp_source == "caller"
        assert s.native_magnification == pytest.approx(40)
        zp = extract_zoom_path(s, (1100, 1500), (10, 40), 128)
    assert [c.region.width for c in zp.crops] == [512, 128]
    assert [c.mpp for c in zp.crops] == pytest.approx([1.0, 0.25])
    with pytest.raises(ConfigError, match="positive"):
        open_slide(cmu_slide, mpp=-1)


def test_missing_mpp_is_an_error_that_says_how(tmp_path: Path) -> None:
    p = factory.write_pyramid(tmp_path / "nompp.tif", factory.cmu_pixels()[:512, :512], mpp=None)
    with pytest.raises(SlideError) as err:
        open_slide(p)
    assert "nompp.tif" in str(err.value)
    assert "--mpp" in str(err.value) and "mpp=" in str(err.value)
    with open_slide(p, mpp=0.5) as s:
        assert s.mpp == 0.5 and s.native_magnification == 20


def test_pyramid_reads_as_generic_tiff_with_mpp(pyramid: Path) -> None:
    with open_slide(pyramid) as s:
        assert s.vendor == "generic-tiff"
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.499, rel=1e-4)
        assert s.level_count == 3
        assert s.level_downsamples == pytest.approx((1, 2, 4), rel=1e-2)


def test_level_choice_and_crop_match_naive_read(pyramid: Path) -> None:
    with open_slide(pyramid) as s:
        # the level just finer than needed: never a coarser one
        assert s.level_for_downsample(1.0) == 0
        assert s.level_for_downsample(1.99) == 0
        assert s.level_for_downsample(3.0) == 1
        assert s.level_for_downsample(4.008) == 2
        assert s.level_for_downsample(100) == 2
        zp = extract_zoom_path(s, (1100, 1500), MAGS, 256)
        assert [c.level for c in zp.crops] == [2, 1, 0]
        # the naive way: the whole field at level 0, then resized
        for crop in zp.crops:
            r = crop.region
            naive = s._osr.read_region((r.x, r.y), 0, (r.width, r.height)).convert("RGB")
            naive = naive.resize((256, 256), Image.Resampling.LANCZOS)
            diff = np.abs(
                np.asarray(naive, dtype=np.int16) - np.asarray(crop.image, dtype=np.int16)
            )
            assert diff.mean() < 6, (crop.magnification, diff.mean())
            # and it is aligned: a field 4 level-0 px off differs far more
            off = Region(r.x + 4, r.y, r.width, r.height)
            shifted = np.asarray(s.read(off, (256, 256))[0], dtype=np.int16)
            if crop.level:
                assert np.abs(np.asarray(naive, dtype=np.int16) - shifted).mean() > 3 * diff.mean()
    with open_slide(factory.CMU_SLIDE) as ref:
        same = extract_zoom_path(ref, (1100, 1500), MAGS, 256)
    assert [c.region for c in same.crops] == [c.region for c in zp.crops]


def test_fields_shift_inside_at_edges(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        w, h = s.dimensions
        for centre in [(3, 4), (w - 1, h - 1), (w - 1, 10)]:
            boxes = field_regions(s, centre, MAGS, 256)
            regions = [b[0] for b in boxes]
            assert all(Region(0, 0, w, h).contains(r) for r in regions)
            assert regions[0].contains(regions[1]) and regions[1].contains(regions[2])
            assert not any(b[2] for b in boxes)
        with pytest.raises(SlideError, match="outside the slide"):
            field_regions(s, (w + 5, 10), MAGS, 256)


def test_slide_smaller_than_field_is_padded(tmp_path: Path) -> None:
    small = factory.write_pyramid(
        tmp_path / "small.tif", factory.cmu_pixels()[1000:1400, 900:1500], levels=1
    )
    with open_slide(small) as s:  # 600 x 400 px; a 5x field of 256 px is 1026 px
        zp = extract_zoom_path(s, (300, 200), MAGS, 256)
    low, mid, high = zp.crops
    assert low.padded and low.region.width == 1026 and low.region.x < 0
    assert mid.padded and mid.region.y < 0 < mid.region.x  # taller than the slide only
    assert not high.padded
    assert low.region.contains(mid.region) and mid.region.contains(high.region)
    corner = np.asarray(low.image)[:5, :5]
    assert (corner == 255).all()  # padding is white


def test_otsu_threshold_splits_two_modes() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(30, 5, 1000), rng.normal(180, 10, 1000)])
    v = np.clip(values, 0, 255).astype(np.uint8)
    t = otsu_threshold(v)
    assert v[:1000].max() <= t < v[1000:].min()
    assert 60 < t < 150  # the middle of the gap, not its edge


def test_tissue_mask_on_cmu(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        mask = tissue_mask(s)
        assert 0.2 < mask.tissue_fraction < 0.6
        # the left margin is glass, the lower centre is dermis
        assert mask.fraction(Region(0, 2000, 300, 600)) < 0.05
        assert mask.fraction(Region(1000, 2000, 400, 400)) > 0.9
        grey = tissue_mask(s, method="grey")
        assert 0.1 < grey.tissue_fraction < 0.7
        with pytest.raises(ConfigError):
            tissue_mask(s, method="magic")


def test_sample_centres_seeded_spaced_on_tissue(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        mask = tissue_mask(s)
        a = sample_centres(s, 6, MAGS, 256, seed=3, mask=mask)
        b = sample_centres(s, 6, MAGS, 256, seed=3, mask=mask)
        c = sample_centres(s, 6, MAGS, 256, seed=4, mask=mask)
        assert a == b and a != c and len(a) == 6
        for i, p in enumerate(a):
            for q in a[i + 1 :]:
                assert max(abs(p[0] - q[0]), abs(p[1] - q[1])) >= 256
            for region, _, _ in field_regions(s, p, MAGS, 256):
                assert mask.fraction(region) >= 0.5
        # spacing also holds against given centres
        d = sample_centres(s, 3, MAGS, 256, seed=3, mask=mask, avoid=[a[0]], min_spacing=600)
        assert all(max(abs(p[0] - a[0][0]), abs(p[1] - a[0][1])) >= 600 for p in d)
        # an impossible demand is an error that says what to change
        with pytest.raises(SlideError, match="min_tissue"):
            sample_centres(s, 1, (1, 20), 256, mask=mask, min_tissue=0.99)


def test_blank_slide_has_no_tissue(tmp_path: Path) -> None:
    blank = factory.write_blank_slide(tmp_path / "blank.tif")
    with open_slide(blank) as s:
        assert not tissue_mask(s).array.any()
        with pytest.raises(SlideError, match="no tissue") as err:
            sample_centres(s, 2, MAGS, 128)
    assert "blank.tif" in str(err.value)


@pytest.mark.parametrize(
    "make", ["write_truncated", "write_not_an_image", "write_empty", "nonexistent"]
)
def test_damaged_files_raise_slide_error(tmp_path: Path, make: str) -> None:
    path = tmp_path / f"damaged-{make}.svs"
    if make != "nonexistent":
        getattr(factory, make)(path)
    with pytest.raises(SlideError) as err:
        open_slide(path)
    assert path.name in str(err.value)


def test_corrupt_tiles_fail_on_read_with_slide_error(tmp_path: Path) -> None:
    path = factory.write_corrupt_tiles(tmp_path / "corrupt.tif")
    with open_slide(path) as s, pytest.raises(SlideError) as err:
        extract_zoom_path(s, (1100, 1500), MAGS, 256)
    assert "corrupt.tif" in str(err.value) and "damaged" in str(err.value)


def test_bad_magnifications_and_size(cmu_slide: Path) -> None:
    with open_slide(cmu_slide) as s:
        for mags in [(), (5, 5), (0, 10)]:
            with pytest.raises(ConfigError):
                extract_zoom_path(s, (1100, 1500), mags, 256)
        with pytest.raises(ConfigError):
            extract_zoom_path(s, (1100, 1500), MAGS, 0)
        zp = extract_zoom_path(s, (1100, 1500), (20, 5, 10), (200, 100))
    assert [c.magnification for c in zp.crops] == [5, 10, 20]
    assert zp.crops[0].image.size == (200, 100)
