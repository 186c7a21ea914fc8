"""marshmallow schemas of the JSON API: what a request may say and how answers look."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from custody.ledger import canonical_bytes
from lots.access import Role
from lots.models import Criterion, SiteKind
from lots.rules import describe_line, plain_decimal

CODE = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$", error="Use letters, digits, '.', '_' or '-'."
)


class Moment(fields.AwareDateTime):
    """A time with its offset, taken as the same instant in UTC: what is stored and every
    answer (the POST that sent it as well as a later GET) read alike."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=None, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError as error:
            raise ValidationError("The time cannot be expressed in UTC.") from error


class StrictSchema(Schema):
    """Unknown fields are refused (marshmallow's RAISE), never silently dropped."""

    @pre_load
    def _storable_text(self, data: Any, **_: Any) -> Any:
        # PostgreSQL refuses NUL in text and UTF-8 has no unpaired surrogates: without this
        # check such a string is a database error, a 500, instead of a 422.
        if isinstance(data, Mapping):
            for key, value in data.items():
                if not (_storable(key) and _storable(value)):
                    raise ValidationError(UNSTORABLE, key if _storable(key) else "_schema")
        return data


UNSTORABLE = "Text may not contain NUL characters or unpaired surrogates."


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, Mapping):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


class Number(fields.Decimal):
    """An exact decimal, read from a JSON number or string, written as a plain string."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else plain_decimal(value)


# --- auth -------------------------------------------------------------------------------


class TokenRequestSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 256))
    label = fields.String(load_default="", validate=validate.Length(max=100))
    ttl_hours = fields.Integer(load_default=None, validate=validate.Range(1, 24 * 30))


class TokenSchema(Schema):
    id = fields.Integer()
    token = fields.String(metadata={"description": "The secret; shown only once."})
    label = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)


class WhoAmISchema(Schema):
    username = fields.String()
    full_name = fields.String()
    role = fields.String()
    site = fields.Function(lambda user: user.site.code)
    unblinded = fields.Boolean()
    must_change_password = fields.Boolean()


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(
        required=True, load_only=True, validate=validate.Length(1, 256)
    )
    new_password = fields.String(required=True, load_only=True, validate=validate.Length(1, 256))


class PasswordChangedSchema(Schema):
    revoked_tokens = fields.Integer(metadata={"description": "Bearer tokens now revoked"})
    detail = fields.String()


class PasswordResetSchema(StrictSchema):
    temporary_password = fields.String(
        required=True, load_only=True, validate=validate.Length(1, 256)
    )


# --- sites and users --------------------------------------------------------------------


class SiteSchema(StrictSchema):
    code = fields.String(required=True, validate=[validate.Length(1, 32), CODE])
    name = fields.String(required=True, validate=validate.Length(1, 200))
    kind = fields.String(required=True, validate=validate.OneOf([kind.value for kind in SiteKind]))
    time_zone = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={
            "description": "IANA time zone, e.g. Asia/Shanghai: local dates are judged in it"
        },
    )
    gln = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\d{13}$", error="13 digits."),
    )
    supplied_by = fields.String(
        attribute="supplied_by_code",
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, 32),
        metadata={"description": "A ward's hospital pharmacy (its code): required for wards"},
    )
    plain_wristbands_allowed = fields.Boolean(
        load_default=False,
        metadata={
            "description": "The bedside here takes plain (unauthenticated) wristbands; every "
            "GO then says so. Off by default."
        },
    )


class UserCreateSchema(StrictSchema):
    username = fields.String(required=True, validate=[validate.Length(1, 64), CODE])
    full_name = fields.String(required=True, validate=validate.Length(1, 200))
    role = fields.String(required=True, validate=validate.OneOf([role.value for role in Role]))
    site = fields.String(required=True, validate=validate.Length(1, 32))
    password = fields.String(required=True, load_only=True, validate=validate.Length(12, 256))
    unblinded = fields.Boolean(load_default=False)


class UserUpdateSchema(StrictSchema):
    full_name = fields.String(validate=validate.Length(1, 200))
    role = fields.String(validate=validate.OneOf([role.value for role in Role]))
    site = fields.String(validate=validate.Length(1, 32))
    unblinded = fields.Boolean()
    active = fields.Boolean()


class UserSchema(Schema):
    username = fields.String()
    full_name = fields.String()
    role = fields.String()
    site = fields.Function(lambda user: user.site.code)
    unblinded = fields.Boolean()
    active = fields.Boolean()
    must_change_password = fields.Boolean()
    created_at = fields.DateTime()


# --- products ---------------------------------------------------------------------------


# specification_lines.lower/upper are NUMERIC(20, 6): at most 14 digits before the point.
LIMIT_RANGE = validate.Range(-(10**14), 10**14, min_inclusive=False, max_inclusive=False)


class SpecificationLineSchema(StrictSchema):
    test = fields.String(required=True, validate=validate.Length(1, 120))
    method = fields.String(required=True, validate=validate.Length(1, 200))
    unit = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    criterion = fields.String(
        required=True, validate=validate.OneOf([criterion.value for criterion in Criterion])
    )
    lower = Number(load_default=None, allow_none=True, validate=LIMIT_RANGE)
    lower_inclusive = fields.Boolean(load_default=True)
    upper = Number(load_default=None, allow_none=True, validate=LIMIT_RANGE)
    upper_inclusive = fields.Boolean(load_default=True)
    expected = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 200))
    acceptance = fields.Function(describe_line, dump_only=True)


class ProductVersionFieldsSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    cell_type = fields.String(required=True, validate=validate.Length(1, 200))
    origin = fields.String(required=True, validate=validate.OneOf(["allogeneic", "autologous"]))
    route = fields.String(
        required=True,
        validate=validate.OneOf(
            [
                "intrathecal",
                "intravenous",
                "intramuscular",
                "subcutaneous",
                "intraarticular",
                "topical",
            ]
        ),
    )
    dose = fields.String(required=True, validate=validate.Length(1, 200))
    label_name = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, 40),
        metadata={
            "description": "The product's name as the 38 x 13 mm cryovial label prints it, in "
            "full; without it the label prints `name`, and refuses to print if it does not fit."
        },
    )
    cells_per_dose = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 10**15)
    )
    storage_limit_c = Number(required=True, validate=validate.Range(-273, 60))
    storage_condition = fields.String(required=True, validate=validate.Length(1, 200))
    shelf_life_days = fields.Integer(required=True, validate=validate.Range(1, 36500))
    post_thaw_window_minutes = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 7 * 24 * 60)
    )
    max_passage = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 1000)
    )
    temperature_record_required = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Its shipments need a logger record covering sealing to receipt "
            "before any vial is GO at the bedside."
        },
    )
    specification = fields.List(
        fields.Nested(SpecificationLineSchema), required=True, validate=validate.Length(1, 100)
    )


class ProductCreateSchema(ProductVersionFieldsSchema):
    code = fields.String(required=True, validate=[validate.Length(1, 32), CODE])
    gtin = fields.String(
        required=True,
        validate=validate.Regexp(r"^(\d{8}|\d{12,14})$", error="8, 12, 13 or 14 digits."),
    )


class ProductVersionCreateSchema(ProductVersionFieldsSchema):
    change_reason = fields.String(required=True, validate=validate.Length(1, 2000))


class ProductVersionSchema(Schema):
    version = fields.Integer()
    name = fields.String()
    label_name = fields.String(allow_none=True)
    cell_type = fields.String()
    origin = fields.String()
    route = fields.String()
    dose = fields.String()
    cells_per_dose = fields.Integer(allow_none=True)
    storage_limit_c = Number(as_string=True)
    storage_condition = fields.String()
    shelf_life_days = fields.Integer()
    post_thaw_window_minutes = fields.Integer(allow_none=True)
    temperature_record_required = fields.Boolean()
    max_passage = fields.Integer(allow_none=True)
    change_reason = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    specification = fields.List(fields.Nested(SpecificationLineSchema))


class ProductSchema(Schema):
    code = fields.String()
    gtin = fields.String()
    created_at = fields.DateTime()
    current_version = fields.Function(lambda product: product.current.version)
    current = fields.Nested(ProductVersionSchema)
    versions = fields.Function(lambda product: [version.version for version in product.versions])


# --- ledger -----------------------------------------------------------------------------


class ObservationSchema(StrictSchema):
    chain = fields.String(
        required=True,
        validate=[
            validate.Length(3, 160),
            validate.Regexp(r"^[a-z_]+:[A-Za-z0-9._:/-]+$", error="A chain is 'kind:identifier'."),
        ],
    )
    occurred_at = Moment(required=True)
    note = fields.String(required=True, validate=validate.Length(1, 2000))
    observations = fields.Dict(
        keys=fields.String(validate=validate.Length(1, 64)),
        values=fields.Raw(),
        load_default=dict,
        validate=validate.Length(max=50),
    )

    @validates("occurred_at")
    def _expressible_in_utc(self, value: dt.datetime, **_: Any) -> None:
        try:
            value.astimezone(dt.UTC)
        except OverflowError as error:
            raise ValidationError("The time cannot be expressed in UTC.") from error

    @validates("observations")
    def _canonical(self, value: dict[str, Any], **_: Any) -> None:
        # The event is hashed over RFC 8785 JSON: integers within ±(2**53 - 1), finite numbers.
        try:
            canonical_bytes(value)
        except ValueError as error:
            raise ValidationError(
                "Numbers must be finite, and integers within ±9007199254740991 (RFC 8785)."
            ) from error

    @validates_schema
    def _small_payload(self, data: dict[str, object], **_: object) -> None:
        if len(repr(data.get("observations", {}))) > 8000:
            raise ValidationError("Observations are limited to 8,000 characters.", "observations")


class EventSchema(Schema):
    id = fields.Integer()
    chain = fields.String()
    seq = fields.Integer()
    type = fields.String(attribute="event_type")
    occurred_at = fields.DateTime()
    recorded_at = fields.DateTime()
    prev_hash = fields.String(allow_none=True)
    hash = fields.String()
    body = fields.Method("_body")

    def _body(self, event: Any) -> Any:
        return orjson.loads(event.body)


class BreakSchema(Schema):
    chain = fields.String()
    seq = fields.Integer(allow_none=True)
    event_id = fields.Integer(allow_none=True)
    reason = fields.String()


class DisagreementSchema(Schema):
    table = fields.Function(lambda row: row[0], metadata={"description": "The table."})
    key = fields.Function(lambda row: row[1], metadata={"description": "The row."})
    reason = fields.Function(lambda row: row[2])


class VerificationSchema(Schema):
    intact = fields.Boolean()
    events = fields.Integer()
    chains = fields.Integer()
    checkpoints = fields.Integer()
    checked_at = fields.DateTime()
    first_break = fields.Nested(BreakSchema, allow_none=True)
    disagreements = fields.List(
        fields.Nested(DisagreementSchema),
        metadata={"description": "State columns that disagree with the events they project."},
    )


class AuditEntrySchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    action = fields.String()
    entity_type = fields.String()
    entity_key = fields.String()
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)


class AuditQuerySchema(StrictSchema):
    entity_type = fields.String(validate=validate.Length(1, 32))
    entity_key = fields.String(validate=validate.Length(1, 128))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
