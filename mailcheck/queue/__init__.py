"""Postfix queue inspection (`mailcheck queue`): qshape's table and deferral reasons.

source.py/live.py read a listing (a saved `postqueue -j`, or the live queue), entries.py and
mailq.py parse it, analysis.py streams it into totals, shape.py (qshape's arithmetic) and
reasons.py (classification) groups, report.py judges the result, prometheus.py and the
generic renderers print it, cli.py is the command.
"""
