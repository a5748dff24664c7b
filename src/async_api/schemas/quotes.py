"""Schemas of the short synchronous request: a price quote."""

from marshmallow import Schema, fields, validate

from async_api.schemas import NEW_ID_CHARACTERS


class QuoteRequestSchema(Schema):
    sku = fields.String(required=True, validate=[validate.Length(1, 64), NEW_ID_CHARACTERS],
                        metadata={"example": "widget-1"})
    qty = fields.Integer(required=True, strict=True, validate=validate.Range(1, 1_000_000))


class QuoteSchema(Schema):
    quote_id = fields.String(required=True, metadata={"example": "quote:widget-1:3"})
    sku = fields.String(required=True)
    qty = fields.Integer(required=True)
    price = fields.Float(required=True)

