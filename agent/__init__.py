"""edgesift: an edge data-filtering agent for camera and LiDAR sensor fleets."""

__version__ = "0.1.0"
