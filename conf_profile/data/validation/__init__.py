"""Parts of `conf_profile.data.validate`: the checks (GX expectations + Arrow masks) and the report."""
