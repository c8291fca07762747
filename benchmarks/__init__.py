"""The benchmarks: scripts that measure a claim of the project (speed, memory, sample quality)
and print a table with the reference measured side by side in the same run; the results and how
to read them are in benchmarks/RESULTS.md. Each runs from the repository root as a module of this
package, ``python -m benchmarks.<name> --help``, so that it imports the project (``src``, train.py,
eval.py) and its sibling benchmarks by their package names. They score samples with the code of
the evaluation itself (`src.evaluation.score_samples`, `src.evaluation.held_out_floor`).
"""
