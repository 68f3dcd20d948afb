# Build's relation to its experiment variant and a chord's lock token, moved out of
# ``Build.parameters`` (where services.variants and services.distributed stored them) into
# fields of their own.

import django.db.models.deletion
from django.db import migrations, models


def fields_from_parameters(apps, schema_editor):
    """``parameters["variant"]`` -> ``variant`` (when that variant still exists),
    ``parameters["lock"]`` -> ``lock_token``; ``"experiment"`` is the variant's own."""
    Build = apps.get_model("crosssell", "Build")
    Variant = apps.get_model("crosssell", "Variant")
    db = schema_editor.connection.alias
    builds = [
        build
        for build in Build.objects.using(db).only("pk", "parameters")
        if isinstance(build.parameters, dict)
        and any(key in build.parameters for key in ("variant", "experiment", "lock"))
    ]
    wanted = {b.parameters.get("variant") for b in builds}
    alive = set(
        Variant.objects.using(db)
        .filter(pk__in=[v for v in wanted if isinstance(v, int)])
        .values_list("pk", flat=True)
    )
    for build in builds:
        params = dict(build.parameters)
        variant = params.pop("variant", None)
        params.pop("experiment", None)
        lock = params.pop("lock", None)
        Build.objects.using(db).filter(pk=build.pk).update(
            parameters=params,
            variant_id=variant if variant in alive else None,
            lock_token=str(lock or "")[:64],
        )


def fields_to_parameters(apps, schema_editor):
    """The reverse: put them back into ``parameters``."""
    Build = apps.get_model("crosssell", "Build")
    db = schema_editor.connection.alias
    moved = Build.objects.using(db).filter(
        models.Q(variant__isnull=False) | ~models.Q(lock_token="")
    )
    for build in moved.select_related("variant"):
        params = dict(build.parameters or {})
        if build.variant is not None:
            params["variant"] = build.variant.pk
            params["experiment"] = build.variant.experiment_id
        if build.lock_token:
            params["lock"] = build.lock_token
        Build.objects.using(db).filter(pk=build.pk).update(parameters=params)


class Migration(migrations.Migration):
    dependencies = [
        ("crosssell", "0008_cache_generation"),
    ]

    operations = [
        migrations.AddField(
            model_name="build",
            name="lock_token",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                help_text="The rebuild lock a chord's shards resume (services.distributed).",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="build",
            name="variant",
            field=models.ForeignKey(
                blank=True,
                help_text="The experiment variant this build was computed for (services.variants).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="builds",
                to="crosssell.variant",
            ),
        ),
        migrations.RunPython(fields_from_parameters, fields_to_parameters, elidable=True),
    ]
