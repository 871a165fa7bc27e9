"""`conf-profile lexicon init`: a starter lexicon for a taxonomy, with what a week's documents say."""

from __future__ import annotations

import argparse
from pathlib import Path

from conf_profile.cli import Result, settings_from_args
from conf_profile.cli.data_cmds import add_interval_arg, resolve_interval
from conf_profile.errors import ConfProfileError
from conf_profile.layout import RunLayout


def register(sub, common) -> None:
    p = sub.add_parser("lexicon", help="lexicons of the CPU lexicon teachers",
                       description="Lexicon files: the evidence (cue phrases per class) of lexicon teachers.")
    lsub = p.add_subparsers(dest="lexicon_command", metavar="ACTION", required=True)
    init = lsub.add_parser(
        "init", parents=[common], help="write a starter lexicon for a taxonomy",
        description="Write a lexicon YAML with every class of the taxonomy and empty cue lists to fill in, "
        "and, as comments, the most frequent [category] tags, words and profile field values per document "
        "section of the interval's committed documents (runs/<interval>/documents/). It loads as a lexicon "
        "as it is; point labels.lexicon (or a teacher's lexicon) at it once the cues are in.")
    add_interval_arg(init)
    init.add_argument("--taxonomy", metavar="FILE", help="taxonomy YAML (default: taxonomy_path of the settings)")
    init.add_argument("--out", metavar="FILE", required=True, help="where to write the lexicon YAML")
    init.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    init.set_defaults(handler=cmd_lexicon_init)


def cmd_lexicon_init(args: argparse.Namespace) -> Result:
    from conf_profile.storage import Lake
    from conf_profile.taxonomy import load_taxonomy
    from conf_profile.teachers.lexicon_file import load_lexicon
    from conf_profile.teachers.lexicon_init import starter_lexicon

    settings = settings_from_args(args)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfProfileError(f"{out} already exists.", "Pass --force to overwrite it, or choose another --out.")
    taxonomy = load_taxonomy(args.taxonomy or settings.taxonomy_path)
    lake = Lake.from_settings(settings)
    interval = resolve_interval(lake, args.interval, settings)
    rel = RunLayout(interval).documents
    if not lake.is_committed(rel):
        raise ConfProfileError(f"No committed documents for {interval} at {lake.uri_of(rel)}.",
                               f"Run `conf-profile documents --interval {interval}` first.")
    docs = lake.read_committed(rel, columns=["document"])["document"]
    text = starter_lexicon(taxonomy, docs, where=f"the documents of {interval}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    load_lexicon(out, taxonomy)  # the file we promise loads as a lexicon
    classes = sum(len(a.classes) for a in taxonomy.attributes)
    summary = {"path": str(out), "taxonomy": taxonomy.name, "interval": str(interval), "documents": len(docs),
               "attributes": len(taxonomy.attributes), "classes": classes}
    return Result(summary, f"Starter lexicon for {taxonomy.name} ({len(taxonomy.attributes)} attributes, "
                  f"{classes} classes) from {len(docs):,} documents of {interval}: {out}\n"
                  f"Fill in cue phrases per class, then set labels.lexicon: {out} (docs/teachers.md).")
