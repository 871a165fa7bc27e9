"""ProfileBench-style log simulator: five raw tables per day under raw/, gold labels apart under gold/.

Entry point: `simulate(lake, SimulateSettings) -> dict`. See docs/simulator.md for what each source reveals.
"""

from conf_profile.simulate.core import default_start, simulate, simulate_week, week_tables

__all__ = ["default_start", "simulate", "simulate_week", "week_tables"]
