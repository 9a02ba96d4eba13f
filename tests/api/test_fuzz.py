"""Generated requests against every operation in the OpenAPI description: never a 500."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from openlocker.api.app import create_app
from openlocker.core.context import Context
from tests.factories import Factory

EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run, so CI is repeatable
    suppress_health_check=list(HealthCheck),
)


def test_no_server_errors(ctx: Context, factory: Factory) -> None:
    factory.site("SMLX")  # a real site, so generated calls reach the service layer
    headers = factory.operator().headers
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ctx, run_jobs=False))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    for operation in operations:

        @given(case=operation.as_strategy())
        @EXAMPLES
        def call(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        call()
