"""Maintenance tasks: when the reaper last started a cycle, so that the workers and instances
sharing the database run one per interval between them."""
import peewee as pw


class MaintenanceTask(pw.Model):
    name = pw.CharField(primary_key=True)
    last_started_at = pw.BigIntegerField()
    last_holder = pw.CharField(null=True)

    class Meta:
        table_name = "maintenance_task"


def apply(database, migrator):
    with database.bind_ctx([MaintenanceTask]):
        database.create_tables([MaintenanceTask])
        MaintenanceTask.insert(name="reaper", last_started_at=0).execute()
