"""Processing tasks on device sockets (seed 003).

- A drone receives `processing_task` for each task dispatched to it. Which connection sends it
  is claimed in the task itself (exactly once); the replica holding the drone does it when it
  sees the `task.dispatched` event, when the drone connects, and on each lease renewal.
- A drone reports `task_status_update` (progress; the first one acknowledges the task) and
  `processing_result`.
- The application that created a task hears `task_status_update` and
  `processing_result_received` on whichever replica it is connected to, from the task events.
  Worker-side steps (`task.dispatched`) are not sent: seed 003's application reads the first
  message it gets as the result.
"""

from __future__ import annotations

from typing import Any

from services.api.devices.connection import Connection
from shared.events import EventName, iso_now
from shared.logging import get_logger
from shared.models.task import ProcessingTask
from shared.tasks.repository import task_repository

log = get_logger(__name__)


def processing_task_message(task: ProcessingTask) -> dict[str, Any]:
    return {
        "type": "processing_task",
        "task_id": task.task_id,
        "task_data": task.seed_task_data(),
        "timestamp": iso_now(),
    }


def task_cancelled_message(task: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "type": "task_cancelled",
        "task_id": task["task_id"],
        "reason": reason,
        "timestamp": iso_now(),
    }


def _status_update(task: dict[str, Any], status: str, additional: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "task_status_update",
        "task_id": task["task_id"],
        "status": status,
        "drone_id": task["drone_id"],
        "additional_data": additional,
        "timestamp": task.get("updated_at") or iso_now(),
    }


def _result_received(task: dict[str, Any], result: dict[str, Any], late: bool) -> dict[str, Any]:
    message = {
        "type": "processing_result_received",
        "result_id": result["result_id"],
        "task_id": task["task_id"],
        "result_data": result["result_data"],
        "drone_id": task["drone_id"],
        "app_id": task["app_id"],
        "success": result["success"],
        "error_message": result.get("error_message"),
        "processing_time": result.get("processing_time"),
        "timestamp": result["timestamp"],
    }
    if late:
        message["late"] = True  # the task had already ended; this changes nothing
    return message


def application_messages(name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """What the task's application hears of one task event, in seed 003's formats."""
    task = data.get("task") or {}
    if not task:
        return []
    if name == EventName.TASK_COMPLETED.value:
        return [_result_received(task, data["result"], late=False)]
    if name == EventName.TASK_FAILED.value:
        if "result" in data:
            return [_result_received(task, data["result"], late=False)]
        reason = data.get("reason") or task.get("error_message")
        return [_status_update(task, "failed", {"reason": reason})]
    if name == EventName.TASK_STATUS.value:
        if "late_result" in data:
            return [_result_received(task, data["late_result"], late=True)]
        if "additional_data" in data:  # the drone's own report
            return [_status_update(task, data["status"], data["additional_data"])]
        return [_status_update(task, data["status"], {"reason": data.get("reason")})]
    return []  # created, dispatched: worker-side steps


async def deliver_tasks(connection: Connection) -> int:
    """Send this drone every task dispatched to it and not yet sent, each exactly once."""
    delivered = 0
    for task in await task_repository.undelivered_for(connection.device_id):
        claimed = await task_repository.mark_delivered(task.task_id, connection.session)
        if claimed is None:
            continue  # another connection sent it, or it moved on
        connection.send(processing_task_message(claimed))
        delivered += 1
        log.info("task_delivered", task_id=task.task_id, drone_id=connection.device_id)
    return delivered
