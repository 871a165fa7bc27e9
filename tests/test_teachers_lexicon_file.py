"""Lexicons as a user's file: teacher > labels.lexicon > packaged default, and `conf-profile lexicon init`."""

from __future__ import annotations

import json

import pyarrow as pa
import yaml

from conf_profile.cli import main
from conf_profile.config import Settings
from conf_profile.config.teachers import teacher_spec
from conf_profile.intervals import Interval
from conf_profile.schema import DOCUMENT_SCHEMA
from conf_profile.storage import Lake
from conf_profile.taxonomy import Taxonomy, load_taxonomy
from conf_profile.teachers.backends import make_teacher
from conf_profile.teachers.labelling import _spec_hash
from conf_profile.teachers.lexicon_file import DEFAULT_LEXICON, load_lexicon, resolve_lexicon

TAX = load_taxonomy()
IV = Interval.parse("2026-11-16..2026-11-23")
PETS_TAX = {"name": "pets-v1", "attributes": [
    {"name": "pet", "classes": ["cat", {"name": "dog", "description": "owns a dog"}, "fish"]},
    {"name": "hobby", "kind": "multi", "max_labels": 2, "classes": ["knitting", "chess"]}]}


def _lexicon(tmp_path, name: str, phrase: str) -> str:
    data = yaml.safe_load(DEFAULT_LEXICON.read_text())
    data["attributes"]["interests"]["pets"]["strong"].append(phrase)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _interests(teacher, text: str) -> list[str]:
    rows = teacher.label([("u1", f"## searches\n- ⟦{text}⟧\n- ⟦{text} tips⟧")]).to_pylist()
    return next(r["label"] for r in rows if r["attribute"] == "interests")


def test_resolution_order_teacher_then_labels_then_default(tmp_path):
    own, shared = _lexicon(tmp_path, "own.yaml", "axolotl care"), _lexicon(tmp_path, "shared.yaml", "gecko terrarium")
    assert resolve_lexicon(None, None) == DEFAULT_LEXICON
    assert str(resolve_lexicon(None, shared)) == shared
    assert str(resolve_lexicon(own, shared)) == own
    settings = Settings.load(lake=str(tmp_path / "lake"))
    settings.labels.lexicon = shared
    plain = teacher_spec(name="lx", sources=["searches"])
    mine = teacher_spec(name="lx", sources=["searches"], lexicon=own)
    # the backend: labels.lexicon applies to a teacher without its own; the teacher's own wins
    assert "pets" in _interests(make_teacher(plain, TAX, settings), "gecko terrarium")
    assert "pets" not in _interests(make_teacher(plain, TAX), "gecko terrarium")
    assert "pets" in _interests(make_teacher(mine, TAX, settings), "axolotl care")
    assert "pets" not in _interests(make_teacher(mine, TAX, settings), "gecko terrarium")
    # the shard fingerprint follows the same file
    default_hash = _spec_hash(plain, TAX, Settings.load(lake=str(tmp_path / "lake")))
    assert _spec_hash(plain, TAX, settings) != default_hash
    assert _spec_hash(mine, TAX, settings) == _spec_hash(mine, TAX, None)


def _write_documents(lake: Lake) -> None:
    docs = ["## profile\nnickname: ⟦rex_fan⟧\ncity: Oslo\n## watch\n- [pets] ⟦walking my dog in the rain⟧ 90%\n"
            "- [pets] ⟦dog training basics⟧ 80%\n## searches\n- ⟦dog food deal⟧",
            "## watch\n- [pets] ⟦cat naps compilation⟧ 70%\n- [chess] ⟦opening traps⟧ 60%\n## comments\n"
            "- ⟦my cat knocked over the board⟧", ""]
    table = pa.table({"user_id": ["a", "b", "c"], "document": docs, "n_events": [3, 3, 0],
                      "n_chars": [len(d) for d in docs]}, schema=DOCUMENT_SCHEMA)
    lake.write_committed_table(Lake.run_dir(IV, "documents"), table, meta={"documents": 3})


def test_lexicon_init_writes_a_loadable_starter_for_any_taxonomy(tmp_path, capsys):
    lake = Lake.open(str(tmp_path / "lake"))
    _write_documents(lake)
    tax_path = tmp_path / "pets.yaml"
    tax_path.write_text(yaml.safe_dump(PETS_TAX))
    out = tmp_path / "lex" / "pets-lexicon.yaml"
    argv = ["lexicon", "init", "--lake", lake.uri, "--interval", str(IV), "--taxonomy", str(tax_path),
            "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == 5 and summary["documents"] == 3 and out.is_file()
    text = out.read_text()
    assert "[pets] 2" in text and "[chess] 1" in text  # categories counted in documents
    assert "dog 1" in text or "dog 2" in text
    assert "owns a dog" in text  # the class description is shown next to its class
    taxonomy = Taxonomy.model_validate(PETS_TAX)
    data = yaml.safe_load(text)
    assert set(data["attributes"]) == {"pet", "hobby"}
    assert data["attributes"]["pet"]["dog"] == {"explicit": [], "strong": [], "weak": []}
    data["attributes"]["pet"]["dog"]["strong"].append("dog training")  # fill one cue
    out.write_text(yaml.safe_dump(data))
    lex = load_lexicon(out, taxonomy)
    assert lex.phrases == ["dog training"]
    rows = make_teacher(teacher_spec(name="mine", lexicon=str(out)), taxonomy).label(
        [("a", "## watch\n- [pets] ⟦dog training basics⟧ 80%\n- [pets] ⟦dog training at home⟧"),
         ("b", "## watch\n- [pets] ⟦cat naps⟧")]).to_pylist()
    got = {(r["user_id"], r["attribute"]): r["label"] for r in rows}
    assert got[("a", "pet")] == ["dog"] and got[("b", "pet")] == ["unknown"]
    # a second init does not overwrite the filled file without --force
    assert main(argv) != 0
    assert "dog training" in out.read_text()
