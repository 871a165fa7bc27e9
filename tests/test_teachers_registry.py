"""The backend registry: names map to lazily imported classes; base.py never imports a backend."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conf_profile.config.teachers import SPECS, LexiconTeacher, teacher_spec
from conf_profile.errors import ConfProfileError
from conf_profile.taxonomy import load_taxonomy
from conf_profile.teachers.backends import BACKENDS, backend_class, make_teacher

TAX = load_taxonomy()


def test_every_spec_model_has_a_backend_and_back():
    assert set(BACKENDS) == set(SPECS)


def test_unknown_backend_names_the_choices():
    spec = LexiconTeacher(name="x").model_copy(update={"backend": "telepathy"})
    with pytest.raises(ConfProfileError) as exc:
        make_teacher(spec, TAX)
    msg = str(exc.value)
    assert "telepathy" in msg and all(name in msg for name in BACKENDS)
    with pytest.raises(ConfProfileError, match="lexicon"):
        backend_class("telepathy")


def test_make_teacher_builds_the_registered_class():
    t = make_teacher(teacher_spec(name="lx", sources=["watch"]), TAX)
    assert type(t) is backend_class("lexicon") and t.name == "lx"


def test_base_imports_no_backend():
    code = ("import sys, conf_profile.teachers.base, conf_profile.teachers.labelling; "
            "bad = [m for m in sys.modules if m.startswith('conf_profile.teachers.backends.')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
