"""Every dependency of the versioned API runs on the event loop: FastAPI runs a plain `def` in a worker thread."""

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from app.api.router import API_PREFIX


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _runs_on_the_loop(call: Any) -> bool:
    function = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def test_no_dependency_of_the_api_runs_in_a_thread(app: FastAPI) -> None:
    routes = [route for route in iter_route_contexts(app.routes) if (route.path or "").startswith(API_PREFIX)]
    assert len(routes) > 10
    sync = {
        f"{route.path} {getattr(call, '__qualname__', type(call).__qualname__)}"
        for route in routes
        for call in _calls(route.dependant)
        if not _runs_on_the_loop(call)
    }
    assert not sync, sync
    assert all(inspect.iscoroutinefunction(route.endpoint) for route in routes)
