// Placeholder so that st_testutil has a source before tests/util grows.
