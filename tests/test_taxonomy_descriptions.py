"""Taxonomy classes may carry a description; `classes` stays a list of names."""

from __future__ import annotations

import pytest
import yaml

from conf_profile.errors import TaxonomyError
from conf_profile.taxonomy import Taxonomy, load_taxonomy


def test_class_as_name_or_mapping():
    tax = Taxonomy.model_validate({"attributes": [
        {"name": "pet", "classes": ["cat", {"name": "dog", "description": "owns a dog"}, {"name": "pet_fish"}]}]})
    attr = tax.attribute("pet")
    assert attr.classes == ["cat", "dog", "pet_fish"]
    assert attr.descriptions == {"cat": "cat", "dog": "owns a dog", "pet_fish": "pet fish"}
    assert tax.json_schema()["properties"]["pet"]["properties"]["label"]["enum"] == ["cat", "dog", "pet_fish",
                                                                                     "unknown"]
    assert Taxonomy.model_validate_json(tax.model_dump_json()) == tax  # round trip (lexicon cache, hashes)


@pytest.mark.parametrize("classes,message", [
    (["cat", {"description": "no name"}], "no name"),
    (["cat", {"name": "dog", "colour": "brown"}], "colour"),
    (["cat", {"name": "dog", "description": "  "}], "empty description"),
    (["cat", "cat"], "'cat' twice"),
])
def test_bad_class_entries_are_refused(tmp_path, classes, message):
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump({"attributes": [{"name": "pet", "classes": classes}]}))
    with pytest.raises(TaxonomyError, match=message):
        load_taxonomy(path)


def test_packaged_taxonomy_describes_every_class():
    for attr in load_taxonomy().attributes:
        assert set(attr.descriptions) == set(attr.classes)
        assert all(isinstance(d, str) and d for d in attr.descriptions.values())
