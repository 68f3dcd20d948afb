# The cart widget's per-product cart vectors (crosssell.engine.cart), one packed row per product
# and build; references kept by Django's on_delete, as Recommendation's (see models.py).

import django.db.models.deletion
from django.db import migrations, models

from crosssell.conf import get_product_model_string

PRODUCT_MODEL = get_product_model_string()


class Migration(migrations.Migration):
    dependencies = [
        ("crosssell", "0009_build_fields"),
        *(
            []
            if PRODUCT_MODEL.split(".")[0] == "crosssell"
            else [migrations.swappable_dependency(PRODUCT_MODEL)]
        ),
    ]

    operations = [
        migrations.CreateModel(
            name="CartVector",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("terms", models.BinaryField()),
                (
                    "build",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="cart_vectors",
                        to="crosssell.build",
                    ),
                ),
                (
                    "product",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=PRODUCT_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("build", "product"), name="crosssell_cart_vector_unique"
                    )
                ],
            },
        ),
    ]
