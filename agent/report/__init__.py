"""Replay outputs for people: summary.json counters, thumbnails and the self-contained report.html."""

from agent.report.html import write_report
from agent.report.summary import SummaryBuilder
from agent.report.thumbs import Thumb, ThumbnailCollector

__all__ = ["SummaryBuilder", "Thumb", "ThumbnailCollector", "write_report"]
