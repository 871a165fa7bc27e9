"""Lexicon `fields` rules read every section laid out as "field: value" lines (a table with format: profile),
whatever the section is called — not only a section named "profile"."""

from __future__ import annotations

from conf_profile.config import Settings
from conf_profile.config.teachers import LexiconTeacher as LexiconSpec
from conf_profile.taxonomy import load_taxonomy
from conf_profile.teachers.backends.lexicon import LexiconTeacher


def _label(settings: Settings, section: str, doc: str) -> str:
    spec = LexiconSpec(name="lex", sources=[section])
    teacher = LexiconTeacher.from_settings(spec, load_taxonomy(), settings)
    rows = teacher.label([("u1", doc)]).to_pylist()
    row = next(r for r in rows if r["attribute"] == "gender")
    label = row["label"]
    return label[0] if isinstance(label, list) and label else label


def test_field_rules_follow_the_profile_format_not_the_section_name(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("source:\n  tables:\n    profiles: {section: account}\n    watch_events: {}\n"
                   "labels:\n  teachers:\n    - {name: lex, backend: lexicon, sources: [account]}\n")
    s = Settings.load(cfg)
    doc = "## account\nnickname: ⟦x⟧\ndeclared_gender: ⟦female⟧\n"
    assert _label(s, "account", doc) == "female"
    default = Settings.load()
    assert _label(default, "profile", doc.replace("## account", "## profile")) == "female"  # unchanged
