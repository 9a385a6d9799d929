"""Processing tasks and results over REST and WebSockets (seed 003 shapes, snake_case)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shared.drones.schemas import Serial
from shared.models.task import TaskStatus
from shared.schemas import StorableDocument, UtcDatetime

AppId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the application")]
TaskType = Annotated[str, Field(min_length=1, max_length=100)]
TaskId = Annotated[str, Field(min_length=1, max_length=64)]


class TaskCreate(BaseModel):
    """A processing task for a drone. Without `deadline_seconds`, TASK_DEFAULT_DEADLINE_SECONDS
    applies."""

    model_config = ConfigDict(extra="forbid")

    app_id: AppId
    drone_id: Serial
    task_type: TaskType
    input_data: StorableDocument = Field(default_factory=dict)
    priority: int = Field(3, ge=1, le=5, description="1 low .. 5 critical")
    deadline_seconds: float | None = Field(
        None, gt=0, le=7 * 24 * 3600, description="fail if still pending after this long"
    )


class TaskOut(BaseModel):
    task_id: str
    app_id: str
    drone_id: str
    task_type: str
    input_data: dict[str, Any]
    status: TaskStatus
    priority: int
    created_at: str
    updated_at: str
    error_message: str | None
    attempts: int
    deadline_at: str | None
    dispatched_at: str | None
    started_at: str | None
    finished_at: str | None


class TaskCreated(BaseModel):
    task_id: str
    message: str = "Processing task created successfully"
    task: TaskOut


class TaskList(BaseModel):
    tasks: list[TaskOut]
    count: int
    total: int | None = None
    limit: int | None = None
    offset: int | None = None
    drone_id: str | None = None


class TaskFilters(BaseModel):
    drone_id: str | None = None
    app_id: str | None = None
    status: TaskStatus | None = None
    task_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class ResultOut(BaseModel):
    result_id: str
    task_id: str
    drone_id: str
    app_id: str | None
    result_data: dict[str, Any]
    processing_time: float | None
    success: bool
    error_message: str | None
    timestamp: str
    late: bool


class ResultList(BaseModel):
    results: list[ResultOut]
    count: int
    drone_id: str


# --- WebSocket bodies (seed 003) --------------------------------------------------------------


class StatusReport(BaseModel):
    """A drone's `task_status_update` data."""

    model_config = ConfigDict(extra="ignore")

    task_id: TaskId
    status: TaskStatus = TaskStatus.PROCESSING
    additional_data: StorableDocument = Field(default_factory=dict)


class ResultReport(BaseModel):
    """A drone's `processing_result` data."""

    model_config = ConfigDict(extra="ignore")

    task_id: TaskId
    drone_id: Serial | None = None
    result_data: StorableDocument = Field(default_factory=dict)
    processing_time: float | None = Field(None, ge=0)
    success: StrictBool = True
    error_message: str | None = Field(None, max_length=2000)
    timestamp: UtcDatetime | None = None
