"""One module per ``mnist-bench`` subcommand, each with its options (``command``) and its run
(``measure``, which returns a ``benchmarks.report.Result``); ``all`` runs every one of them."""
