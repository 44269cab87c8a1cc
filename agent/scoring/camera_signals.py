"""What a camera frame shows, measured cheaply at analysis width: brightness, texture per tile, sharpness, noise,
seams, colour, block-grid periodicity, flat areas. No judgement here (see camera_checks)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from agent.scoring.memory import unit

TILE_GRID = 8  # 8x8 tiles for occlusion / soiling
DESCRIPTOR_SIZE = (32, 16)  # width, height of the grey thumbnail descriptor
SOIL_GRID = 16  # drops and splashes are smaller than the 8x8 tiles: sharpness is compared on a finer grid
# Immerkaer's noise-estimation kernel: the difference of two Laplacians, blind to flat areas and linear ramps.
# White noise of sigma s gives a response of std 6 s; the median over the image ignores the few real edges.
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
NOISE_SCALE = 1.0 / (0.6745 * 6.0)
# ... whose median is blind to impulse noise (salt and pepper, hot pixels): what counts those is the share of
# responses this strong (a pixel 10 grey levels of white noise would reach at one sigma).
SPECKLE_LEVEL = 60
# Tearing: a straight seam across the width (or down the height: the part below a tear shifted sideways), one or
# two pixels wide, that the rows (columns) just beside it do not have.
SEAM_MIN_STEP = 12.0  # grey levels: smaller row-to-row steps are texture
SEAM_ISOLATION = 2.5  # the step must exceed this many times the column's steps just above and below it (+2)
SEAM_RATIO_SPREAD = 0.25  # |log brightness ratio - the seam's median| beyond this is not one shadow's darkening
SEAM_EDGE = 0.08  # rows (columns) this close to the image's edge are left out (a car's hood makes a seam there)
SEAM_FLAT_MIN_HEIGHT = 0.15  # a one-colour band below a seam at least this tall is decoder fill
# Block grids from pixelation (2.2 pixels) to a JPEG's 8 at the grid picture's scale, spaced by 3.5% of a period.
GRID_PERIODS = np.geomspace(2.2, 8.5, 40)
_LEVELS = np.arange(256, dtype=np.float64)
# 2 mid > 2 ISOLATION near + 4  <=>  mid > (2 ISOLATION near + 4) // 2 for integer steps; capped at 255, where no
# uint8 step exceeds it.
_SEAM_THRESHOLD = np.minimum(np.maximum(SEAM_MIN_STEP, (int(2 * SEAM_ISOLATION) * np.arange(256) + 4) // 2),
                             255).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class CameraSignals:
    sharpness: float
    mean: float
    std: float
    clipped_dark: float
    clipped_bright: float
    flat_tiles: float
    noise: float  # estimated pixel noise sigma, grey levels at analysis width
    seam: float  # share of columns with an isolated step at the strongest horizontal seam
    seam_mixed: float  # share of columns whose step there is not the seam's common brightness ratio
    flat_below: bool  # the rows below that seam are one flat colour (neither black nor white)
    vseam: float  # the same two for the strongest vertical seam (share of rows)
    vseam_mixed: float
    tile_std: np.ndarray  # TILE_GRID x TILE_GRID texture per tile, for occlusion against the baseline
    grey: np.ndarray  # analysis-size grey image, for frozen-frame comparison
    descriptor: np.ndarray  # unit vector, for redundancy
    structure: float = 0.0  # luma std over 4x4 blocks: what is left when sensor noise is averaged away
    saturation: float = 0.0  # mean (max - min) / max over the colour channels
    channels: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mean B, G, R
    corner_dark: bool = False  # all four corner tiles black while the centre is not (fisheye, vignetting optics)
    tile_mean: np.ndarray | None = None  # TILE_GRID x TILE_GRID brightness, to tell a new scene from a damaged one
    tile_sharp: np.ndarray | None = None  # TILE_GRID x TILE_GRID Laplacian variance, for partial blur (soiling)
    blockiness: float = 1.0  # strongest block-grid periodicity of the gradients (1 = none; compression damage)
    flat_rows: float = 0.0  # share of rows of one flat mid-grey value (decoder fill after lost packets)
    flat_area: float = 0.0  # share of pixels without local texture (5x5 std < 2): sky, fog, or something on a lens
    tile_blue_red: np.ndarray | None = None  # TILE_GRID x TILE_GRID log(blue / red): where the view is blue or red
    tile_flat: np.ndarray | None = None  # TILE_GRID x TILE_GRID share of pixels without local texture
    seam_rows: np.ndarray | None = None  # per row, the share of columns stepping there (see _seam)
    grid_spectrum: np.ndarray | None = None  # at GRID_PERIODS: periodicity of the column steps (_block_grid)
    speckle: float = 0.0  # share of pixels standing out of their neighbourhood (noise response > SPECKLE_LEVEL)
    # What later checks derive from the frame, kept for when it is the camera's last healthy frame
    scratch: dict = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, float]:
        return {
            "sharpness": round(self.sharpness, 3),
            "mean": round(self.mean, 3),
            "std": round(self.std, 3),
            "clipped_dark": round(self.clipped_dark, 4),
            "clipped_bright": round(self.clipped_bright, 4),
            "flat_tiles": round(self.flat_tiles, 4),
            "noise": round(self.noise, 3),
            "seam": round(self.seam, 4),
            "seam_mixed": round(self.seam_mixed, 4),
            "vseam": round(self.vseam, 4),
            "vseam_mixed": round(self.vseam_mixed, 4),
            "structure": round(self.structure, 3),
            "saturation": round(self.saturation, 4),
            "blockiness": round(self.blockiness, 3),
            "flat_rows": round(self.flat_rows, 4),
        }


def analysis_greys(image: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The grey image at about `width`: area-averaged (for the checks) and nearest-row (for the seam check: an
    area resize spreads a one-row seam over rows that a sharp real edge also spans)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    if min(h, w) < 2 * TILE_GRID:  # a thumbnail-sized frame (even 1x1): enlarged so every check has its tiles
        grey = cv2.resize(grey, (max(w, 2 * TILE_GRID), max(h, 2 * TILE_GRID)), interpolation=cv2.INTER_NEAREST)
        return grey, grey
    if w <= width:
        return grey, grey
    size = (width, max(1, round(h * width / w)))
    return (cv2.resize(grey, size, interpolation=cv2.INTER_AREA),
            cv2.resize(grey, size, interpolation=cv2.INTER_NEAREST))


def _tile_stats(values: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile std and mean on a grid x grid tiling (area sums in OpenCV: a tenth of NumPy's reshape cost)."""
    h, w = values.shape
    th, tw = max(1, h // grid), max(1, w // grid)
    v = values[: th * grid, : tw * grid].astype(np.float32, copy=False)
    mean = cv2.resize(v, (grid, grid), interpolation=cv2.INTER_AREA)
    square = cv2.resize(v * v, (grid, grid), interpolation=cv2.INTER_AREA)
    return np.sqrt(np.maximum(square - mean * mean, 0.0)), mean


def _rows_flat(rows: np.ndarray) -> bool:
    """Whether the median row std of a uint8 image is below 1.5. A row's std is at least its range / sqrt(2 n)
    (its two extremes alone), so rows whose range is well above 1.5 sqrt(2 n) cannot be flat; when they are half
    or more, the median cannot be below 1.5 and the stds are not computed (a real scene: nearly every frame)."""
    k, n = rows.shape
    limit = 1.5 * np.sqrt(2.0 * n) + 1.0  # + 1: a margin far above float rounding
    spread = (cv2.reduce(rows, 1, cv2.REDUCE_MAX).astype(np.int16) - cv2.reduce(rows, 1, cv2.REDUCE_MIN)).ravel()
    if np.count_nonzero(spread < limit) < (k + 1) // 2:
        return False
    return float(np.median(rows.std(axis=1))) < 1.5


def seam(grey: np.ndarray, flat_check: bool = True) -> tuple[float, float, bool]:
    """The strongest horizontal seam of a uint8 grey image: (share of columns with an isolated step there,
    share whose step is off the seam's median brightness ratio, whether the rows below are one flat colour).

    Steps are taken across two rows (row r+1 minus row r-1): a reduced JPEG decode spreads a one-row seam of the
    full image over two rows. A shadow edge or the horizon also steps across much of the width, but a shadow
    darkens every column by about one ratio and few real edges are that sharp everywhere; a torn frame steps
    every column to unrelated content (or to decoder fill)."""
    return _seam(grey, flat_check)[:3]


def _strong_steps(grey: np.ndarray) -> np.ndarray:
    """255 where a column steps sharply from row k + 2 to row k + 4 and not two rows above or below (row k)."""
    size = cv2.absdiff(grey[2:], grey[:-2])  # size[k]: the step from row k to row k + 2
    # A strong step: mid > SEAM_MIN_STEP and mid > ISOLATION * near + 2 (near: the larger step two rows above or
    # below), in integers one threshold per value of near, looked up in OpenCV (uint8 all the way: 4x NumPy's speed).
    near = cv2.max(size[:-4], size[4:])
    return cv2.compare(size[2:-2], cv2.LUT(near, _SEAM_THRESHOLD), cv2.CMP_GT)


def _seam(grey: np.ndarray, flat_check: bool = True) -> tuple[float, float, bool, np.ndarray | None]:
    """seam(), and the share of columns stepping at each row (the edge rows zeroed): where this camera's views
    usually have their seams (a hood, the horizon), for a tear at a row where they have none."""
    h = grey.shape[0]
    if h < 16:
        return 0.0, 0.0, False, None
    strong = _strong_steps(grey)
    share = cv2.reduce(strong, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() / 255 / strong.shape[1]
    margin = max(1, int(h * SEAM_EDGE))
    share[:margin] = 0.0
    share[len(share) - margin:] = 0.0
    i = int(share.argmax())
    top, cols = i + 2, strong[i] > 0  # the seam steps from row `top` to row `top + 2`
    if cols.sum() < 3:
        return float(share[i]), 0.0, False, share
    mixed = float(_off_ratio(grey, top, cols).mean())
    below = grey[top + 4:]
    flat = (flat_check and len(below) >= SEAM_FLAT_MIN_HEIGHT * h and _rows_flat(below)
            and 8.0 < float(below.mean()) < 247.0)
    return float(share[i]), mixed, bool(flat), share


def _off_ratio(grey: np.ndarray, top: int, cols: np.ndarray) -> np.ndarray:
    """Columns of `cols` whose step from row `top` to `top + 2` is off the median brightness ratio of them all."""
    ratio = np.log((grey[top + 2] + 4.0) / (grey[top] + 4.0))
    return cols & (np.abs(ratio - float(_median_rows(ratio[cols]))) > SEAM_RATIO_SPREAD)


def mixed_at(grey: np.ndarray, row: int) -> float:
    """Of the columns stepping sharply at profile row `row` of `grey` (as _seam numbers them), the share whose step
    is off their common brightness ratio: a shadow or a real edge darkens them alike, a tear does not."""
    if grey.shape[0] < 16 or not 0 <= row < grey.shape[0] - 6:
        return 0.0
    cols = _strong_steps(np.ascontiguousarray(grey[row:row + 7]))[0] > 0
    if cols.sum() < 3:
        return 0.0
    return float(_off_ratio(grey, row + 2, cols).sum()) / float(cols.sum())


def _median_rows(a: np.ndarray) -> np.ndarray:
    """np.median(a, axis=0), the same values, at half its cost for the few short rows of a frame's grid (and for a
    1-D array, its median without np.median's overhead)."""
    k = a.shape[0]
    if k % 2:
        return np.partition(a, k // 2, axis=0)[k // 2]
    part = np.partition(a, (k // 2 - 1, k // 2), axis=0)
    return (part[k // 2 - 1] + part[k // 2]) / 2.0


def _block_grid(grey: np.ndarray) -> tuple[float, np.ndarray | None]:
    """How strongly the gradients follow a 2/4/8-pixel grid (the block grid of a JPEG or H.264 frame at the
    reduced decode's scale, or pixelation): the gradient at the grid's columns over the mean gradient; and the
    spectrum of the column step profile at GRID_PERIODS, for a grid of any period (pixelation by a
    scale that is not 1/2, 1/4 or 1/8 makes blocks of 3 or 4 pixels in turn, which no fixed period folds)."""
    best = 1.0
    # Exact integer steps (absdiff of uint8) and their sums per column / per row in OpenCV: a third of NumPy's cost.
    steps = (cv2.reduce(cv2.absdiff(grey[:, 1:], grey[:, :-1]), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
             / grey.shape[0],
             cv2.reduce(cv2.absdiff(grey[1:], grey[:-1]), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
             / grey.shape[1])
    for d in steps:
        for period in (2, 4, 8):
            n = len(d) // period * period
            if n >= 4 * period:
                phases = _median_rows(d[:n].reshape(-1, period))  # median: one straight edge is no grid
                best = max(best, float(phases.max() / max(float(phases.mean()), 1e-3)))
    # The columns' steps only: pixelation and a codec's blocks are square, and the rows' profile is the shorter.
    return best, _grid_spectrum(steps[0])


def _grid_spectrum(steps: np.ndarray) -> np.ndarray | None:
    """A step profile's Fourier magnitude at GRID_PERIODS, over its mean between those periods (a picture's own
    content spreads over every period; a block grid is a peak at its period and that period's harmonics)."""
    n = steps.size
    if n < 64:
        return None
    spectrum = np.abs(np.fft.rfft(steps))
    lo, hi, first, last = _grid_bins(n)
    return np.maximum(spectrum[lo], spectrum[hi]) / (float(spectrum[first:last].mean()) + 1e-6)


@functools.lru_cache(maxsize=16)
def _grid_bins(n: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """For a profile of n steps: the transform's bins either side of each of GRID_PERIODS (the periods fall between
    bins: the larger neighbour stands for each), and the bins from the longest period to the shortest."""
    lo = (n / GRID_PERIODS).astype(np.intp)
    return lo, np.minimum(lo + 1, n // 2), int(n / GRID_PERIODS[-1]), int(n / GRID_PERIODS[0]) + 1


def _flat_area(grey: np.ndarray) -> tuple[float, np.ndarray]:
    """Share of pixels without local texture (5x5 std < 2), overall and per tile."""
    mean = cv2.boxFilter(grey, cv2.CV_32F, (5, 5))
    flat = (cv2.sqrBoxFilter(grey, cv2.CV_32F, (5, 5)) - mean * mean < 4.0).astype(np.float32)
    h, w = flat.shape
    th, tw = max(1, h // TILE_GRID), max(1, w // TILE_GRID)
    tiles = cv2.resize(flat[: th * TILE_GRID, : tw * TILE_GRID], (TILE_GRID, TILE_GRID), interpolation=cv2.INTER_AREA)
    return float(flat.mean()), tiles


def flat_rows(grey: np.ndarray) -> np.ndarray:
    """Rows of one flat mid-grey value (not black, not white)."""
    # Exact integer sums times 1 / width: what OpenCV's REDUCE_AVG computes, at a third of its cost for uint8.
    inverse = 1.0 / grey.shape[1]
    mean = cv2.reduce(grey, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() * inverse
    squares = cv2.multiply(grey, grey, dtype=cv2.CV_32F)
    square = cv2.reduce(squares, 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F).ravel() * inverse
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))
    return (std < 0.75) & (mean > 8.0) & (mean < 247.0)


def _structure(grey: np.ndarray) -> float:
    """Luma std of the picture averaged over 4x4 blocks: sensor noise averages away, a scene's structure stays."""
    h, w = grey.shape
    return float(cv2.resize(grey, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA).std())


def _colour(image: np.ndarray | None) -> tuple[float, tuple[float, float, float], np.ndarray | None]:
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        return 0.0, (0.0, 0.0, 0.0), None
    sample = image[::8, ::8].reshape(-1, 3).astype(np.float32)
    b, g, r = sample[:, 0], sample[:, 1], sample[:, 2]  # channel by channel: NumPy's axis=1 over 3 is slow
    top = np.maximum(np.maximum(b, g), r)
    saturation = float(np.mean((top - np.minimum(np.minimum(b, g), r)) / np.maximum(top, 16.0)))
    b, g, r = (float(v) for v in sample.mean(axis=0))
    tiles = cv2.resize(image, (TILE_GRID, TILE_GRID), interpolation=cv2.INTER_AREA).astype(np.float32)
    return saturation, (b, g, r), np.log((tiles[..., 0] + 4.0) / (tiles[..., 2] + 4.0))


def measure(grey: np.ndarray, seam_grey: np.ndarray | None = None, image: np.ndarray | None = None,
            block_grey: np.ndarray | None = None) -> CameraSignals:
    """Signals of an analysis-size grey image; `seam_grey`: the same picture nearest-row resized (see
    analysis_greys), `grey` itself when not given; `image`: the colour picture it came from, for colour checks;
    `block_grey`: the grey picture at a size where a block grid keeps its period, `grey` when not given."""
    grey = np.ascontiguousarray(grey)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    thumb = cv2.resize(grey, DESCRIPTOR_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    centred = thumb - thumb.mean()
    tile_std, tile_mean = _tile_stats(grey, TILE_GRID)
    tile_sharp = _tile_stats(lap, SOIL_GRID)[0] ** 2
    # Flat (no texture) and dark or washed-out tiles: what a covered or soiled lens looks like.
    flat = (tile_std < 4.0) & ((tile_mean < 50.0) | (tile_mean > 230.0))
    # The kernel is integer: its response to a uint8 image is exact in int16. Every other pixel each way (from the
    # second row and column: the border is left out): the median of a quarter is as robust, at a quarter of the cost.
    response = cv2.filter2D(grey, cv2.CV_16S, NOISE_KERNEL)[1:-1:2, 1:-1:2]
    sg = grey if seam_grey is None else seam_grey
    # Every other column is enough for the shares along a horizontal seam, at half the cost (a vertical seam has
    # too few rows to spare: subsampled, clean frames came within 0.005 of the threshold).
    seam_share, seam_mixed, flat_below, seam_rows = _seam(np.ascontiguousarray(sg[:, ::2]))
    vseam_share, vseam_mixed, _ = seam(np.ascontiguousarray(sg.T), flat_check=False)
    saturation, channels, tile_blue_red = _colour(image)
    corners = tile_mean[[0, 0, -1, -1], [0, -1, 0, -1]]
    flat_area, tile_flat = _flat_area(grey)
    # Mean, std and clipped shares from one 256-bin histogram (exact for uint8; numpy's passes cost 5x more).
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    count = max(1.0, float(hist.sum()))
    mean = float(hist @ _LEVELS) / count
    _, lap_std = cv2.meanStdDev(lap)
    blockiness, grid_spectrum = _block_grid(grey if block_grey is None else np.ascontiguousarray(block_grey))
    return CameraSignals(
        sharpness=float(lap_std[0, 0]) ** 2,
        mean=mean,
        std=float(np.sqrt(max(0.0, float(hist @ (_LEVELS * _LEVELS)) / count - mean * mean))),
        clipped_dark=float(hist[:6].sum()) / count,
        clipped_bright=float(hist[250:].sum()) / count,
        flat_tiles=float(flat.mean()),
        noise=float(np.median(np.abs(response))) * NOISE_SCALE if response.size else 0.0,
        speckle=float(np.count_nonzero(np.abs(response) > SPECKLE_LEVEL)) / max(1, response.size),
        seam=seam_share,
        seam_mixed=seam_mixed,
        flat_below=flat_below,
        seam_rows=None if seam_rows is None else seam_rows.astype(np.float32),
        vseam=vseam_share,
        vseam_mixed=vseam_mixed,
        tile_std=tile_std,
        grey=grey,
        descriptor=unit(centred),
        structure=_structure(grey),
        saturation=saturation,
        channels=channels,
        corner_dark=bool(corners.max() < 20.0 and tile_mean[2:-2, 2:-2].mean() > 50.0),
        tile_mean=tile_mean,
        tile_sharp=tile_sharp,
        blockiness=blockiness,
        grid_spectrum=grid_spectrum,
        flat_rows=float(flat_rows(grey).mean()),
        flat_area=flat_area,
        tile_flat=tile_flat,
        tile_blue_red=tile_blue_red,
    )
