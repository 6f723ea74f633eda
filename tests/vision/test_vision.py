"""The vision kit on real images: text drawn in real fonts, a real photograph, a real
animation, and bytes that are no image."""

from __future__ import annotations

import io

import pytest
from vision_support import CHINESE, LATIN, PORTRAIT, text_image

from agora.vision.analyse import analyse_image
from agora.vision.probe import MAX_PIXELS, UnreadableImage, open_image


def test_ocr_reads_english_and_chinese_text_line_by_line() -> None:
    data = text_image([("Staking pool rewards", LATIN), ("外卖送得很快味道不错", CHINESE)])
    result = analyse_image(data)
    assert result.text.text.split("\n") == ["Staking pool rewards", "外卖送得很快味道不错"]
    assert result.text.confidence is not None and result.text.confidence > 0.9
    assert result.info.mime == "image/png" and result.info.kind == "image"
    assert result.info.bytes == len(data)
    assert result.explicit.score == 0.0


def test_a_photograph_is_read_as_a_person_not_as_explicit() -> None:
    result = analyse_image(PORTRAIT.read_bytes())
    assert (result.info.mime, result.info.width, result.info.height) == ("image/jpeg", 512, 600)
    assert result.explicit.score < 0.1
    assert "FACE_FEMALE" in result.explicit.parts  # the detector ran and saw her face


def test_an_animation_has_frames_and_a_duration() -> None:
    from PIL import Image

    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)
    info, pixels = open_image(out.getvalue())
    assert (info.kind, info.frames, info.duration_seconds) == ("animation", 3, 1.5)
    assert pixels.shape == (48, 64, 3)


def test_bytes_that_are_no_image_are_refused_clearly() -> None:
    with pytest.raises(UnreadableImage, match="not a readable image"):
        open_image(b"<html>not an image</html>")
    with pytest.raises(UnreadableImage, match="not a readable image"):
        open_image(text_image([("cut short", LATIN)])[:200])


def test_an_image_too_large_to_decode_is_refused_before_decoding() -> None:
    from PIL import Image

    side = int(MAX_PIXELS**0.5) + 100
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")  # a few kB on disk, 40M+ pixels decoded
    with pytest.raises(UnreadableImage, match="pixels"):
        open_image(out.getvalue())


def test_transparent_pixels_are_read_as_white_as_a_page_shows_them() -> None:
    from PIL import Image

    icon = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # transparent black
    icon.paste((200, 30, 30, 255), (10, 10, 30, 30))
    out = io.BytesIO()
    icon.save(out, "PNG")
    _, pixels = open_image(out.getvalue())
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[20, 20].tolist() == [30, 30, 200]  # BGR
