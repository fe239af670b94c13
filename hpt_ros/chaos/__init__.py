"""Seeded fault-injection campaign: faults from outside the nodes, a checker that counts unsafe commands."""
