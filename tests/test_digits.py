"""minicnn.digits: from a drawing or a photo to MNIST's 28x28, on synthetic drawings (NumPy and Pillow only).

Each test draws digits with Pillow the way people send them (dark or light ink, thin or thick pens, tinted and
unevenly lit "photos" with noise and JPEG, specks, tilt, transparency) and checks what read_digit makes of them:
MNIST's form (white on black, 20 pixels on the longer side, centre of mass at the centre), and the same result
whatever the polarity, the paper or the specks.
"""
import io

import numpy as np
import pytest
from conftest import png_header_only
from PIL import Image, ImageDraw

from minicnn import digits
from minicnn.digits import ImageProblem, ImageTooLarge, UnreadableImage, read_digit

# digits as polylines in unit coordinates (x, y), y downwards
SHAPES = {
    "1": [[(0.52, 0.18), (0.5, 0.82)]],
    "4": [[(0.62, 0.82), (0.62, 0.18), (0.3, 0.62), (0.74, 0.62)]],
    "7": [[(0.3, 0.22), (0.7, 0.22), (0.45, 0.8)]],
    "0": [[(0.5 + 0.2 * np.sin(t), 0.5 - 0.3 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]],
    "5": [[(0.66, 0.2), (0.38, 0.2), (0.36, 0.46), (0.58, 0.44), (0.66, 0.58), (0.6, 0.76), (0.36, 0.78)]],
}


def draw(shape="7", size=(300, 300), pen=14, dark=True, angle=0.0, paper=None, ink=None):
    """A grayscale drawing (uint8 H x W) of a digit: strokes of width ``pen`` pixels, rotated by ``angle``."""
    width, height = size
    paper = (255 if dark else 0) if paper is None else paper
    ink = (0 if dark else 255) if ink is None else ink
    image = Image.new("L", size, paper)
    pen_draw = ImageDraw.Draw(image)
    side = min(width, height)
    turn = np.radians(angle)
    for stroke in SHAPES[shape]:
        points = []
        for x, y in stroke:
            x, y = x - 0.5, y - 0.5
            x, y = x * np.cos(turn) - y * np.sin(turn), x * np.sin(turn) + y * np.cos(turn)
            points.append((width / 2 + x * side, height / 2 + y * side))
        pen_draw.line(points, fill=ink, width=pen, joint="curve")
        for point in points:  # round ends and joints
            pen_draw.ellipse([point[0] - pen / 2, point[1] - pen / 2, point[0] + pen / 2, point[1] + pen / 2], fill=ink)
    return np.asarray(image)


def photo(gray, tint=(205, 190, 150), light=0.45, noise=6.0, seed=0, quality=70):
    """A drawing as a phone photo of paper: tinted, lit unevenly (a gradient and a shadow), noisy, JPEG."""
    rng = np.random.default_rng(seed)
    height, width = gray.shape
    ys, xs = np.mgrid[0:height, 0:width]
    lighting = 1 - light * (xs / width) * (0.6 + 0.4 * ys / height)  # darker toward one corner
    paper = np.asarray(tint, dtype=np.float32) / 255
    ink_amount = 1 - gray.astype(np.float32) / 255
    rgb = (paper * (1 - ink_amount[..., None]) + 0.08 * ink_amount[..., None]) * lighting[..., None] * 255
    rgb += rng.normal(0, noise, rgb.shape)
    return encode(np.clip(rgb, 0, 255).astype(np.uint8), "JPEG", quality=quality)


def encode(pixels, format="PNG", **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format, **options)
    return buffer.getvalue()


def centre_of_mass(image):
    ys, xs = np.indices(image.shape)
    return (ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()


def similarity(a, b):
    """Correlation of two 28x28 images (1: the same up to brightness)."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def assert_mnist_form(image):
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() == pytest.approx(1, abs=0.02)
    ring = image.sum() - image[1:-1, 1:-1].sum()
    assert ring < 0.02 * image.sum()  # (centring by mass may push a 7's bar near an edge, as in MNIST)
    rows, columns = np.nonzero(image > 0.05)
    assert max(np.ptp(rows), np.ptp(columns)) + 1 in range(19, 23)  # the longer side is ~20 pixels
    centre = centre_of_mass(image)
    assert abs(centre[0] - 13.5) <= 1 and abs(centre[1] - 13.5) <= 1


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("dark", [True, False], ids=["dark-ink", "light-ink"])
def test_drawings_come_out_in_mnist_form_whatever_the_polarity(shape, dark):
    image = read_digit(draw(shape, dark=dark))
    assert_mnist_form(image)
    other = read_digit(draw(shape, dark=not dark))
    assert np.abs(image - other).max() < 0.02  # the polarity is undone exactly


def test_polarity_is_decided_by_the_border_not_the_median():
    """A thick pen covering most of a small canvas: the median is ink, the border is still paper."""
    gray = draw("0", size=(80, 80), pen=30)
    assert np.median(gray) < 128  # mostly dark: the old median rule would have inverted it wrongly
    assert digits.ink_is_dark(gray.astype(np.float32) / 255)
    assert_mnist_form(read_digit(gray))


@pytest.mark.parametrize("shape", ["4", "7", "5"])
def test_a_tinted_unevenly_lit_noisy_photo_reads_as_the_clean_drawing(shape):
    clean = read_digit(draw(shape, pen=10))
    for seed, tint in enumerate([(205, 190, 150), (120, 130, 150), (240, 240, 235)]):
        from_photo = read_digit(photo(draw(shape, pen=10), tint=tint, seed=seed))
        assert_mnist_form(from_photo)
        assert similarity(clean, from_photo) > 0.85, (tint, similarity(clean, from_photo))


def test_light_chalk_on_a_dark_unevenly_lit_board():
    gray = draw("4", dark=False, pen=12).astype(np.float32)
    ys, xs = np.mgrid[0:300, 0:300]
    board = 40 + 50 * xs / 300 + gray * 0.6 + np.random.default_rng(1).normal(0, 5, gray.shape)
    image = read_digit(encode(np.clip(board, 0, 255).astype(np.uint8), "JPEG", quality=60))
    assert_mnist_form(image)
    assert similarity(read_digit(draw("4", pen=12)), image) > 0.85


def test_specks_and_dust_are_dropped():
    clean = draw("7", pen=12)
    dirty = clean.copy()
    rng = np.random.default_rng(0)
    for y, x in rng.integers(5, 295, size=(12, 2)):
        dirty[y:y + 4, x:x + 4] = 0  # specks of dust anywhere, also far from the digit
    dirty[2:6, 2:6] = 0  # one in a corner: would double the bounding box if kept
    assert similarity(read_digit(clean), read_digit(dirty)) > 0.97


def test_a_digit_in_several_strokes_keeps_every_stroke():
    """A 4 drawn with a gap between its strokes: two large components, both kept."""
    gray = np.full((200, 200), 255, np.uint8)
    gray[30:120, 60:72] = 0  # the left slant, simplified
    gray[110:122, 60:150] = 0  # the bar
    gray[30:180, 125:137] = 0  # the right stroke, not touching the bar's end
    gray[110:122, 124:126] = 255
    kept = read_digit(gray)
    assert_mnist_form(kept)
    joined = gray.copy()
    joined[110:122, 124:126] = 0
    assert similarity(kept, read_digit(joined)) > 0.97  # nothing lost but the gap


@pytest.mark.parametrize("pen", [2, 4, 10, 24])
def test_thin_and_thick_pens_give_mnist_like_strokes(pen):
    """The ink in the 28x28 stays within MNIST's usual range (about 70-150 for the digits here) whatever the pen."""
    mass = read_digit(draw("4", size=(400, 400), pen=pen)).sum()
    assert 45 < mass < 170, mass


@pytest.mark.parametrize("angle", [-20, 15])
def test_tilted_digits_stay_centred_and_boxed(angle):
    assert_mnist_form(read_digit(draw("1", angle=angle)))
    assert_mnist_form(read_digit(draw("7", angle=angle)))


def test_any_size_grayscale_rgb_and_alpha():
    gray = draw("7", size=(300, 300), pen=14)
    expected = read_digit(gray)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert similarity(expected, read_digit(encode(rgb))) > 0.99
    assert similarity(expected, read_digit(encode(gray, "JPEG", quality=80))) > 0.97
    small = np.asarray(Image.fromarray(gray).resize((40, 40), Image.BILINEAR))
    large = np.asarray(Image.fromarray(gray).resize((2000, 2000), Image.BILINEAR))
    assert similarity(expected, read_digit(small)) > 0.9
    assert similarity(expected, read_digit(encode(large))) > 0.9
    # a transparent canvas with black ink (a drawing app's PNG), and one with white ink
    ink = 255 - gray
    black_on_transparent = np.dstack([np.zeros_like(gray)] * 3 + [ink])
    white_on_transparent = np.dstack([np.full_like(gray, 255)] * 3 + [ink])
    assert similarity(expected, read_digit(encode(black_on_transparent))) > 0.99
    assert similarity(expected, read_digit(encode(white_on_transparent))) > 0.99
    assert similarity(expected, read_digit(black_on_transparent)) > 0.99  # arrays too


def test_files_and_file_objects(tmp_path):
    path = tmp_path / "seven.png"
    Image.fromarray(draw("7")).save(path)
    expected = read_digit(path)
    assert np.array_equal(expected, read_digit(str(path)))
    with open(path, "rb") as file:
        assert np.array_equal(expected, read_digit(file))
    assert np.array_equal(expected, read_digit(path.read_bytes()))


def test_images_over_the_pixel_limit_are_refused_before_decoding():
    with pytest.raises(ImageTooLarge, match="over the limit of 40,000,000 pixels"):
        read_digit(png_header_only(100_000, 100_000))
    with pytest.raises(ImageTooLarge, match="over the limit of 10,000"):
        read_digit(encode(draw("7")), max_pixels=10_000)
    with pytest.raises(ImageTooLarge):
        read_digit(draw("7"), max_pixels=10_000)


def test_blank_unreadable_and_odd_inputs_are_explained(tmp_path):
    with pytest.raises(ImageProblem, match="blank"):
        read_digit(np.full((50, 50), 255, np.uint8))
    with pytest.raises(ImageProblem, match="blank"):
        read_digit(encode(np.full((50, 50, 3), 200, np.uint8), "JPEG"))
    with pytest.raises(UnreadableImage, match="not a readable image"):
        read_digit(b"hello, not an image")
    with pytest.raises(UnreadableImage, match="no such file"):
        read_digit(tmp_path / "missing.png")
    with pytest.raises(ImageProblem, match="expected an image"):
        read_digit(np.zeros((4, 4, 2)))


def test_connected_components_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy (only for this cross-check) is not installed")
    rng = np.random.default_rng(0)
    for density in (0.2, 0.45, 0.6):
        mask = rng.random((60, 80)) < density
        labels, count = digits.label_components(mask)
        expected, expected_count = ndimage.label(mask, structure=np.ones((3, 3)))
        assert count == expected_count
        # the same partition: a one-to-one map between the two labellings
        pairs = set(zip(labels[mask].tolist(), expected[mask].tolist()))
        assert len(pairs) == count
    assert digits.label_components(np.zeros((5, 5), bool))[1] == 0


def test_every_step_is_exposed():
    steps = digits.digit_steps(draw("7"))
    assert [name for name, _ in steps] == ["image", "ink", "background removed", "specks dropped", "cropped",
                                           "stroke", "20 pixels", "centred"]
    assert np.array_equal(steps[-1][1], read_digit(draw("7")))
