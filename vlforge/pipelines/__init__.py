"""The pipelines on one executor (executor.py: Ray, units, retries, summary, exit codes): clean, mix, render,
synthdog; export is one streaming pass in the driver. The only package that imports ray."""
