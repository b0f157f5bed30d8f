"""One module per group of ``ivs`` verbs; ``cli.LAZY_COMMANDS`` names them."""
