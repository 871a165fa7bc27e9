"""`conf-profile config`: the effective settings (defaults < file < env < flags), or the defaults alone."""

from __future__ import annotations

import argparse

import yaml

from conf_profile.cli import Result, settings_from_args


def register(sub, common) -> None:
    p = sub.add_parser("config", parents=[common], help="print the effective settings (secrets masked)",
                       description="The settings a command would run with: embedded defaults, then the YAML file "
                       "(--config / CONF_PROFILE_CONFIG), then CONF_PROFILE_* variables, then flags. Every key "
                       "printed is valid in a settings file; unknown keys are refused everywhere.")
    p.add_argument("--defaults", action="store_true", help="the embedded defaults only (no file, no environment)")
    p.set_defaults(handler=cmd_config)


def cmd_config(args: argparse.Namespace) -> Result:
    from conf_profile.config import Settings

    if args.defaults:
        settings = Settings.model_construct(**{k: f.get_default(call_default_factory=True)
                                               for k, f in Settings.model_fields.items()})
    else:
        settings = settings_from_args(args)
    data = settings.model_dump(mode="json")  # SecretStr values come out masked
    return Result({"settings": data}, yaml.safe_dump(data, sort_keys=False).rstrip())
