"""The numba CPU rasteriser, one module per stage: ``projection`` (EWA projection into per-Gaussian
``records``), ``shading`` (SH colours), ``sorting`` (one depth sort), ``binning`` (tile lists),
``compositing`` and ``tiles`` (per-tile kernels and the parallel loop over tiles); ``scratch`` holds
the memory kept across frames, ``renderer`` the ``CpuRenderer`` that runs the stages.

Speed comes from shortcuts that change no pixel beyond float32 rounding:
- a Gaussian only reaches pixels where opacity * exp(-sigma) >= 1/255, i.e. sigma <= ln(255 o);
  a Gaussian whose 3.33-sigma tile rect (fVDB's rule) is larger than 2 x 2 tiles is binned only into
  the tiles of it that this ellipse (widened by half a pixel) really crosses, and every Gaussian visits
  only the tile rows and columns the ellipse spans;
- one global depth sort (LSD radix on the float bits, parallel over chunks) and a stable counting sort
  of scene rows by tile (also parallel over chunks, over 4-byte footprint codes ``project`` leaves for
  rects up to 2 x 2 tiles) give every tile its Gaussians already in depth order, ties by id as the
  reference's stable sort; records stay where ``project`` wrote them and the stages that read them
  through the order prefetch 8 ahead;
- the compositing loop is branch-free over blocks of 8 columns of a tile row, with an exp that
  vectorises (``exp_neg``: range reduction and a polynomial), and keeps a tile's whole state in one
  array (no runtime alias checks); a Gaussian runs only over the blocks and rows it reaches;
- a row, then a tile, stops once every pixel in it has saturated;
- tiles are dealt to threads busiest first, in turn (see ``rasterize``); RGB-only frames use a build of
  the tile kernel without the second pass (features, extra channels, top-K), and frames with
  ``FEAT_PIXEL_MAJOR`` or more feature channels one with a pixel-major feature accumulator.
"""

from ovseg_core.render.cpu.renderer import CpuRenderer

__all__ = ["CpuRenderer"]
