"""Cheap image-quality checks for camera frames: each returns signals, never raises on odd content."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from agent.config.model import CameraScoring
from agent.scoring.memory import unit

TILE_GRID = 8  # 8x8 tiles for occlusion / soiling
DESCRIPTOR_SIZE = (32, 16)  # width, height of the grey thumbnail descriptor
HISTORY = 20  # healthy frames remembered per sensor to know what "normal" looks like
TYPICAL_EVERY = 4  # with a full history, its medians are recomputed after this many healthy frames
ABSOLUTE_FLAT_FRACTION = 0.85  # with no baseline yet, only an all but dead image counts as occluded (a gated NIR
# camera or an unlit road leaves 60% of the tiles dark and flat, and is valid)
KEPT_TEXTURE = 0.6  # a tile that keeps this share of its usual texture still shows the scene
OCCLUSION_KEPT_MIN = 0.15  # occlusion covers part of the view: a loss everywhere at once is light or a new scene
COVERED_MIN_AREA = 0.08  # share of the picture newly without texture: something opaque on the lens
CUT_MAX_NEW_FLAT = 0.3  # a view this much more textureless than before is covered, not a new scene
SOIL_GRID = 16  # drops and splashes are smaller than the 8x8 tiles: sharpness is compared on a finer grid
SOIL_LOST = 0.2  # a tile whose sharpness fell below this share of its usual is behind a drop or smear
SOIL_MIN_FRACTION = 0.2  # share of the view that must be soiled
SOIL_GAIN = 2.5  # a tile this much sharper than usual shows new detail: the view moved
SOIL_MAX_GAINED = 0.05  # share of such tiles beyond which a loss of detail elsewhere is a moved view, not dirt
SOIL_TEXTURED = 50.0  # tiles with less Laplacian variance than this (sky, road) say nothing about soiling
BLOCKINESS_MIN = 1.35  # gradients this concentrated on a block grid are compression damage, if new for the camera
BLOCKINESS_RATIO = 1.25
FLAT_ROWS_MIN = 0.04  # this share of rows newly flat mid-grey is decoder fill
# Immerkaer's noise-estimation kernel: the difference of two Laplacians, blind to flat areas and linear ramps.
# White noise of sigma s gives a response of std 6 s; the median over the image ignores the few real edges.
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
NOISE_SCALE = 1.0 / (0.6745 * 6.0)
# Tearing: a straight seam across the width (or down the height: the part below a tear shifted sideways), one or
# two pixels wide, that the rows (columns) just beside it do not have.
SEAM_MIN_STEP = 12.0  # grey levels: smaller row-to-row steps are texture
SEAM_ISOLATION = 2.5  # the step must exceed this many times the column's steps just above and below it (+2)
SEAM_RATIO_SPREAD = 0.25  # |log brightness ratio - the seam's median| beyond this is not one shadow's darkening
SEAM_EDGE = 0.08  # rows (columns) this close to the image's edge are left out (a car's hood makes a seam there)
SEAM_FLAT_MIN_HEIGHT = 0.15  # a one-colour band below a seam at least this tall is decoder fill


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


def seam(grey: np.ndarray) -> tuple[float, float, bool]:
    """The strongest horizontal seam of a uint8 grey image: (share of columns with an isolated step there,
    share whose step is off the seam's median brightness ratio, whether the rows below are one flat colour).

    Steps are taken across two rows (row r+1 minus row r-1): a reduced JPEG decode spreads a one-row seam of the
    full image over two rows. A shadow edge or the horizon also steps across much of the width, but a shadow
    darkens every column by about one ratio and few real edges are that sharp everywhere; a torn frame steps
    every column to unrelated content (or to decoder fill)."""
    h = grey.shape[0]
    if h < 16:
        return 0.0, 0.0, False
    size = cv2.absdiff(grey[2:], grey[:-2]).astype(np.int16)  # size[k]: the step from row k to row k + 2
    mid = size[2:-2]
    # mid > ISOLATION * near + 2, in integers
    strong = (mid > SEAM_MIN_STEP) & (2 * mid > int(2 * SEAM_ISOLATION) * np.maximum(size[:-4], size[4:]) + 4)
    share = strong.mean(axis=1)
    margin = max(1, int(h * SEAM_EDGE))
    share[:margin] = 0.0
    share[len(share) - margin:] = 0.0
    i = int(share.argmax())
    top, cols = i + 2, strong[i]  # the seam steps from row `top` to row `top + 2`
    if cols.sum() < 3:
        return float(share[i]), 0.0, False
    ratio = np.log((grey[top + 2] + 4.0) / (grey[top] + 4.0))
    mixed = float((cols & (np.abs(ratio - np.median(ratio[cols])) > SEAM_RATIO_SPREAD)).mean())
    below = grey[top + 4:]
    flat = (len(below) >= SEAM_FLAT_MIN_HEIGHT * h and float(np.median(below.std(axis=1))) < 1.5
            and 8.0 < float(below.mean()) < 247.0)
    return float(share[i]), mixed, bool(flat)


def _blockiness(g: np.ndarray) -> float:
    """How strongly the gradients follow a 2/4/8-pixel grid (the block grid of a JPEG or H.264 frame at the
    reduced decode's scale, or pixelation): the gradient at the grid's columns over the mean gradient."""
    best = 1.0
    for axis in (1, 0):
        d = np.abs(np.diff(g, axis=axis)).mean(axis=1 - axis)
        for period in (2, 4, 8):
            n = len(d) // period * period
            if n >= 4 * period:
                phases = d[:n].reshape(-1, period).mean(axis=0)
                best = max(best, float(phases.max() / max(float(phases.mean()), 1e-3)))
    return best


def _flat_area(g: np.ndarray) -> float:
    mean = cv2.boxFilter(g, -1, (5, 5))
    var = cv2.boxFilter(g * g, -1, (5, 5)) - mean * mean
    return float(np.mean(var < 4.0))


def _flat_rows(grey: np.ndarray) -> np.ndarray:
    """Rows of one flat mid-grey value (not black, not white)."""
    rows = grey.astype(np.float32)
    mean = rows.mean(axis=1)
    return (rows.std(axis=1) < 0.75) & (mean > 8.0) & (mean < 247.0)


def _new_flat_rows(s: CameraSignals, typical: CameraTypical) -> float:
    """Share of rows now flat where this camera usually sees texture (a flat sky is not decoder fill)."""
    flat = _flat_rows(s.grey)
    tile_row = np.minimum(np.arange(flat.size) * TILE_GRID // max(1, flat.size), TILE_GRID - 1)
    textured = typical.tiles.mean(axis=1)[tile_row] > 6.0
    return float(np.mean(flat & textured))


def _structure(grey: np.ndarray) -> float:
    """Luma std of the picture averaged over 4x4 blocks: sensor noise averages away, a scene's structure stays."""
    h, w = grey.shape
    return float(cv2.resize(grey, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA).std())


def _colour(image: np.ndarray | None) -> tuple[float, tuple[float, float, float]]:
    if image is None or image.ndim != 3:
        return 0.0, (0.0, 0.0, 0.0)
    sample = image[::8, ::8].reshape(-1, 3).astype(np.float32)
    top = sample.max(axis=1)
    saturation = float(np.mean((top - sample.min(axis=1)) / np.maximum(top, 16.0)))
    b, g, r = (float(v) for v in sample.mean(axis=0))
    return saturation, (b, g, r)


def measure(grey: np.ndarray, seam_grey: np.ndarray | None = None, image: np.ndarray | None = None) -> CameraSignals:
    """Signals of an analysis-size grey image; `seam_grey`: the same picture nearest-row resized (see
    analysis_greys), `grey` itself when not given; `image`: the colour picture it came from, for colour checks."""
    g = grey.astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    thumb = cv2.resize(grey, DESCRIPTOR_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    centred = thumb - thumb.mean()
    tile_std, tile_mean = _tile_stats(g, TILE_GRID)
    tile_sharp = _tile_stats(lap, SOIL_GRID)[0] ** 2
    # Flat (no texture) and dark or washed-out tiles: what a covered or soiled lens looks like.
    flat = (tile_std < 4.0) & ((tile_mean < 50.0) | (tile_mean > 230.0))
    response = cv2.filter2D(g, -1, NOISE_KERNEL)[1:-1, 1:-1]
    sg = grey if seam_grey is None else seam_grey
    # Every other column is enough for the shares along a horizontal seam, at half the cost (a vertical seam has
    # too few rows to spare: subsampled, clean frames came within 0.005 of the threshold).
    seam_share, seam_mixed, flat_below = seam(np.ascontiguousarray(sg[:, ::2]))
    vseam_share, vseam_mixed, _ = seam(np.ascontiguousarray(sg.T))
    saturation, channels = _colour(image)
    corners = tile_mean[[0, 0, -1, -1], [0, -1, 0, -1]]
    return CameraSignals(
        sharpness=float(lap.var()),
        mean=float(g.mean()),
        std=float(g.std()),
        clipped_dark=float(np.mean(grey <= 5)),
        clipped_bright=float(np.mean(grey >= 250)),
        flat_tiles=float(flat.mean()),
        # every other pixel each way: the median of a quarter of them is as robust, at a quarter of the cost
        noise=float(np.median(np.abs(response[::2, ::2]))) * NOISE_SCALE if response.size else 0.0,
        seam=seam_share,
        seam_mixed=seam_mixed,
        flat_below=flat_below,
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
        blockiness=_blockiness(g),
        flat_rows=float(_flat_rows(grey).mean()),
        flat_area=_flat_area(g),
    )


@dataclass(frozen=True, slots=True)
class CameraTypical:
    """Medians over a camera's recent healthy frames."""

    sharpness: float
    tiles: np.ndarray
    mean: float
    noise: float
    structure: float
    saturation: float
    channel_share: np.ndarray  # each channel's share of the mean brightness
    blue_red: float  # log(B / R)
    tile_sharp: np.ndarray
    blockiness: float
    flat_rows: float
    flat_area: float


def _blue_red(channels: tuple[float, float, float]) -> float:
    return float(np.log((channels[0] + 4.0) / (channels[2] + 4.0)))


class CameraBaseline:
    """What a healthy frame of each camera looks like: medians of its recent healthy frames.

    Night, fog and snow change every absolute figure (brightness, texture, noise, sharpness), so a camera is
    judged against itself: a sudden departure from its own recent frames, with the same scene in view, is what a
    smudge, a defocus, a gain fault or a failing sensor does; a steady dark or grey stream is a condition.
    """

    def __init__(self) -> None:
        self._history: dict[str, deque[CameraSignals]] = {}
        self._cache: dict[str, tuple[int, CameraTypical]] = {}  # sensor -> (updates when computed, medians)
        self._updates: dict[str, int] = {}

    def update(self, sensor: str, s: CameraSignals) -> None:
        self._history.setdefault(sensor, deque(maxlen=HISTORY)).append(s)
        self._updates[sensor] = self._updates.get(sensor, 0) + 1

    def reset(self, sensor: str) -> None:
        self._history.pop(sensor, None)
        self._cache.pop(sensor, None)

    def typical(self, sensor: str) -> CameraTypical | None:
        """The medians, recomputed after every TYPICAL_EVERY healthy frames once the history is full (a median of
        20 moves little in 4 frames; recomputing it for every frame was a tenth of a camera frame's cost)."""
        rows = self._history.get(sensor)
        if not rows:
            return None
        updates = self._updates.get(sensor, 0)
        cached = self._cache.get(sensor)
        if cached is not None and updates - cached[0] < (TYPICAL_EVERY if len(rows) == HISTORY else 1):
            return cached[1]
        typical = self._compute(rows)
        self._cache[sensor] = (updates, typical)
        return typical

    @staticmethod
    def _compute(rows: deque[CameraSignals]) -> CameraTypical:
        channels = np.median(np.array([r.channels for r in rows]), axis=0)
        return CameraTypical(
            sharpness=float(np.median([r.sharpness for r in rows])),
            tiles=np.median(np.stack([r.tile_std for r in rows]), axis=0),
            mean=float(np.median([r.mean for r in rows])),
            noise=float(np.median([r.noise for r in rows])),
            structure=float(np.median([r.structure for r in rows])),
            saturation=float(np.median([r.saturation for r in rows])),
            channel_share=channels / max(float(channels.mean()), 1e-6),
            blue_red=_blue_red(tuple(channels)),
            tile_sharp=np.median(np.stack([r.tile_sharp for r in rows if r.tile_sharp is not None]), axis=0),
            blockiness=float(np.median([r.blockiness for r in rows])),
            flat_rows=float(np.median([r.flat_rows for r in rows])),
            flat_area=float(np.median([r.flat_area for r in rows])),
        )


def _occluded(s: CameraSignals, cfg: CameraScoring, typical: CameraTypical | None) -> bool:
    if s.flat_tiles >= ABSOLUTE_FLAT_FRACTION:
        return True
    if typical is None:
        return False
    base = typical.tiles
    textured = base > 10.0
    lost = textured & (s.tile_std < np.maximum(4.0, 0.25 * base))
    kept = textured & (s.tile_std >= KEPT_TEXTURE * base)
    if float(lost.mean()) >= cfg.occluded_min_fraction:
        # The same scene (a new one is a scene cut, judged without a baseline) lost its texture over a third of
        # the view or more at once: only something on or in front of the lens does that.
        return True
    # Blobs smaller than a tile (mud, a leaf): a new textureless area where the camera usually sees texture.
    new_flat = s.flat_area - typical.flat_area
    return new_flat >= COVERED_MIN_AREA and (float(kept.mean()) >= OCCLUSION_KEPT_MIN or new_flat >= CUT_MAX_NEW_FLAT)


def _soiled(s: CameraSignals, typical: CameraTypical | None) -> bool:
    """Part of the view lost its sharpness while the rest kept it: water drops, a smear or mud on the lens."""
    if typical is None or s.tile_sharp is None:
        return False
    base = typical.tile_sharp
    textured = base > SOIL_TEXTURED
    lost = textured & (s.tile_sharp < SOIL_LOST * base)
    kept = textured & (s.tile_sharp >= KEPT_TEXTURE * base)
    # Dirt only takes detail away; a view that moved (a pan, a turn) also brings detail where there was none.
    gained = float(np.mean(s.tile_sharp > SOIL_GAIN * np.maximum(base, SOIL_TEXTURED)))
    return (float(lost.mean()) >= SOIL_MIN_FRACTION and float(kept.mean()) >= OCCLUSION_KEPT_MIN
            and gained < SOIL_MAX_GAINED)


def scene_cut(s: CameraSignals, previous: CameraSignals | None, cfg: CameraScoring) -> bool:
    """The view changed entirely since the previous frame (unrelated stills, a moved camera): a different
    picture and hardly a tile the same. A damaged frame keeps part of the scene (occlusion, a tear), or keeps its
    picture at another brightness (an exposure fault: the descriptor ignores gain)."""
    if previous is None or previous.tile_mean is None or s.tile_mean is None:
        return False
    if float(np.linalg.norm(previous.descriptor - s.descriptor)) <= cfg.scene_cut_distance:
        return False
    if s.flat_area - previous.flat_area >= CUT_MAX_NEW_FLAT:
        return False  # most of the view went textureless: something covers the lens, not a new scene
    same = ((np.abs(s.tile_mean - previous.tile_mean) < 0.25 * previous.tile_mean + 8.0)
            & (s.tile_std >= 0.6 * previous.tile_std) & (s.tile_std <= 1.6 * previous.tile_std + 2.0))
    return float(same.mean()) < OCCLUSION_KEPT_MIN


def _torn(s: CameraSignals, cfg: CameraScoring) -> bool:
    across = s.seam >= cfg.tearing_min_seam and (s.seam_mixed >= cfg.tearing_min_mixed or s.flat_below)
    return across or (s.vseam >= cfg.tearing_min_seam and s.vseam_mixed >= cfg.tearing_min_mixed)


def _colour_fault(s: CameraSignals, cfg: CameraScoring, typical: CameraTypical | None) -> bool:
    channels = np.array(s.channels)
    if channels.max() > 30.0 and channels.min() < 1.0:
        return True  # a channel at exactly zero beside lit ones: no scene does that, a dead channel or bad format
    if typical is None or typical.saturation < 0.06:
        return False  # a grey or NIR camera has no colour to lose
    if s.saturation < cfg.colour_min_ratio * typical.saturation:
        return True  # a colour camera gone grey: raw Bayer data, a wrong pixel format
    share = channels / max(float(channels.mean()), 1e-6)
    if bool(np.any((share < cfg.colour_min_ratio) & (typical.channel_share > 2.5 * cfg.colour_min_ratio))):
        return True
    base, now = typical.blue_red, _blue_red(s.channels)
    return abs(base) > 0.15 and now * base < 0 and abs(now + base) < 0.5 * abs(base)  # red and blue swapped


def faults(s: CameraSignals, cfg: CameraScoring, typical: CameraTypical | None = None) -> list[str]:
    """Names of the faults these signals show, most telling first. `typical`: the camera's own recent healthy
    frames with the same scene in view (None at the start of a stream or after a scene cut: absolute limits only,
    set to what no valid frame does)."""
    found: list[str] = []
    fell = typical is not None and typical.mean > 20.0 and s.mean < cfg.exposure_fall_ratio * typical.mean
    if s.mean <= cfg.dark_max_mean or s.clipped_dark >= cfg.dark_clipped_max_fraction or fell:
        found.append("underexposed")
    if s.mean >= cfg.bright_min_mean or s.clipped_bright >= cfg.bright_clipped_max_fraction:
        found.append("overexposed")
    if s.std <= cfg.uniform_max_std:
        found.append("uniform")
    if _torn(s, cfg):
        found.append("tearing")
    if "uniform" not in found and _occluded(s, cfg, typical):
        found.append("occluded")
    if not found and _colour_fault(s, cfg, typical):
        found.append("colour_fault")
    if (typical is not None and s.flat_rows >= FLAT_ROWS_MIN and "uniform" not in found
            and _new_flat_rows(s, typical) >= FLAT_ROWS_MIN):
        found.append("corrupt")  # mid-grey decoder fill where the picture was: lost packets
    if typical is not None and s.blockiness > max(BLOCKINESS_MIN, BLOCKINESS_RATIO * typical.blockiness):
        found.append("compression")
    noise_limit = cfg.noise_max_sigma
    if typical is not None:
        noise_limit = min(noise_limit, max(cfg.noise_min_sigma, cfg.noise_max_ratio * typical.noise))
    if s.noise > noise_limit:
        found.append("noisy")
    # Blur is meaningless on a uniform or black image; report only the root cause there.
    if not found and (
        s.sharpness < cfg.blur_min_sharpness
        or (typical is not None and s.sharpness < cfg.blur_min_ratio * typical.sharpness)
    ):
        found.append("blur")
    if not found and _soiled(s, typical):
        found.append("soiled")
    return found


def conditions(s: CameraSignals) -> tuple[str, ...]:
    """Rare conditions this valid frame shows: what a fleet has little of and its models need most."""
    found = []
    if s.mean < 70.0:
        found.append("dark")  # night, dusk, a tunnel
    if s.structure < 35.0 or s.sharpness < 300.0:
        found.append("low_contrast")  # fog, haze, rain, snowfall
    if s.mean > 140.0 and s.saturation < 0.12:
        found.append("glare")  # snow cover, white-out, low sun
    if s.saturation > 0.5:
        found.append("unusual_colour")  # sodium street light, a camera with another colour response
    if s.corner_dark:
        found.append("unusual_optics")  # fisheye, a wide-angle lens with black corners
    return tuple(found)


def frozen(previous: np.ndarray | None, current: np.ndarray, cfg: CameraScoring) -> bool:
    # At full analysis resolution real sensor noise alone moves the mean difference well above the threshold,
    # even when nothing in the scene moves; only a stuck sensor (or a repeated buffer) repeats itself.
    if previous is None or previous.shape != current.shape:
        return False
    diff = cv2.absdiff(previous, current)
    return float(diff.mean()) <= cfg.frozen_max_diff
