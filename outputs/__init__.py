"""What GANTrace hands to people outside the process: the self-contained HTML evidence report
(`evidence_report`, its stylesheet beside it) and the Hugging Face Space bundle (`space_bundle`).

Outputs render a `pipeline.Verdict` or package the app; they may import `pipeline` and `core`, never the runners
or the scripts, and decide nothing themselves.
"""
