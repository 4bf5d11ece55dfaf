"""The collector's thresholds while an app serves."""

import gc

from app.core.collector import GC_YOUNG_THRESHOLD, fewer_young_collections
from tests.support.settings import test_settings


def test_the_collector_runs_less_often_while_a_deployed_app_serves() -> None:
    deployed = test_settings().model_copy(update={"APP_ENVIRONMENT": "staging"})
    before = gc.get_threshold()

    with fewer_young_collections(deployed):
        serving = gc.get_threshold()

    assert serving == (GC_YOUNG_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


def test_the_test_environment_keeps_pythons_thresholds() -> None:
    before = gc.get_threshold()

    with fewer_young_collections(test_settings()):
        assert gc.get_threshold() == before
