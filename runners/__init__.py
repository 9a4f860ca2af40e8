"""Work over many images, and the programs that do it: the resumable batch scan, the Ray Data backend, evaluation
(pooled and per source), training runs, benchmarks, and the command-line conventions they share (`cli`).

Each `scripts/X.py` is a thin entry point for `runners.X.main` (the scan's is `runners.batch_scan`), so tests
call a program as a function. Runners may import `pipeline`, the stages and `core`, and the outputs they write
(`outputs`); nothing below them imports a runner.
"""
