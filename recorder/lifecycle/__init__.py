"""Records lifecycle: retention rules and scheduled deletion, legal hold in the store, export jobs
and evidence bundles."""
