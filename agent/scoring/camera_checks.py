"""Camera checks: a frame's signals (camera_signals) judged against the camera's own recent healthy frames, with
absolute limits only for what no valid frame does; never raises on odd content."""

from __future__ import annotations

import cv2
import numpy as np

from agent.config.model import CameraScoring
from agent.scoring import camera_baseline
from agent.scoring.camera_baseline import CameraBaseline, CameraTypical, blue_red
from agent.scoring.camera_motion import broke_below, moved_below_seam, shifted_below
from agent.scoring.camera_signals import TILE_GRID, CameraSignals, analysis_greys, flat_rows, measure, mixed_at, seam

__all__ = ["CameraBaseline", "CameraSignals", "CameraTypical", "analysis_greys", "conditions", "faults", "frozen",
           "measure", "scene_cut", "seam"]

ABSOLUTE_FLAT_FRACTION = 0.85  # with no baseline yet, only an all but dead image counts as occluded (a gated NIR
# camera or an unlit road leaves 60% of the tiles dark and flat, and is valid)
KEPT_TEXTURE = 0.6  # a tile that keeps this share of its usual texture still shows the scene
OCCLUSION_KEPT_MIN = 0.15  # occlusion covers part of the view: a loss everywhere at once is light or a new scene
RISE_MIN_CLIPPED = 0.1  # share of white pixels an exposure runaway leaves (a sky or lamps alone: a few %)
COVERED_MIN_AREA = 0.08  # share of the picture newly without texture: something opaque on the lens
# ... of which this much appeared since the camera's last healthy frame: a splash or a leaf lands at once, while a
# view that grows flatter frame by frame (a car leaving tree shadows: +0.003-0.006 a frame at 25 fps) is the scene.
COVERED_MIN_JUMP = 0.04
CUT_MAX_NEW_FLAT = 0.3  # a view this much more textureless than before is covered, not a new scene
# ... as is one left with under this share of the textured area it had: a view mostly flat already (a gated NIR or
# night camera, 70% flat) cannot gain 0.3. Consecutive valid frames kept at least 0.89 of it (CamVid, 1 a second).
COVER_TEXTURE_LEFT = 0.4
# Impulse noise: this share of pixels or more standing out of their neighbourhood, and this many times the larger
# of the camera's usual share and its last healthy frame's. Valid frames with 0.05 or more reached 1.13 times it.
SPECKLE_MIN = 0.05
SPECKLE_RATIO = 4.0
SOIL_LOST = 0.2  # a tile whose sharpness fell below this share of its usual is behind a drop or smear
SOIL_MIN_FRACTION = 0.2  # share of the view that must be soiled
SOIL_TEXTURED_MIN = 0.15  # a view with fewer textured tiles than this says nothing about soiling
SOIL_LOST_OF_TEXTURED = 0.2  # share of the textured tiles gone soft (chosen by scripts/evaluate_loso.py)
SOIL_LOST_PER_GAINED = 4.0  # dirt takes at least this many times more detail away than the view gains (same)
SOIL_GAIN = 2.5  # a tile this much sharper than usual shows new detail: the view moved
SOIL_MAX_GAINED = 0.05  # share of such tiles beyond which a loss of detail elsewhere is a moved view, not dirt
SOIL_TEXTURED = 50.0  # tiles with less Laplacian variance than this (sky, road) say nothing about soiling
# Drops or a smear that landed since the camera's last healthy frame: this share of its textured tiles lost most
# of their detail (for their brightness) against that frame and against the usual, while under LAST_MAX_GAINED of
# them gained detail (a moved view gains some). Chosen leave-one-source-out (group soft_since_last); 9: off.
LAST_LOST_MIN = 0.1
LAST_MAX_GAINED = 0.05
# Opaque dirt (mud, dust): tiles whose share of textureless pixels rose this much and whose colour turned this much
# redder (log blue/red), against the camera's usual and its last healthy frame alike (it lands at once), over this
# share of the view: 3 of 64 tiles. Valid frames reached 2 (a red van close by in CamVid); leave-one-source-out
# (models/evaluate_loso.json) the others' choice of 2 tiles costs CamVid that frame held out, and its only gain is
# one frame of brown mud on the grey NIR camera.
DIRT_FLAT_RISE = 0.3
DIRT_REDDER = 0.15
DIRT_MIN_SHARE = 0.04
# A tear at a row where the camera's frames have no seam: this share of columns more than usual steps there, this
# much more than any of its recent healthy frames rose above their usual, and this share of them off their common
# brightness ratio (valid streams: a rain camera's wiper and drops rose 0.31 with 0.12 of it off-ratio).
NEW_SEAM_MIN = 0.2
NEW_SEAM_EXCESS = 0.15
NEW_SEAM_MIXED = 0.4
# A vertical seam this much stronger than any of the camera's recent healthy frames had (every held-out choice,
# models/evaluate_loso.json; a valid upright edge on CamVid rose 0.06 over the frames before it).
VSEAM_RISE = 0.1
BLOCKINESS_MIN = 1.35  # gradients this concentrated on a block grid are compression damage, if new for the camera
BLOCKINESS_RATIO = 1.25
# A block grid of any period that the camera's recent healthy frames do not have: the grid spectrum this many times
# their median at some period (each held to at least GRID_FLOOR: a picture's own content peaks up to about 3 times
# the spectrum's mean over those periods). Chosen leave-one-source-out (models/evaluate_loso.json, group grid); 0:
# off.
GRID_NEW = 2.5
GRID_FLOOR = 3.0
# A view needs this much spread of blue against red over its tiles to show a swap, and the frame's pattern must
# mirror the usual one at least this strongly; both chosen leave-one-source-out (models/evaluate_loso.json).
SWAP_MIN_SPREAD = 0.02
SWAP_MIN_CORR = 0.5
SHADE_MIN_LIGHT = 0.35  # a tile in shadow keeps at least this share of its usual light (+8 grey levels) ...
SHADE_MAX_LIGHT = 0.8  # ... and loses at least the rest
SHADE_MIN_CONTRAST = 0.8  # ... and keeps this share of its usual contrast (texture over brightness)
SHADE_MAX_REDDER = 0.1  # ... and its colour (log blue/red) turns no redder than this
FLAT_ROWS_MIN = 0.04  # this share of rows newly flat mid-grey is decoder fill
# Saturation (sampled pixels' (max - min) / max, mean): valid colour frames measured 0.0156 (DENSE raw-Bayer snow,
# the least colourful) to 0.69; synthetic fog 0.021-0.025; every grey camera's frame, and any colour frame with
# R = G = B in every pixel (a mosaic or mono image passed through as colour), 0.0 exactly, JPEG or not.
COLOUR_CAMERA_MIN = 0.01
EXACT_GREY_MAX = 0.002


def _new_flat_rows(s: CameraSignals, typical: CameraTypical) -> float:
    """Share of rows now flat where this camera usually sees texture (a flat sky is not decoder fill)."""
    flat = flat_rows(s.grey)
    tile_row = np.minimum(np.arange(flat.size) * TILE_GRID // max(1, flat.size), TILE_GRID - 1)
    textured = typical.tiles.mean(axis=1)[tile_row] > 6.0
    return float(np.mean(flat & textured))


def _new_seam(s: CameraSignals, typical: CameraTypical | None) -> bool:
    """A tear where the camera's views have no seam: many columns step sharply at a row where its recent frames do
    not, by far more than any of them did, with unrelated brightness on either side. The absolute check (_torn)
    must leave room for the seams real views have; against its own history a camera's tear stands out at a
    lower share."""
    if typical is None or typical.seam_rows is None or s.seam_rows is None:
        return False
    if s.seam_rows.shape != typical.seam_rows.shape:
        return False
    rise = s.seam_rows - typical.seam_rows
    row = int(rise.argmax())
    if float(rise[row]) < NEW_SEAM_MIN or float(rise[row]) - typical.seam_excess < NEW_SEAM_EXCESS:
        return False
    # The analysis picture, every other column as the rows' shares were taken (it is the seam's own picture
    # wherever the reduced decode needed no further resize: a 1280 or 640 px camera).
    return mixed_at(np.ascontiguousarray(s.grey[:, ::2]), row) >= NEW_SEAM_MIXED


def _new_grid(s: CameraSignals, typical: CameraTypical) -> bool:
    """Blocks of a period the camera's frames do not have (pixelation by 0.3: blocks of 3 and 4 pixels in turn);
    against its own spectrum, so a source that is JPEG-blocky throughout keeps its 8-pixel grid."""
    if GRID_NEW <= 0 or s.grid_spectrum is None or typical.grid_spectrum is None:
        return False
    return float(np.max(s.grid_spectrum / np.maximum(typical.grid_spectrum, GRID_FLOOR))) >= GRID_NEW


def _dirty(s: CameraSignals, typical: CameraTypical | None, last: CameraSignals | None) -> bool:
    """Opaque dirt on the lens: part of the view newly without texture and turned brown. Dark mud over a dusk or
    night view hides little texture that was there, so the occlusion and soiling checks miss it; its colour does
    not (a shadow keeps its colour or turns bluer)."""
    if typical is None or s.tile_flat is None or s.tile_blue_red is None:
        return False
    if typical.tile_flat is None or typical.tile_blue_red is None:
        return False
    new = _flatter_and_redder(s, typical.tile_flat, typical.tile_blue_red)
    if last is not None and last.tile_flat is not None and last.tile_blue_red is not None:
        new &= _flatter_and_redder(s, last.tile_flat, last.tile_blue_red)  # it landed since the last healthy frame
    return float(new.mean()) >= DIRT_MIN_SHARE


def _flatter_and_redder(s: CameraSignals, flat: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Tiles of `s` whose textureless share rose and whose log blue/red fell past the dirt limits."""
    return (s.tile_flat - flat > DIRT_FLAT_RISE) & (colour - s.tile_blue_red > DIRT_REDDER)  # type: ignore[operator]


def _shaded(s: CameraSignals, typical: CameraTypical) -> np.ndarray:
    """Tiles in shadow: darker than usual but with their contrast (texture over brightness) and colour kept, as
    when less light falls on the same scene. Dirt or a cover over the lens takes the contrast or the colour away
    with the light."""
    if s.tile_mean is None or typical.tile_mean is None:
        return np.zeros(typical.tiles.shape, bool)
    light = (s.tile_mean + 8.0) / (typical.tile_mean + 8.0)
    contrast = (s.tile_std / (s.tile_mean + 8.0)) / np.maximum(typical.tiles / (typical.tile_mean + 8.0), 1e-6)
    shade = (light > SHADE_MIN_LIGHT) & (light < SHADE_MAX_LIGHT) & (contrast >= SHADE_MIN_CONTRAST)
    if s.tile_blue_red is not None and typical.tile_blue_red is not None:
        # Shade is lit by the sky: its colour stays, or turns bluer. Mud, rust or a leaf turns it redder.
        shade &= s.tile_blue_red - typical.tile_blue_red > -SHADE_MAX_REDDER
    return shade


def _occluded(s: CameraSignals, cfg: CameraScoring, typical: CameraTypical | None,
              last: CameraSignals | None = None) -> bool:
    if s.flat_tiles >= ABSOLUTE_FLAT_FRACTION:
        return True
    if typical is None:
        return False
    base = typical.tiles
    textured = base > 10.0
    shade = _shaded(s, typical)
    lost = textured & (s.tile_std < np.maximum(4.0, 0.25 * base)) & ~shade
    kept = textured & (s.tile_std >= KEPT_TEXTURE * base)
    if float(lost.mean()) >= cfg.occluded_min_fraction:
        # The same scene (a new one is a scene cut, judged without a baseline) lost its texture over a third of
        # the view or more at once: only something on or in front of the lens does that.
        return True
    # Blobs smaller than a tile (mud, a leaf): a new textureless area where the camera usually sees texture.
    new_flat = s.flat_area - typical.flat_area
    if s.tile_flat is not None and typical.tile_flat is not None and shade.any():
        # a shadow halves the texture too: what went textureless in shaded tiles is not covered
        new_flat -= float(np.sum(np.maximum(s.tile_flat - typical.tile_flat, 0.0)[shade])) / shade.size
    sudden = last is None or s.flat_area - last.flat_area >= COVERED_MIN_JUMP
    most = _covered_most(typical.flat_area + new_flat, typical.flat_area)
    return sudden and new_flat >= COVERED_MIN_AREA and (float(kept.mean()) >= OCCLUSION_KEPT_MIN or most)


def _covered_most(flat: float, flat_before: float) -> bool:
    """So much of the view went textureless that something covers the lens (a new scene keeps some texture)."""
    return flat - flat_before >= CUT_MAX_NEW_FLAT or 1.0 - flat <= COVER_TEXTURE_LEFT * (1.0 - flat_before)


def _speckled(s: CameraSignals, typical: CameraTypical | None, last: CameraSignals | None) -> bool:
    """Impulse noise (salt and pepper, a burst of hot pixels), which the noise estimate's median does not see:
    many more pixels standing out of their neighbourhood than the camera's recent frames and its last healthy
    one had (a view that grows busier frame by frame raises both)."""
    if typical is None or last is None:
        return False
    return s.speckle >= SPECKLE_MIN and s.speckle >= SPECKLE_RATIO * max(typical.speckle, last.speckle)


def _soiled(s: CameraSignals, typical: CameraTypical | None) -> bool:
    """Part of the view lost its sharpness while the rest kept it: water drops, a smear or mud on the lens."""
    if typical is None or s.tile_sharp is None:
        return False
    base = typical.tile_sharp
    textured = base > SOIL_TEXTURED
    lost = textured & (s.tile_sharp < SOIL_LOST * base)
    kept = textured & (s.tile_sharp >= KEPT_TEXTURE * base)
    # Dirt only takes detail away; a view that moved (a pan, a turn) also brings detail where there was none, about
    # as much as it takes away. A frame far from the last healthy one (a low frame rate) may gain a little.
    lost_share = float(lost.mean())
    gained = float(np.mean(s.tile_sharp > SOIL_GAIN * np.maximum(base, SOIL_TEXTURED)))
    if gained >= max(SOIL_MAX_GAINED, lost_share / SOIL_LOST_PER_GAINED):
        return False
    if lost_share >= SOIL_MIN_FRACTION and float(kept.mean()) >= OCCLUSION_KEPT_MIN:
        return True
    # A view with little texture (road and sky): judged on the share of its textured tiles that went soft.
    share = float(textured.mean())
    return (share >= SOIL_TEXTURED_MIN and lost_share >= SOIL_LOST_OF_TEXTURED * share
            and float(kept.mean()) >= OCCLUSION_KEPT_MIN * share)


def _soft_since_last(s: CameraSignals, typical: CameraTypical | None, last: CameraSignals | None) -> bool:
    """Drops on the lens between two frames: round patches of the view lost their detail, where the rest kept
    it. Against the last healthy frame a moving view hardly changes, so drops over a few textured tiles stand
    out that the comparison with the camera's usual (a median of frames that differ more) leaves in the noise.
    Detail is taken for the tile's brightness: a shadow darkens a tile and keeps its contrast."""
    if typical is None or last is None or s.tile_sharp is None or last.tile_sharp is None:
        return False
    if s.tile_sharp.shape != last.tile_sharp.shape or s.tile_mean is None or last.tile_mean is None:
        return False
    textured = last.tile_sharp > SOIL_TEXTURED
    share = float(textured.mean())
    if share < SOIL_TEXTURED_MIN:
        return False
    now, before = _contrast(s.tile_sharp, s.tile_mean), _contrast(last.tile_sharp, last.tile_mean)
    lost = textured & (now < SOIL_LOST * before) & (s.tile_sharp < SOIL_LOST * typical.tile_sharp)
    gained = s.tile_sharp > SOIL_GAIN * np.maximum(last.tile_sharp, SOIL_TEXTURED)
    return float(lost.mean()) >= LAST_LOST_MIN * share and float(gained.mean()) < LAST_MAX_GAINED * share


def _contrast(sharp: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Laplacian variance per soiling tile over its squared brightness (the 8x8 brightness tiles spread over the
    16x16 soiling grid): what a change of light leaves alone."""
    scale = sharp.shape[0] // mean.shape[0]
    light = np.repeat(np.repeat(mean, scale, axis=0), scale, axis=1) + 8.0
    return sharp / (light * light)


def scene_cut(s: CameraSignals, previous: CameraSignals | None, cfg: CameraScoring) -> bool:
    """The view changed entirely since the previous frame (unrelated stills, a moved camera): a different
    picture and hardly a tile the same. A damaged frame keeps part of the scene (occlusion, a tear), or keeps its
    picture at another brightness (an exposure fault: the descriptor ignores gain)."""
    if previous is None or previous.tile_mean is None or s.tile_mean is None:
        return False
    if float(np.linalg.norm(previous.descriptor - s.descriptor)) <= cfg.scene_cut_distance:
        return False
    if _covered_most(s.flat_area, previous.flat_area):
        return False  # most of the view went textureless: something covers the lens, not a new scene
    same = ((np.abs(s.tile_mean - previous.tile_mean) < 0.25 * previous.tile_mean + 8.0)
            & (s.tile_std >= 0.6 * previous.tile_std) & (s.tile_std <= 1.6 * previous.tile_std + 2.0))
    return float(same.mean()) < OCCLUSION_KEPT_MIN


def _torn(s: CameraSignals, cfg: CameraScoring, typical: CameraTypical | None) -> bool:
    across = s.seam >= cfg.tearing_min_seam and (s.seam_mixed >= cfg.tearing_min_mixed or s.flat_below)
    down = s.vseam >= cfg.tearing_min_seam and s.vseam_mixed >= cfg.tearing_min_mixed
    # A view's long upright edges (a building's corner, a van's side) are a vertical seam too, and they last: the
    # seam must be new for the camera, against its recent frames or, before a view has any, the prior.
    usual = typical.vseam if typical is not None else camera_baseline.VSEAM_PRIOR
    return across or (down and s.vseam >= usual + VSEAM_RISE)


def _colour_fault(s: CameraSignals, cfg: CameraScoring, typical: CameraTypical | None) -> bool:
    channels = np.array(s.channels)
    if channels.max() > 30.0 and channels.min() < 1.0:
        return True  # a channel at exactly zero beside lit ones: no scene does that, a dead channel or bad format
    if typical is None:
        return False
    # A channel gone dark that this camera usually has (JPEG ringing leaves a dead channel 1-2 grey levels above
    # zero, so the absolute test above can miss it), whatever its colourfulness: faint colours in fog included.
    share = channels / max(float(channels.mean()), 1e-6)
    if bool(np.any((share < cfg.colour_min_ratio) & (typical.channel_share > 2.5 * cfg.colour_min_ratio))):
        return True
    if typical.saturation >= COLOUR_CAMERA_MIN and s.saturation <= EXACT_GREY_MAX:
        return True  # a colour camera (however faint its scene, as in fog) now exactly grey: raw Bayer, mono format
    if typical.saturation < 0.06:
        return False  # a grey or NIR camera has no colour to lose; a faintly coloured view too little to compare
    if s.saturation < cfg.colour_min_ratio * typical.saturation:
        return True  # a colour camera gone grey: raw Bayer data, a wrong pixel format
    base, now = typical.blue_red, blue_red(s.channels)
    if abs(base) > 0.15 and now * base < 0 and abs(now + base) < 0.5 * abs(base):
        return True  # red and blue swapped
    return _swapped_pattern(s.tile_blue_red, typical.tile_blue_red)


def _swapped_pattern(now: np.ndarray | None, usual: np.ndarray | None) -> bool:
    """Red and blue swapped in a view whose overall colour is near neutral: where the picture is usually bluer
    than elsewhere (sky, shade) it is now redder, and the other way round. A change of light (dusk, sodium
    lamps, a tunnel) moves every tile the same way and keeps the pattern; only a swap mirrors it."""
    if now is None or usual is None:
        return False
    u, n = usual - usual.mean(), now - now.mean()
    if float(np.sqrt(np.mean(u * u))) < SWAP_MIN_SPREAD:
        return False
    # Mirrored both as a pattern (centred) and as a whole (not centred: the overall tint flips too).
    return _cosine(u, n) <= -SWAP_MIN_CORR and _cosine(usual, now) <= -0.5 * SWAP_MIN_CORR


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b)) / max(float(np.linalg.norm(a)) * float(np.linalg.norm(b)), 1e-9)


def faults(s: CameraSignals, cfg: CameraScoring, typical: CameraTypical | None = None,
           last: CameraSignals | None = None, level: float | None = None,
           usual_break: float | None = None) -> list[str]:
    """Names of the faults these signals show, most telling first. `typical`: the camera's own recent healthy
    frames with the same scene in view (None at the start of a stream or after a scene cut: absolute limits only,
    set to what no valid frame does); `last`: the camera's most recent healthy frame (a cover appears at once);
    `level`: the brightness of its recent healthy frames across views, for exposure after a scene cut;
    `usual_break`: the most its recent healthy frames broke from the frame before them below some row."""
    found: list[str] = []
    usual = typical.mean if typical is not None else level  # exposure is the camera's, whatever the view
    fell = usual is not None and usual > 20.0 and s.mean < cfg.exposure_fall_ratio * usual
    if s.mean <= cfg.dark_max_mean or s.clipped_dark >= cfg.dark_clipped_max_fraction or fell:
        found.append("underexposed")
    # Exposure runaway: a night or dusk view whose gain jumps clips far less than the absolute limit, but no
    # scene doubles its brightness between two frames with the same view and burns a tenth of it white, nor rises
    # as far as a fall would be under-exposure (a dark NIR or night view whose gain jumps may clip nothing; valid
    # streams rose at most 1.4-fold against their recent median, CamVid at one frame a second).
    base = max(usual, 8.0) if usual is not None else 0.0
    rose = usual is not None and (
        (s.mean >= cfg.exposure_rise_ratio * base and s.clipped_bright >= RISE_MIN_CLIPPED)
        or (cfg.exposure_fall_ratio > 0 and s.mean * cfg.exposure_fall_ratio >= base))
    if s.mean >= cfg.bright_min_mean or s.clipped_bright >= cfg.bright_clipped_max_fraction or rose:
        found.append("overexposed")
    if s.std <= cfg.uniform_max_std:
        found.append("uniform")
    if _torn(s, cfg, typical) or _new_seam(s, typical):
        found.append("tearing")
    if "uniform" not in found and _occluded(s, cfg, typical, last):
        found.append("occluded")
    # A cover that lands (or an exposure jump) is no small move of the last frame either: told as what it is.
    if not found and (moved_below_seam(s, None if typical is None else typical.seam_rows, last)
                      or (typical is not None and last is not None
                          and (shifted_below(s, last) or broke_below(s, usual_break)))):
        found.append("tearing")
    if not found and _colour_fault(s, cfg, typical):
        found.append("colour_fault")
    if (typical is not None and s.flat_rows >= FLAT_ROWS_MIN and "uniform" not in found
            and _new_flat_rows(s, typical) >= FLAT_ROWS_MIN):
        found.append("corrupt")  # mid-grey decoder fill where the picture was: lost packets
    if typical is not None and (s.blockiness > max(BLOCKINESS_MIN, BLOCKINESS_RATIO * typical.blockiness)
                                or _new_grid(s, typical)):
        found.append("compression")
    noise_limit = cfg.noise_max_sigma
    if typical is not None:
        noise_limit = min(noise_limit, max(cfg.noise_min_sigma, cfg.noise_max_ratio * typical.noise))
    if s.noise > noise_limit or _speckled(s, typical, last):
        found.append("noisy")
    # Blur is meaningless on a uniform or black image; report only the root cause there.
    if not found and (
        s.sharpness < cfg.blur_min_sharpness
        or (typical is not None and s.sharpness < cfg.blur_min_ratio * typical.sharpness)
    ):
        found.append("blur")
    if not found and (_soiled(s, typical) or _dirty(s, typical, last) or _soft_since_last(s, typical, last)):
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
