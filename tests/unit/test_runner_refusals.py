"""What `collab run` and `collab release` say when a release is refused."""

from __future__ import annotations


def test_a_refused_release_is_said_without_the_error_class_path_and_an_incident_keeps_it() -> None:
    """A re-trial: refusals read `privacy.accountant.BudgetExceeded: ...`."""
    from types import SimpleNamespace

    from pipelines.runner import _failure, _refusal

    def result(message: str, *checks: SimpleNamespace) -> SimpleNamespace:
        error = SimpleNamespace(message=message, cause=None)
        event = SimpleNamespace(is_step_failure=True, event_specific_data=SimpleNamespace(error=error))
        return SimpleNamespace(all_events=[event], get_asset_check_evaluations=lambda: list(checks))

    refused = result("privacy.accountant.BudgetExceeded: the worst-case person would pass 2.0\nTraceback...")
    assert _refusal(refused) == "the worst-case person would pass 2.0"
    assert _failure(refused) == "privacy.accountant.BudgetExceeded: the worst-case person would pass 2.0"
    plain = result("1 blocking asset check failed: see the run")
    assert _refusal(plain) == "1 blocking asset check failed: see the run"
    # A re-trial: a refused gate said only this, with nothing after the colon.
    gate = SimpleNamespace(passed=False, description="Release 2026Q1-v1 failed the disclosure gate: 1 contributor")
    passed = SimpleNamespace(passed=True, description="Another check passed.")
    blocked = result("dagster._core.errors.DagsterAssetCheckFailedError: 1 blocking asset check failed:", gate, passed)
    assert _refusal(blocked) == (
        "1 blocking asset check failed: Release 2026Q1-v1 failed the disclosure gate: 1 contributor"
    )


def test_an_interrupt_is_found_among_the_errors_a_steps_error_was_raised_while_handling() -> None:
    """A hostile trial: a Ctrl-C during a load's commit raised DuckDB's 'Query interrupted', and a rollback after it
    failed on its own; the step's error was the rollback's, the interrupt only its context, and the file was failed."""
    from types import SimpleNamespace

    from pipelines.runner import _interrupted

    def error(cls_name: str, message: str, cause: object = None, context: object = None) -> SimpleNamespace:
        return SimpleNamespace(cls_name=cls_name, message=message, cause=cause, context=context)

    def result(step_error: SimpleNamespace) -> SimpleNamespace:
        event = SimpleNamespace(is_step_failure=True, event_specific_data=SimpleNamespace(error=step_error))
        return SimpleNamespace(all_events=[event])

    interrupted = error("RuntimeError", "RuntimeError: Query interrupted")
    rollback = error("TransactionException", "cannot rollback - no transaction is active", context=interrupted)
    assert _interrupted(result(error("DagsterExecutionStepExecutionError", "load failed", cause=rollback)))
    assert _interrupted(result(error("ValueError", "x", context=error("KeyboardInterrupt", ""))))
    assert not _interrupted(
        result(error("DagsterExecutionStepExecutionError", "load failed", cause=error("ValueError", "a bad file")))
    )
