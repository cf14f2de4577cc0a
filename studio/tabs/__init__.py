"""One module per tab, each with `build(services)` called inside its `gr.Tab`."""
