"""Data stages: read one interval's raw logs (`extract`), validate them (`validate`), build documents."""
