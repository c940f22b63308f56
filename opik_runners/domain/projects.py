"""Projects: what the CLI needs to turn a project name into an id, and the search the
console's project picker uses (Opik's GET /v1/private/projects)."""
import logging

from peewee import IntegrityError

from ..errors import error
from ..store.models import Project, database, now_us

log = logging.getLogger(__name__)


def retrieve_project(caller, name):
    project = Project.get_or_none((Project.workspace == caller.workspace) & (Project.name == name))
    if project is None:
        raise error(404, "Project not found")
    return project


def list_projects(caller, page, size, name=None):
    """(total, projects) of one page (pages count from 1), newest first; `name` matches any
    part of a name, ignoring case, as Opik's search does."""
    query = Project.select().where(Project.workspace == caller.workspace)
    if name:
        query = query.where(Project.name.contains(name))  # LIKE on SQLite (ASCII case folded), ILIKE on PostgreSQL
    total = query.count()
    return total, list(query.order_by(Project.created_at.desc(), Project.id.desc()).paginate(page, size))


def get_project(caller, project_id):
    project = Project.get_or_none((Project.workspace == caller.workspace) & (Project.id == project_id))
    if project is None:
        raise error(404, "Project not found")
    return project


def create_project(caller, request):
    now = now_us()
    try:
        with database.atomic():
            project = Project.create(
                workspace=caller.workspace,
                name=request["name"],
                description=request.get("description"),
                visibility=request.get("visibility") or "private",
                created_at=now,
                created_by=caller.user,
                last_updated_at=now,
                last_updated_by=caller.user,
            )
    except IntegrityError:  # the (workspace, name) unique index
        raise error(409, "Project already exists")
    log.info("project %s created as %r in workspace %s", project.id, project.name, caller.workspace)
    return project
