"""Products and their versioned release specifications (never edited in place)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.schemas import (
    ProductCreateSchema,
    ProductSchema,
    ProductVersionCreateSchema,
    ProductVersionSchema,
)
from app.auth import require_user, requires
from app.db import get_session
from app.writes import write
from lots.access import Permission
from lots.models import Product, ProductVersion
from lots.products import (
    add_product_version,
    create_product,
    get_product,
    get_product_version,
    list_products,
)

blp = Blueprint("products", __name__, url_prefix="/products", description="Products")


@blp.route("")
class Products(MethodView):
    @requires(Permission.PRODUCTS_READ)
    @blp.response(200, ProductSchema(many=True))
    def get(self) -> list[Product]:
        """Every product with its current version."""
        return list(list_products(get_session()))

    @requires(Permission.PRODUCTS_WRITE)
    @write
    @blp.arguments(ProductCreateSchema)
    @blp.response(201, ProductSchema)
    def post(self, data: dict[str, Any]) -> Product:
        """Create a product with version 1 of its release specification."""
        specification = data.pop("specification")
        code, gtin = data.pop("code"), data.pop("gtin")
        return create_product(
            get_session(),
            actor=require_user().username,
            code=code,
            gtin=gtin,
            version=data,
            specification=specification,
        )


@blp.route("/<code>")
class ProductByCode(MethodView):
    @requires(Permission.PRODUCTS_READ)
    @blp.response(200, ProductSchema)
    def get(self, code: str) -> Product:
        """One product with its current version."""
        return get_product(get_session(), code)


@blp.route("/<code>/versions")
class ProductVersions(MethodView):
    @requires(Permission.PRODUCTS_READ)
    @blp.response(200, ProductVersionSchema(many=True))
    def get(self, code: str) -> list[ProductVersion]:
        """Every version of a product, oldest first."""
        return list(get_product(get_session(), code).versions)

    @requires(Permission.PRODUCTS_WRITE)
    @write
    @blp.arguments(ProductVersionCreateSchema)
    @blp.response(201, ProductVersionSchema)
    def post(self, data: dict[str, Any], code: str) -> ProductVersion:
        """Add the next version; earlier versions stay exactly as they were."""
        specification = data.pop("specification")
        reason = data.pop("change_reason")
        return add_product_version(
            get_session(),
            actor=require_user().username,
            code=code,
            version=data,
            specification=specification,
            change_reason=reason,
        )


@blp.route("/<code>/versions/<int:version>")
class ProductVersionByNumber(MethodView):
    @requires(Permission.PRODUCTS_READ)
    @blp.response(200, ProductVersionSchema)
    def get(self, code: str, version: int) -> ProductVersion:
        """One version of a product."""
        return get_product_version(get_session(), code, version)
