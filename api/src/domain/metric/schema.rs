//! The OpenAPI schemas serde's enums and `Value` cannot state exactly.

use utoipa::openapi::{
    schema::{AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type},
    RefOr,
};

/// `capping`: exactly one of `absolute` (above 0) or `percentile` (between 0 and 1);
/// `nullable` where null means none.
fn capping_schema(nullable: bool) -> Schema {
    let number =
        || ObjectBuilder::new().schema_type(Type::Number).format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)));
    let one = |name: &str, value: ObjectBuilder| -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(name, value)
            .required(name)
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .into()
    };
    let mut any = OneOfBuilder::new()
        .description(Some("`{\"absolute\": x}` (x > 0) or `{\"percentile\": p}` (0 < p < 1)"))
        .item(one("absolute", number().exclusive_minimum(Some(0))))
        .item(one("percentile", number().exclusive_minimum(Some(0)).exclusive_maximum(Some(1))));
    if nullable {
        any = any.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    any.build().into()
}

pub fn capping_or_null() -> Schema {
    capping_schema(true)
}

/// A filter's value: a string (at most 1024 characters, no NUL), a number or a boolean.
pub fn filter_value_schema() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).max_length(Some(1024)).pattern(Some(r"^[^\u0000]*$")))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .build()
        .into()
}
