"""The load harness: the real stack under wrk, three ceilings beside it, and the reports."""
