from tests.model.dist_fixtures import megatron_single  # noqa: F401  (fixture)
