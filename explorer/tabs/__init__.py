"""One module per tab of the page, each with `TITLE`, `build(shared)` (its layout; returns its
components) and `wire(shared, components)` (its events). explorer/page.py lists them in page order."""
