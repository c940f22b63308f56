"""Named statements: compiled once per backend, bound by name with each column's own
conversion, and loud about a parameter that is missing or unknown."""
import uuid

import pytest

from opik_runners.store.models import Project, Runner, database
from opik_runners.store.statements import Param, Statement, columns


@pytest.fixture
def store(app):
    with database.connection_context():
        yield


def project(name):
    return Project.create(workspace="w", name=name, created_by="u", last_updated_by="u")


def test_values_bind_by_name_with_the_columns_conversion(store):
    made = project("a")
    find = Statement("test find project", lambda p: Project.select().where(
        (Project.id == p.project_id) & (Project.workspace == p.workspace)))
    found = find.first(Project, project_id=made.id, workspace="w")  # a uuid.UUID, converted as the column does
    assert (found.id, found.name) == (made.id, "a")
    assert find.first(Project, project_id=str(made.id), workspace="w").id == made.id
    assert find.first(Project, project_id=made.id, workspace="elsewhere") is None


def test_a_missing_or_unknown_value_is_refused_naming_both(store):
    find = Statement("test named", lambda p: Project.select().where(Project.name == p.name))
    with pytest.raises(TypeError, match=r"'test named': missing \['name'\], unknown \['nmae'\]"):
        find.execute(nmae="x")


def test_a_name_used_twice_is_one_value(store):
    project("twice")
    same = Statement("test twice", lambda p: Project.select().where(
        (Project.name == p.name) & (Project.created_by != p.name)))
    assert same.names == {"name"}
    assert same.first(Project, name="twice").name == "twice"


def test_constants_of_the_query_stay_in_it(store):
    project("kept")
    constant = Statement("test constant", lambda p: Project.select().where(
        (Project.name == p.name) & (Project.workspace == "w")))
    sql, params = constant.bind({"name": "kept"})
    assert params == ["kept", "w"]
    assert constant.first(Project, name="kept") is not None


def test_the_query_is_built_once_per_backend(store):
    built = []

    def build(p):
        built.append(1)
        return Project.select().where(Project.name == p.name)

    once = Statement("test once", build)
    for name in ("x", "y", "z"):
        once.execute(name=name)
    assert len(built) == 1


def test_updates_and_inserts_take_the_fields_conversion(store):
    runner_id = uuid.uuid4()
    insert = Statement("test insert", lambda p: Runner.insert(columns(Runner)))
    values = dict(id=runner_id, workspace="w", user_name="u", project_id=uuid.uuid4(), type="endpoint", name="r",
                  connected_at=1, heartbeat_expires_at=2, capabilities=["jobs"], agents={"a": {"timeout": 0}},
                  checklist=None, detached_at=None, job_count=0, last_seq=0)
    insert.execute(**values)
    rename = Statement("test update", lambda p: Runner.update({Runner.agents: Param("agents", Runner.agents)})
                       .where(Runner.id == p.runner_id))
    rename.execute(agents={"b": {"timeout": 5}}, runner_id=runner_id)
    stored = Runner.get_by_id(runner_id)
    assert (stored.capabilities, stored.agents) == (["jobs"], {"b": {"timeout": 5}})  # JSON both ways


def test_rows_come_back_as_models(store):
    made = [project(name) for name in ("m1", "m2")]
    every = Statement("test all", lambda p: Project.select().where(Project.workspace == p.workspace)
                      .order_by(Project.name))
    assert [row.id for row in every.all(Project, workspace="w")] == [p.id for p in made]
    assert every.all(Project, workspace="none") == []
