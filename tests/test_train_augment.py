"""Document views for SFT (train/augment.py): deterministic, target untouched, structure kept, on only for
schedules of many passes; and the SFT dataset carries one view per pass."""

from __future__ import annotations

import numpy as np
import pytest

from conf_profile.config import Settings
from conf_profile.config.params import apply
from conf_profile.errors import ConfigError
from conf_profile.train import augment
from conf_profile.train.sft import _dataset, _fitting

DOC = "\n".join([
    "## profile", "nickname: ⟦a⟧", "city: ⟦Springfield⟧",
    "## watch", *[f"- [cat{i}] ⟦video {i}⟧ {i}0%" for i in range(10)],
    "## searches", *[f"- ⟦query {i}⟧" for i in range(6)],
    "## purchases", "- book 12.50",
])


def rows(n: int = 4) -> list[dict]:
    return [{"user_id": f"u{i}", "document": DOC.replace("⟦a⟧", f"⟦a{i}⟧"), "target": f'{{"t": {i}}}'}
            for i in range(n)]


def sections(doc: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    head = ""
    for line in doc.split("\n"):
        if line.startswith("## "):
            head = line
            out[head] = []
        else:
            out[head].append(line)
    return out


@pytest.mark.parametrize("mode", ["shuffle", "drop"])
def test_views_are_deterministic_and_keep_the_structure(mode):
    a = augment.expand(rows(), 4, mode, seed=13, drop=0.3)
    b = augment.expand(rows(), 4, mode, seed=13, drop=0.3)
    other = augment.expand(rows(), 4, mode, seed=14, drop=0.3)
    assert a == b and a != other  # a pure function of (seed, user, view index)
    assert len(a) == 16 and a[:4] == rows()  # view 0 is the document itself
    assert [r["target"] for r in a] == [r["target"] for r in rows()] * 4  # the answer never changes
    assert [r["user_id"] for r in a] == [r["user_id"] for r in rows()] * 4
    changed = 0
    for r in a[4:]:
        orig, got = sections(DOC.replace("⟦a⟧", f"⟦a{r['user_id'][1:]}⟧")), sections(r["document"])
        assert list(got) == list(orig)  # same headers, same order
        for head, lines in orig.items():
            fixed = [x for x in lines if not x.startswith("- ")]
            assert [x for x in got[head] if not x.startswith("- ")] == fixed  # profile lines untouched
            items, kept = [x for x in lines if x.startswith("- ")], [x for x in got[head] if x.startswith("- ")]
            if items:
                assert kept, "a view never empties a section"
            if mode == "shuffle":
                assert sorted(kept) == sorted(items)
            else:
                assert kept == [x for x in items if x in kept]  # a subset, in the original order
        changed += r["document"] != DOC
    assert changed >= 10  # views differ from the document (16-item watch/search sections)
    docs = {r["document"] for r in a if r["user_id"] == "u0"}
    assert len(docs) == 4  # and from each other, per pass


def test_drop_leaves_out_about_the_share():
    rng = np.random.default_rng(0)
    long_doc = "## watch\n" + "\n".join(f"- item {i}" for i in range(2000))
    kept = augment.view(long_doc, "drop", rng, drop=0.2).count("\n- ")
    assert 1500 < kept < 1700


def test_views_only_for_schedules_of_many_passes():
    assert augment.views_for(11.9, "none", 6.0) == 1
    assert augment.views_for(5.3, "shuffle", 6.0) == 1  # the default week: documents as they are
    assert augment.views_for(11.9, "shuffle", 6.0) == 12  # a small week: one view per pass
    assert augment.views_for(2.0, "drop", 0.0) == 2
    s = Settings.load()
    assert s.train.sft.augment == "shuffle"  # the measured default (docs/training.md)
    apply(s, {"train.sft.augment": "none"})
    with pytest.raises(ConfigError):
        apply(s, {"train.sft.augment": "mixup"})


class _CharTok:
    """Stands in for the chat tokenizer: one token per character."""

    def apply_chat_template(self, msgs, tokenize=True, return_dict=True):
        return {"input_ids": list("".join(m["content"] for m in msgs))}


def test_sft_dataset_has_one_view_per_pass_and_drops_too_long():
    tok = _CharTok()
    data = rows(3) + [{"user_id": "long", "document": DOC * 20, "target": "{}"}]
    kept, lengths, dropped = _fitting(data, tok, max_length=len(DOC) + 100)
    assert dropped == 1 and [r["user_id"] for r in kept] == ["u0", "u1", "u2"]
    ds = _dataset(kept, lengths, tok, len(DOC) + 100, views=5, mode="shuffle", seed=13)
    assert len(ds) == 15
    users = [m[1]["content"] for m in ds["messages"]]
    assert len(set(users)) > 3 and ds["messages"][0][2]["content"] == '{"t": 0}'
