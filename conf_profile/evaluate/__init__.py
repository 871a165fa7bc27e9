"""Evaluation: the shared metric (macro-F1 with abstentions, coverage, ECE), reliability diagrams and the
report card. Students reuse `score` so every row of the report card is computed the same way."""

from conf_profile.evaluate.metrics import ece, macro_f1, reliability, score, score_detailed
from conf_profile.evaluate.report import format_report, report_interval

__all__ = ["ece", "format_report", "macro_f1", "reliability", "report_interval", "score", "score_detailed"]
